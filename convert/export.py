"""Keras model -> TFLite variants (float32, float16, dynamic-range, int8, full int8) with a JSON sidecar.

Path: `model.export(savedmodel_dir)` then `TFLiteConverter.from_saved_model` — the route that works
for every variant (from_concrete_functions silently produced NaN models). Default ops only, so both
ai-edge-litert and tflite-runtime load the result.

Models trained elsewhere (the original DeepFER's Keras 2 .h5, or any .keras with other input names) are
loaded and renamed by convert/legacy.py; their feature convention and label order go into the metadata.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from dfer_edge.contract import ModelContract, with_metadata
from dfer_edge.extract import FEATURE_MODES
from dfer_edge.labels import LABELS
from dfer_edge.model import SHIPPED_VARIANTS

from . import data as D
from .errors import ConvertError
from .legacy import (INPUT_NAMES, LOADERS, LoadedModel, batch_of_one, fail, inputs_from_landmarks, load, parse_input_map,
                     parse_labels, real_inputs)

VARIANTS = SHIPPED_VARIANTS  # one list of variant names for the converter and the runtime
NEEDS_CALIBRATION = ("int8", "int8-full")


def add_export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="trained Keras model: .keras, or a Keras 2 legacy .h5 (e.g. the original "
                                 "DeepFER's dfer_model.h5)")
    p.add_argument("--out-dir", default="models", help="where to write NAME-VARIANT.tflite/.json")
    p.add_argument("--name", default="dfer")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {', '.join(VARIANTS)}")
    p.add_argument("--rep", action="append", default=[],
                   help="real faces for int8 calibration: an extracted .npz or an image folder (repeatable)")
    p.add_argument("--rep-count", type=int, default=400)
    p.add_argument("--features", default="auto", choices=("auto",) + FEATURE_MODES,
                   help="feature convention the model was trained with, written into the metadata: iod (this "
                        "project's, distances / inter-ocular distance) or seed-pixels (the original DeepFER's raw "
                        "pixel distances); auto: iod for inputs named right_eye/left_eye/mouth/features, else required")
    p.add_argument("--inputs", default="",
                   help="which model input is which, e.g. input_1=right_eye,input_2=left_eye,input_3=mouth,"
                        "input_4=features (default: recognised by name, also the seed's "
                        "Right_Eye/Left_Eye/Lips/Features)")
    p.add_argument("--labels", default="",
                   help=f"the model's output order, comma-separated (default: {','.join(LABELS)})")
    p.add_argument("--loader", default="auto", choices=LOADERS,
                   help="auto: Keras 3, and tf_keras where Keras 3 cannot load the file")
    p.add_argument("--parity-data", action="append", default=[],
                   help="after exporting, compare Keras and every variant on these real faces: an extracted .npz "
                        "or an image folder such as ../shared/data/fer2013/val (repeatable)")
    p.add_argument("--parity-limit", type=int, default=50, help="evenly spaced faces for --parity-data (0: all)")
    p.add_argument("--note", default="", help="free text stored in the metadata (e.g. training data)")
    p.add_argument("--run", help="the `convert train` output folder: its metrics.json gives the crop regions the "
                                 "model was trained with and the softmax temperature fitted on held-out faces, "
                                 "both stored in every variant's metadata")


def representative(paths: list[str], count: int, seed: int = 0, size: int | None = None,
                   mode: str = "iod") -> list[dict[str, np.ndarray]]:
    """Real extracted inputs, one dict per sample keyed by input name (what the converter needs), at the
    model's crop size and feature convention. Paths: extracted .npz files or image folders."""
    if not paths:
        raise ConvertError("int8 export needs --rep with at least one extracted .npz or image folder "
                         "of real faces")
    if all(p.endswith(".npz") for p in paths):
        parts = [D.load(p) for p in paths]
        a = D.Arrays.concat(parts)
        idx = np.random.default_rng(seed).choice(len(a), size=min(count, len(a)), replace=False)
        a = a.take(np.sort(idx))
        if size and a.mouth.shape[1] != size:
            print(f"note: --rep crops are {a.mouth.shape[1]}px; resized to the model's {size}px")
        x = inputs_from_landmarks(a.right_eye, a.left_eye, a.mouth, a.landmarks, size or a.mouth.shape[1], mode)
    else:
        x, _ = real_inputs(paths, size or 96, mode, count)
    n = len(x["features"])
    return [{k: v[i:i + 1] for k, v in x.items()} for i in range(n)]


