"""Keras model -> TFLite variants (float32, float16, dynamic-range, full int8) with a JSON sidecar.

Path: `model.export(savedmodel_dir)` then `TFLiteConverter.from_saved_model` — the route that works
for every variant (from_concrete_functions silently produced NaN models). Default ops only, so both
ai-edge-litert and tflite-runtime load the result.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from dfer_edge.labels import LABELS

from . import data as D

VARIANTS = ("float32", "float16", "dynamic", "int8")


def add_export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="trained Keras model (.keras)")
    p.add_argument("--out-dir", default="models", help="where to write NAME-VARIANT.tflite/.json")
    p.add_argument("--name", default="dfer")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {', '.join(VARIANTS)}")
    p.add_argument("--rep", action="append", default=[],
                   help="extracted .npz for int8 calibration (repeatable; real faces)")
    p.add_argument("--rep-count", type=int, default=400)
    p.add_argument("--features", default="iod", choices=("iod", "seed-pixels"),
                   help="feature convention the model was trained with (written into metadata)")
    p.add_argument("--note", default="", help="free text stored in the metadata (e.g. training data)")


def representative(paths: list[str], count: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Real extracted inputs, one dict per sample keyed by input name (what the converter needs)."""
    if not paths:
        raise SystemExit("error: int8 export needs --rep with at least one extracted .npz of real faces")
    parts = [D.load(p) for p in paths]
    a = D.Arrays.concat(parts)
    idx = np.random.default_rng(seed).choice(len(a), size=min(count, len(a)), replace=False)
    x = D.model_inputs(a.take(np.sort(idx)))
    return [{k: v[i:i + 1] for k, v in x.items()} for i in range(len(idx))]


def convert_saved_model(saved: str, variant: str, rep: list[dict[str, np.ndarray]] | None) -> bytes:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_saved_model(saved)
    if variant == "float16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif variant == "dynamic":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant == "int8":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]

        def gen() -> Iterator[dict[str, np.ndarray]]:
            yield from rep

        conv.representative_dataset = gen
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    elif variant != "float32":
        raise SystemExit(f"error: unknown variant {variant!r}; expected one of {VARIANTS}")
    return conv.convert()


def export(model, out_dir: str | Path, name: str, variants: list[str], rep: list[dict] | None,
           features: str = "iod", labels: tuple[str, ...] = LABELS, note: str = "",
           source: str = "") -> list[Path]:
    """Export a loaded Keras model (inputs named right_eye/left_eye/mouth/features)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    size = int(model.get_layer("mouth").output.shape[1]) if "mouth" in [i.name for i in model.inputs] else None
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        saved = str(Path(tmp) / "saved")
        model.export(saved, verbose=False)
        for v in variants:
            blob = convert_saved_model(saved, v, rep if v == "int8" else None)
            path = out_dir / f"{name}-{v}.tflite"
            path.write_bytes(blob)
            meta = {
                "format": "dfer-edge-model/1",
                "labels": list(labels),
                "inputs": ["right_eye", "left_eye", "mouth", "features"],
                "crop_size": size,
                "features": features,
                "pixels": "crop / 255",
                "variant": v,
                "source": source,
                "note": note,
                "exported": dt.date.today().isoformat(),
            }
            path.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
            written.append(path)
            print(f"wrote {path} ({len(blob) / 1024:.0f} KiB)")
    return written


def export_main(a: argparse.Namespace) -> None:
    import keras

    model = keras.models.load_model(a.model)
    variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    rep = representative(a.rep, a.rep_count) if "int8" in variants else None
    export(model, a.out_dir, a.name, variants, rep, a.features, note=a.note, source=Path(a.model).name)
