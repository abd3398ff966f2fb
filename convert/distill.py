"""Distillation: an ensemble's averaged soft outputs become (part of) a student's training targets.

`python -m convert teach` runs the teachers once over the training caches (clean faces, flip-averaged,
as the runtime scores them) and writes the averaged probabilities keyed by face name; `convert train
--teacher FILE --distill ALPHA` mixes them into the targets. Keyed by name, a teacher may have been
trained on other crop regions or be another kind of network altogether.
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
    np.savez(a.out, name=np.concatenate(names), probabilities=np.concatenate(probs))
    print(f"wrote {a.out}")


def mix_teacher(a: D.Arrays, teacher: str, alpha: float) -> tuple[D.Arrays, int]:
    """Targets (1 - alpha) * own + alpha * teacher for faces the teacher file names; -> (arrays, matched)."""
    z = np.load(teacher, allow_pickle=False)
    index = {str(n): i for i, n in enumerate(z["name"])}
    rows = np.array([index.get(str(n), -1) for n in a.name])
    hit = rows >= 0
    target = a.target.copy()
    target[hit] = (1 - alpha) * target[hit] + alpha * z["probabilities"][rows[hit]]
    return a.with_target(target), int(hit.sum())