def convert_saved_model(saved: str, variant: str, rep: list[dict[str, np.ndarray]] | None,
                        float_model: Callable[[], bytes] | None = None) -> bytes:
    """One variant. int8-full is integer-only (int8 inputs and outputs, every op int8). int8 is the same
    calibration with the three first convolutions left in float: XNNPACK's int8 convolution on a
    one-channel image is ~6x slower than the float one (0.12 vs 0.02 ms per crop), so keeping those 1,728
    weights in float makes the whole model ~40% faster; everything after them runs in int8.

    `float_model` returns the float32 conversion of the same SavedModel, which int8 reads its first
    convolutions from; export() passes a cached one, so exporting float32 and int8 converts it once."""
    import tensorflow as tf

    def converter():
        conv = tf.lite.TFLiteConverter.from_saved_model(saved)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        return conv

    if variant == "float32":
        return tf.lite.TFLiteConverter.from_saved_model(saved).convert()
    if variant == "float16":
        conv = converter()
        conv.target_spec.supported_types = [tf.float16]
        return conv.convert()
    if variant == "dynamic":
        return converter().convert()
    if variant not in NEEDS_CALIBRATION:
        raise ConvertError(f"unknown variant {variant!r}; expected one of {VARIANTS}")

    def gen() -> Iterator[dict[str, np.ndarray]]:
        yield from rep

    conv = converter()
    conv.representative_dataset = gen
    if variant == "int8-full":
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
        return conv.convert()
    first = first_convolutions(float_model() if float_model else convert_saved_model(saved, "float32", None))
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=first)
    debugger = tf.lite.experimental.QuantizationDebugger(converter=conv, debug_dataset=lambda: iter(rep[:20]),
                                                         debug_options=options)
    return debugger.get_nondebug_quantized_model()


