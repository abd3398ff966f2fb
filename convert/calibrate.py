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


def nll(p: np.ndarray, y: np.ndarray, t: float) -> float:
    return float(-np.log(np.clip(temper(p, t)[np.arange(len(y)), y], 1e-12, None)).mean())


def best_temperature(p: np.ndarray, y: np.ndarray, others: list[tuple[np.ndarray, np.ndarray]] = ()) -> float:
    """The temperature in [0.3, 4] (steps of 0.01) with the lowest negative log-likelihood of labels y;
    with `others` (more (p, y) sets, e.g. another domain), the lowest mean of the sets' own mean NLLs, so
    that a small set weighs as much as a large one."""
    grid = np.round(np.arange(0.30, 4.0001, 0.01), 2)
    sets = [(p, y), *others]
    loss = [np.mean([nll(q, z, t) for q, z in sets]) for t in grid]
    return float(grid[int(np.argmin(loss))])


def _report(p: np.ndarray, y: np.ndarray, t: float) -> dict:
    q = temper(p, t)
    return {"n": int(len(y)), "accuracy": round(float((p.argmax(1) == y).mean()), 4),
            "ece_before": round(expected_calibration_error(p.max(1), p.argmax(1) == y), 4),
            "ece_after": round(expected_calibration_error(q.max(1), q.argmax(1) == y), 4)}


def fit_temperature(model, a: D.Arrays, official: dict[str, int] | None = None,
                    posed: D.Arrays | None = None) -> dict:
    """Temperature against the labels the model is trained for. With `official` (file name -> the official
    FER+ majority, D.official_by_name), against that, on the held-out faces that have one: the FER+
    measure this project reports. Without, against the argmax of each face's training target.

    With `posed` (faces of KDEF's tune subjects, never trained on), against their posed labels as well, each
    set weighing the same: one temperature serves both kinds of face the model is trained for, wild and posed,
    instead of the wild ones alone (which left posed faces overconfident)."""
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
    others = []
    if posed is not None and len(posed):
        others = [(flip_averaged(model, posed), posed.label)]
        against += f", and the posed labels of {len(posed)} KDEF tune-subject faces (each set weighing the same)"
    t = best_temperature(p, y, others)
    out = {"temperature": t, "held_out": held_out, "against": against, **_report(p, y, t)}
    if others:
        out["posed"] = _report(*others[0], t)
    return out
