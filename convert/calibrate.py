"""Fitting the softmax temperature on training faces that were kept out of training.

The faces are chosen by a hash of their file name, so the same faces are held out on every run and
machine. Fitted on the flip-averaged probabilities, because that is what the runtime tempers.
"""

from __future__ import annotations

import zlib

import numpy as np

from dfer_edge.calibration import expected_calibration_error, temper

from . import data as D


def holdout_mask(a: D.Arrays, fraction: float) -> np.ndarray:
    """Faces of datasets without subjects (FER2013), about `fraction` of them, by file-name hash.
    Subject-labelled data (KDEF) is never held out here: its held-out subjects are kdef_split.json's."""
    if fraction <= 0:
        return np.zeros(len(a), bool)
    names = [str(n).rsplit("/", 1)[-1] for n in a.name]
    h = np.array([zlib.crc32(n.encode()) % 10_000 for n in names])
    no_subject = np.array([not s for s in a.subject])
    return no_subject & (h < fraction * 10_000)


def views(model, a: D.Arrays) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities of the faces as seen, flip-averaged probabilities): one pass per view."""
    p = model.predict(D.inputs_for(model, a), batch_size=256, verbose=0)
    q = model.predict(D.inputs_for(model, D.mirrored(a)), batch_size=256, verbose=0)
    return p, (p + q) / 2.0


def flip_averaged(model, a: D.Arrays) -> np.ndarray:
    return views(model, a)[1]


def best_temperature(p: np.ndarray, y: np.ndarray) -> float:
    """The temperature in [0.3, 4] (steps of 0.01) with the lowest negative log-likelihood of labels y."""
    grid = np.round(np.arange(0.30, 4.0001, 0.01), 2)
    nll = [-np.log(np.clip(temper(p, t)[np.arange(len(y)), y], 1e-12, None)).mean() for t in grid]
    return float(grid[int(np.argmin(nll))])


def fit_temperature(model, a: D.Arrays, official: dict[str, int] | None = None) -> dict:
    """Temperature against the labels the model is trained for. With `official` (file name -> the official
    FER+ majority, D.official_by_name), against that, on the held-out faces that have one: the FER+
    measure this project reports. Without, against the argmax of each face's training target."""
    held_out = len(a)
    if official:
        keep = np.array([str(n) in official for n in a.name])
        a = a.take(np.flatnonzero(keep))
        y = np.array([official[str(n)] for n in a.name], dtype=int)
        against = "the FER+ official majority (microsoft/FERPlus rule; dfer_edge.ferplus)"
    else:
        y = a.target.argmax(1)
        against = "the argmax of each face's training target"
    p = flip_averaged(model, a)
    t = best_temperature(p, y)
    q = temper(p, t)
    return {
        "temperature": t,
        "n": int(len(y)),
        "held_out": held_out,
        "against": against,
        "accuracy": round(float((p.argmax(1) == y).mean()), 4),
        "ece_before": round(expected_calibration_error(p.max(1), p.argmax(1) == y), 4),
        "ece_after": round(expected_calibration_error(q.max(1), q.argmax(1) == y), 4),
    }
