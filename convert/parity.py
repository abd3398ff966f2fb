"""Parity: the float Keras model vs every exported TFLite variant, on the same real extracted faces.

The TFLite side runs through the runtime's own ExpressionModel, i.e. exactly as users run it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from dfer_edge.labels import LABELS
from dfer_edge.model import ExpressionModel

from . import data as D


def add_parity_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("keras_model", help="the float Keras model (.keras)")
    p.add_argument("tflite", nargs="+", help="exported .tflite variants")
    p.add_argument("--data", action="append", required=True, help="extracted .npz with labels (repeatable)")
    p.add_argument("--heldout-only", action="store_true",
                   help="for data with subjects (KDEF), keep only the held-out subjects")
    p.add_argument("--limit", type=int, default=0, help="evenly spaced subset of this many faces")
    p.add_argument("--json", dest="json_out", help="write the report as JSON")
    p.add_argument("--markdown", help="write the report as a Markdown table")


def tflite_probs(path: str, x: dict[str, np.ndarray]) -> np.ndarray:
    m = ExpressionModel(path, threads=1)
    return np.stack([m.run(x["right_eye"][i, :, :, 0], x["left_eye"][i, :, :, 0], x["mouth"][i, :, :, 0],
                           x["features"][i]) for i in range(len(x["features"]))])


def compare(reference: np.ndarray, other: np.ndarray, labels: np.ndarray) -> dict:
    ref_acc = float((reference.argmax(1) == labels).mean())
    acc = float((other.argmax(1) == labels).mean())
    return {
        "accuracy": acc,
        "accuracy_diff_points": 100.0 * (acc - ref_acc),
        "argmax_agreement": float((reference.argmax(1) == other.argmax(1)).mean()),
        "max_prob_diff": float(np.abs(reference - other).max()),
    }


def parity(keras_model: str, tflites: list[str], data: list[str], heldout_only: bool = False,
           limit: int = 0) -> dict:
    import keras

    from .splits import heldout_subjects

    parts = []
    for p in data:
        a = D.load(p)
        if heldout_only and any(a.subject):
            held = heldout_subjects()
            a = a.take(np.flatnonzero([s in held for s in a.subject]))
        parts.append(a)
    a = D.Arrays.concat(parts)
    if limit and limit < len(a):
        a = a.take(np.linspace(0, len(a) - 1, limit).astype(int))
    x = D.model_inputs(a)
    ref = keras.models.load_model(keras_model).predict(x, batch_size=256, verbose=0)
    report = {"data": [Path(p).name for p in data], "n": int(len(a)), "labels": list(LABELS),
              "keras_accuracy": float((ref.argmax(1) == a.label).mean()), "variants": {}}
    for t in tflites:
        report["variants"][Path(t).name] = {"size_kib": round(Path(t).stat().st_size / 1024, 1),
                                            **compare(ref, tflite_probs(t, x), a.label)}
    return report


def markdown(r: dict) -> str:
    lines = [f"Data: {', '.join(r['data'])} — {r['n']} faces; float Keras accuracy {100 * r['keras_accuracy']:.2f}%.",
             "", "| variant | size (KiB) | accuracy | vs Keras (points) | argmax agreement | max prob diff |",
             "|---|---|---|---|---|---|"]
    for name, v in r["variants"].items():
        lines.append(f"| {name} | {v['size_kib']} | {100 * v['accuracy']:.2f}% | {v['accuracy_diff_points']:+.2f} "
                     f"| {100 * v['argmax_agreement']:.2f}% | {v['max_prob_diff']:.4f} |")
    return "\n".join(lines) + "\n"


def parity_main(a: argparse.Namespace) -> None:
    r = parity(a.keras_model, a.tflite, a.data, a.heldout_only, a.limit)
    md = markdown(r)
    print(md)
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(r, indent=1) + "\n")
    if a.markdown:
        Path(a.markdown).write_text(md)
