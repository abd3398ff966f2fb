"""Distillation: an ensemble's averaged soft outputs become (part of) a student's training targets.

`python -m convert teach` runs the teachers once over the training caches (clean faces, flip-averaged,
as the runtime scores them) and writes the averaged probabilities keyed by face (face_key: the label
folder and file name, so the file does not depend on where the data lives); `convert train --teacher
FILE [--teacher FILE2 ...] --distill ALPHA` averages the files and mixes them into the targets. Keyed by
face, a teacher may have been trained on other crop regions or be another kind of network altogether
(a whole-face teacher, --arch face), and its outputs can be committed and reused without retraining it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from . import data as D
from .calibrate import flip_averaged


def add_teach_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", action="append", required=True, help="teacher .keras (repeatable: an ensemble)")
    p.add_argument("--data", action="append", required=True,
                   help="cache .npz the teacher was trained on the crops of (repeatable; the student's --train files "
                        "or the same faces extracted with the teacher's crop regions)")
    p.add_argument("--out", required=True, help="output .npz: name, probabilities")


def teach_main(a: argparse.Namespace) -> None:
    import keras

    models = [keras.models.load_model(m) for m in a.model]
    names, probs = [], []
    for path in a.data:
        arr = D.load(path)
        p = np.mean([flip_averaged(m, arr) for m in models], axis=0)
        names.append(arr.name)
        probs.append(p.astype(np.float32))
        print(f"{Path(path).name}: {len(arr)} faces, teacher accuracy on its own labels "
              f"{(p.argmax(1) == arr.label).mean():.4f}")
    np.savez_compressed(a.out, name=np.array([face_key(n) for n in np.concatenate(names)]),
                        probabilities=np.concatenate(probs).astype(np.float16))
    print(f"wrote {a.out}")


def face_key(name) -> str:
    """A face's key in teacher files: its label folder and file name ("anger/Training_10118481.jpg",
    "fear/AF01AFHL.jpg#capture0"), unique in FER2013 and KDEF and the same wherever the data is."""
    return "/".join(str(name).replace("\\", "/").split("/")[-2:])


def teacher_probabilities(files: list[str]) -> dict[str, np.ndarray]:
    """Face key -> the teachers' probabilities, averaged over the files that have the face."""
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for f in files:
        z = np.load(f, allow_pickle=False)
        for n, p in zip(z["name"], z["probabilities"].astype(np.float32)):
            k = face_key(n)
            sums[k] = sums.get(k, 0) + p
            counts[k] = counts.get(k, 0) + 1
    return {k: v / v.sum() for k, v in ((k, sums[k] / counts[k]) for k in sums)}


def source_key(key: str) -> str:
    """The key of the clean photo a capture-degraded copy was made from ("fear/AF01AFHL.jpg#capture0" ->
    "fear/AF01AFHL.jpg"); other keys are their own source."""
    return key.split("#capture")[0]


def mix_teacher(a: D.Arrays, teachers: list[str], alpha: float, clean_copies: bool = False) -> tuple[D.Arrays, int]:
    """Targets (1 - alpha) * own + alpha * teachers for faces the teacher files name; -> (arrays, matched).

    clean_copies: a capture-degraded copy gets what the teachers say of its clean photo, not of the copy, so
    the student learns to give the clean answer under blur and noise instead of copying the teachers'
    uncertainty there (a copy whose clean photo no teacher file names keeps its own entry)."""
    probs = teacher_probabilities(teachers)
    keys = [face_key(n) for n in a.name]
    rows = [probs.get(source_key(k), probs.get(k)) if clean_copies else probs.get(k) for k in keys]
    hit = np.array([r is not None for r in rows])
    target = a.target.copy()
    if hit.any():
        target[hit] = (1 - alpha) * target[hit] + alpha * np.stack([r for r in rows if r is not None])
    return a.with_target(target), int(hit.sum())
