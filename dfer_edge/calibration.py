"""Confidence that means what it says: temperature scaling and the expected calibration error.

A kiosk acts on score thresholds ("show the label above 0.6"), so a score of 0.6 should be right about
60% of the time. The temperature is fitted at export time on faces held out of training
(convert/calibrate.py) and stored in the model's JSON sidecar; the runtime applies it to the final
(flip-averaged) probabilities. Pure numpy, shared by training and the runtime.
"""

from __future__ import annotations

import numpy as np

ECE_BINS = 15


def temper(p: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities (..., K) -> softmax(log p / T): T > 1 softens, T < 1 sharpens, T = 1 is the identity.
    Works on the model's probabilities directly, since log-softmax differs from the logits by a constant."""
    p = np.asarray(p, dtype=np.float64)
    if temperature == 1.0:
        return p
    z = np.log(np.clip(p, 1e-12, None)) / temperature
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _bins(confidence: np.ndarray, correct: np.ndarray, bins: int) -> list[tuple[int, int, float, float]]:
    """(bin, faces, mean confidence, accuracy) for every non-empty one of `bins` equal-width bins."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    which = np.clip(np.digitize(confidence, np.linspace(0.0, 1.0, bins + 1)[1:-1], right=True), 0, bins - 1)
    return [(b, int(m.sum()), float(confidence[m].mean()), float(correct[m].mean()))
            for b in range(bins) if (m := which == b).any()]


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE (Guo et al. 2017): the top score's confidence against accuracy in `bins` equal-width bins,
    weighted by the share of faces in each bin."""
    n = len(confidence)
    return float(sum(k / n * abs(c - a) for _, k, c, a in _bins(confidence, correct, bins))) if n else 0.0


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> list[dict]:
    """Per non-empty bin: its range, face count, mean confidence and accuracy (the reliability diagram)."""
    return [{"low": round(b / bins, 4), "high": round((b + 1) / bins, 4), "n": k, "confidence": round(c, 4),
             "accuracy": round(a, 4)} for b, k, c, a in _bins(confidence, correct, bins)]