def first_convolutions(float_model: bytes) -> list[str]:
    """Output tensor names of the CONV_2D ops that read a one-channel image: the crops' first layers,
    the ones XNNPACK's int8 kernels are slow on. None found (another architecture): all ops go int8."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=float_model)
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    return [tensors[op["outputs"][0]]["name"] for op in it._get_ops_details()
            if op["op_name"] == "CONV_2D" and len(tensors[op["inputs"][0]]["shape"]) == 4
            and tensors[op["inputs"][0]]["shape"][-1] == 1]


def export(model, out_dir: str | Path, name: str, variants: list[str], rep: list[dict] | None,
           features: str = "iod", labels: tuple[str, ...] = LABELS, note: str = "",
           source: str = "", crop_size: int | None = None,
           save: Callable[[str], None] | None = None, extra_meta: dict | None = None) -> list[Path]:
    """Export a model with inputs named right_eye/left_eye/mouth/features: a Keras 3 model, or (with
    `save`, a function writing the SavedModel to a folder, and `crop_size`) any model behind a SavedModel."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    size = crop_size
    if size is None and model is not None and "mouth" in [i.name for i in model.inputs]:
        size = int(model.get_layer("mouth").output.shape[1])
    save = save or (lambda d: model.export(d, verbose=False, input_signature=[batch_of_one(model)]))
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        saved = str(Path(tmp) / "saved")
        save(saved)
        float_model = functools.cache(lambda: convert_saved_model(saved, "float32", None))
        for v in variants:
            blob = float_model() if v == "float32" else \
                convert_saved_model(saved, v, rep if v in NEEDS_CALIBRATION else None, float_model)
            path = out_dir / f"{name}-{v}.tflite"
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
                **FOREIGN_CONTRACT,
                **(extra_meta or {}),
            }
            if size is not None:  # what the runtime will demand, checked before writing (None: not our inputs)
                ModelContract.from_dict(meta, str(path))
            blob = with_metadata(blob, meta)  # inside the model: a copied .tflite keeps its contract
            path.write_bytes(blob)
            path.with_suffix(".json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
            written.append(path)
            print(f"wrote {path} ({len(blob) / 1024:.0f} KiB)")
    return written


def embed_main(a: argparse.Namespace) -> None:
    """`python -m convert embed MODEL.tflite ...`: the sidecar's contract written inside each model, checked
    first as the runtime will check it, and the sidecar rewritten as its exact copy."""
    for name in a.models:
        path = Path(name)
        side = path.with_suffix(".json")
        try:
            meta = json.loads(side.read_text())
            data = path.read_bytes()
        except (OSError, ValueError) as e:
            raise fail(f"{path}: cannot read the model and its sidecar {side.name} ({e})")
        ModelContract.from_dict(meta, str(path))
        path.write_bytes(with_metadata(data, meta))
        side.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        print(f"{path}: contract embedded ({path.stat().st_size / 1024:.0f} KiB)")


def export_parity(loaded: LoadedModel, tflites: list[Path], data: list[str], limit: int, mode: str,
                  labels: tuple[str, ...]) -> dict:
    """Keras vs every exported variant on real faces (inputs at the model's crop size and feature
    convention), probabilities in LABELS order on both sides; printed as parity.markdown's table."""
    from .parity import compare, markdown, tflite_probs

    x, y = real_inputs(data, loaded.spec.size, mode, limit)
    order = [labels.index(lab) for lab in LABELS]
    ref = loaded.predict(x)[:, order]
    report = {"data": [Path(p).name for p in data], "n": int(len(y)), "labels": list(LABELS),
              "keras_accuracy": float((ref.argmax(1) == y).mean()), "variants": {}}
    for t in tflites:
        report["variants"][Path(t).name] = {"size_kib": round(Path(t).stat().st_size / 1024, 1),
                                            **compare(ref, tflite_probs(str(t), x), y)}
    print(markdown(report))
    return report


UNCALIBRATED = {"temperature": 1.0, "fitted_on": "not calibrated (no temperature was fitted)"}
# A model trained elsewhere (the seed, or --features given for foreign input names): the first models'
# crop regions and global equalisation, which is what such a model was fed when it was made.
FOREIGN_CONTRACT = {"crop_regions": {}, "equalize": "global", "calibration": UNCALIBRATED}


def read_run(run_dir: str) -> dict:
    """The preprocessing a training run fixed (its contract.json, written by `convert train`; runs from
    before it existed: the same fields of metrics.json): crop regions, equaliser, calibration."""
    run = Path(run_dir)
    if (run / "contract.json").is_file():
        path = run / "contract.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise fail(f"{path}: not a contract written by `convert train` ({e})")
    path = run / "metrics.json"
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise fail(f"{path}: not a metrics file written by `convert train` ({e}); give --run the training folder")
    return contract_of(m)


def contract_of(metrics: dict) -> dict:
    """The contract fields of a finished run's metrics (what `convert train` writes as contract.json)."""
    out = {"crop_regions": metrics.get("crop_regions") or {}, "equalize": metrics.get("equalize", "global"),
           "calibration": dict(UNCALIBRATED)}
    cal = metrics.get("calibration")
    if cal:
        out["calibration"] = {"temperature": float(cal["temperature"]),
                              "fitted_on": f"{cal.get('n')} FER2013 train faces held out of training, flip-averaged, "
                                           f"against {cal.get('against', 'the argmax of their training targets')}",
                              "ece_before": cal.get("ece_before"), "ece_after": cal.get("ece_after")}
        if "posed" in cal:
            out["calibration"]["posed"] = cal["posed"]
    return out


def export_main(a: argparse.Namespace) -> None:
    labels = parse_labels(a.labels)
    loaded = load(a.model, parse_input_map(a.inputs), len(labels), a.loader)
    spec = loaded.spec
    features = a.features
    if features == "auto":
        if not spec.canonical:
            raise fail(f"{Path(a.model).name} has inputs {spec.order}, not this project's; say which features it was "
                       "trained with: --features seed-pixels (the original DeepFER's raw pixel distances) or "
                       "--features iod (distances / inter-ocular distance)")
        features = "iod"
    variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise fail(f"unknown variant(s) {unknown}; expected some of {', '.join(VARIANTS)}")
    print(f"{Path(a.model).name}: loaded with {loaded.loader}; inputs "
          + ", ".join(f"{spec.source[c]}->{c}" for c in INPUT_NAMES)
          + f"; crops {spec.size}x{spec.size}; features {features}; labels {','.join(labels)}")
    for n in loaded.notes:
        print(f"note: {n}")
    rep = representative(a.rep, a.rep_count, size=spec.size, mode=features) if set(variants) & set(NEEDS_CALIBRATION) else None
    extra = {} if spec.canonical else {"source_inputs": {c: spec.source[c] for c in INPUT_NAMES}}
    if a.run:
        extra.update(read_run(a.run))
    elif spec.canonical and a.features == "auto":
        raise fail(f"{Path(a.model).name} is a model of this project's, but how its inputs were made (crop regions, "
                   "equaliser, calibration) is unknown: give --run RUN, the `convert train` folder it came from "
                   "(or --features iod for a model trained elsewhere with the first models' preprocessing)")
    else:  # export() writes FOREIGN_CONTRACT where no run says otherwise
        print("note: no --run: the first models' crop regions, global equalisation and no calibration go into "
              "the metadata")
    written = export(loaded.wrapped, a.out_dir, a.name, variants, rep, features, labels, note=a.note,
                     source=Path(a.model).name, crop_size=spec.size, save=loaded.write_saved_model,
                     extra_meta=extra)
    if a.parity_data:
        export_parity(loaded, written, a.parity_data, a.parity_limit, features, labels)
