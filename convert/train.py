"""Training the four-branch model on extracted caches, validated on held-out data (by subject for KDEF)."""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from dfer_edge.labels import LABELS

from . import data as D
from .errors import ConvertError
from .splits import heldout_subjects

def add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--train", action="append", default=[], help="training .npz (repeatable)")
    p.add_argument("--val", action="append", default=[], help="validation .npz (repeatable)")
    p.add_argument("--out", required=True, help="output directory (model.keras, metrics.json)")
    p.add_argument("--labels", default="original", choices=D.LABEL_MODES,
                   help="targets for data with FER+ votes (default: the dataset's own labels)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--width", type=int, default=1, help="width multiplier of every layer")
    p.add_argument("--branch-width", type=float, default=1.0,
                   help="extra multiplier of the first two convolutions of each crop branch only")
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--l2", type=float, default=0.0)
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--class-weight", default="sqrt", choices=("none", "sqrt", "balanced"))
    p.add_argument("--repeat", action="append", default=[],
                   help="NAME=K: repeat training file whose name contains NAME K times (e.g. kdef=3)")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--wild-augment", action="store_true",
                   help="also random erasing, blur, low resolution and gamma (convert/data.py: Augment)")
    p.add_argument("--original-weight", type=float, default=0.0,
                   help="with FER+ targets: weight of the dataset's own label in each FER+ face's target")
    p.add_argument("--keep-non-expression", action="store_true",
                   help="with FER+ targets, keep faces whose raters mostly said contempt/unknown/not-a-face "
                        "(default: leave them out)")
    p.add_argument("--calibration-holdout", type=float, default=0.05,
                   help="fraction of FER+-voted training faces (chosen by file name) kept out of training to fit "
                        "the softmax temperature on (0: no calibration)")
    p.add_argument("--teacher", help="teacher outputs from `python -m convert teach` (distillation)")
    p.add_argument("--distill", type=float, default=0.5, help="weight of the teacher in the targets (with --teacher)")
    p.add_argument("--threads", type=int, default=0, help="TensorFlow threads (0: TensorFlow decides)")
    p.add_argument("--seed", type=int, default=0)


def batch_stream(a: D.Arrays, batch: int, weights: np.ndarray, aug: D.Augment | None, seed: int):
    """Endless augmented, class-weighted batches, freshly shuffled every pass over the data."""
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(len(a))
        for i in range(0, len(a), batch):
            idx = np.sort(order[i:i + batch])
            x = D.model_inputs(a.take(idx)) if aug is None else D.augmented_batch(a, idx, rng, aug)
            yield x, a.target[idx], weights[idx]


def prefetch(gen, depth: int = 3):
    """Run a batch generator in a background thread, so augmentation overlaps the training step."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(depth)

    def work() -> None:
        for item in gen:
            q.put(item)

    threading.Thread(target=work, daemon=True).start()
    while True:
        yield q.get()


def class_weights(target: np.ndarray, how: str) -> np.ndarray:
    freq = target.sum(0) / target.sum()
    if how == "none":
        w = np.ones_like(freq)
    elif how == "sqrt":
        w = 1.0 / np.sqrt(freq + 1e-6)
    else:
        w = 1.0 / (freq + 1e-6)
    return (w / (w * freq).sum()).astype(np.float32)


def load_sets(paths: list[str], mode: str, for_training: bool,
              drop_non_expression: bool = False, original_weight: float = 0.0) -> list[tuple[str, D.Arrays]]:
    """Load caches; KDEF-like files (with subjects) are cut by kdef_split.json: training keeps the
    other subjects, validation keeps only the held-out ones."""
    out = []
    held = heldout_subjects()
    for p in paths:
        a = D.load(p, mode, drop_non_expression, original_weight)
        name = Path(p).stem
        if any(a.subject):
            is_held = np.array([s in held for s in a.subject])
            a = a.take(np.flatnonzero(~is_held if for_training else is_held))
            name += "-train-subjects" if for_training else "-heldout-subjects"
        out.append((name, a))
    return out


def evaluate(model, a: D.Arrays, majority: np.ndarray | None = None) -> dict:
    """Accuracy and per-class recall on the dataset's own labels, one view and flip-averaged (as the
    runtime scores); with `majority` (FER+ majority per face, -1 for none) also against FER+."""
    from .calibrate import views

    p1, p2 = views(model, a)

    def score(p: np.ndarray, y: np.ndarray) -> dict:
        pred = p.argmax(1)
        return {"n": int(len(y)), "accuracy": float((pred == y).mean()),
                "recall": {LABELS[c]: float((pred[y == c] == c).mean()) if (y == c).any() else None
                           for c in range(len(LABELS))}}

    out = {**score(p1, a.label), "flip_averaged": score(p2, a.label)}
    if majority is not None and (majority >= 0).any():
        m = majority >= 0
        out["ferplus_majority"] = score(p1[m], majority[m])
        out["ferplus_majority_flip_averaged"] = score(p2[m], majority[m])
    return out


def majority_for(path: str, a: D.Arrays) -> np.ndarray | None:
    """FER+ majority per face of a validation set loaded whole from `path` (FER2013); None for subject
    data (KDEF), which has no votes and is cut to its held-out subjects."""
    return None if any(a.subject) else D.ferplus_majority(path)


def train_main(a: argparse.Namespace) -> None:
    if a.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(a.threads)
        tf.config.threading.set_inter_op_parallelism_threads(a.threads)
    import keras

    from .calibrate import fit_temperature, holdout_mask
    from .distill import mix_teacher
    from .model import build_model

    keras.utils.set_random_seed(a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    regions = {json.dumps(D.crop_regions(p), sort_keys=True) for p in a.train + a.val}
    if len(regions) != 1:
        raise ConvertError(f"the caches were extracted with different crop regions: {sorted(regions)}")
    equalizers = {D.equalizer(p) for p in a.train + a.val}
    if len(equalizers) != 1:
        raise ConvertError(f"the caches were extracted with different equalisers: {sorted(equalizers)}")
    train_sets = load_sets(a.train, a.labels, True, not a.keep_non_expression, a.original_weight)
    reps = dict(r.split("=") for r in a.repeat)
    parts = []
    calib_parts = []
    for name, arr in train_sets:
        if a.calibration_holdout > 0:
            held = holdout_mask(arr, a.calibration_holdout)
            if held.any():
                calib_parts.append(arr.take(np.flatnonzero(held)))
                arr = arr.take(np.flatnonzero(~held))
                print(f"calibration: {name}: {int(held.sum())} faces held out")
        if a.teacher:
            arr, hit = mix_teacher(arr, a.teacher, a.distill)
            print(f"teacher: {name}: {hit} of {len(arr)} faces get {a.distill:g} of their target from {a.teacher}")
        k = next((int(v) for n, v in reps.items() if n in name), 1)
        parts += [arr] * k
        print(f"train: {name}: {len(arr)} faces x{k}")
    tr = D.Arrays.concat(parts)
    # Held-out subjects of subject-labelled training files validate too; np.load reads only `subject`
    # here, not the whole cache again.
    with_subjects = [p for p in a.train if any(np.load(p)["subject"])]
    val_sets = load_sets(a.val, "original", False) + load_sets(with_subjects,
                                                               "original", False)
    feats = D.features(tr.landmarks)
    model = build_model(tr.right_eye.shape[1], a.width, a.dropout, True, feats.mean(0), feats.var(0) + 1e-6, a.l2,
                        a.branch_width)
    w = class_weights(tr.target, a.class_weight)
    sample_w = (tr.target * w).sum(1)
    aug = None if a.no_augment else (D.Augment(erase=0.25, blur=0.15, lowres=0.15, gamma=0.4) if a.wild_augment
                                      else D.Augment())
    per_epoch = math.ceil(len(tr) / a.batch)
    sched = keras.optimizers.schedules.CosineDecay(0.0, a.epochs * per_epoch, warmup_target=a.lr,
                                                   warmup_steps=per_epoch)
    model.compile(keras.optimizers.AdamW(sched, weight_decay=1e-4),
                  keras.losses.CategoricalCrossentropy(label_smoothing=a.label_smoothing), metrics=["accuracy"])
    val_name, val_arr = val_sets[0]
    val_x = D.model_inputs(val_arr)
    val_y = np.eye(len(LABELS), dtype=np.float32)[val_arr.label]
    t0 = time.time()
    # The last epoch is kept (no checkpoint picking on validation data, so validation stays unseen).
    hist = model.fit(prefetch(batch_stream(tr, a.batch, sample_w, aug, a.seed)), steps_per_epoch=per_epoch,
                     epochs=a.epochs, validation_data=(val_x, val_y), verbose=2)
    model.save(out / "model.keras")
    metrics = {
        "args": {k: v for k, v in vars(a).items() if k != "func"},
        "train_faces": int(len(tr)),
        "crop_regions": json.loads(regions.pop()),
        "equalize": equalizers.pop(),
        "train_seconds": round(time.time() - t0),
        "monitored": val_name,
        "history": {k: [round(float(x), 4) for x in v] for k, v in hist.history.items()},
        "val": {name: evaluate(model, arr, majority_for(p, arr))
                for (name, arr), p in zip(val_sets, a.val + with_subjects)},
    }
    if calib_parts:
        cal = fit_temperature(model, D.Arrays.concat(calib_parts))
        metrics["calibration"] = cal
        print(f"calibration: temperature {cal['temperature']:.3f} on {cal['n']} held-out faces "
              f"(ECE {cal['ece_before']:.4f} -> {cal['ece_after']:.4f})")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    for name, m in metrics["val"].items():
        print(summary(name, m))


def summary(name: str, m: dict) -> str:
    fp = m.get("ferplus_majority_flip_averaged")
    return (f"{name}: accuracy {m['accuracy']:.4f} (flip-averaged {m['flip_averaged']['accuracy']:.4f}) on {m['n']} faces"
            + (f"; against FER+ majority {fp['accuracy']:.4f} flip-averaged on {fp['n']}" if fp else ""))


def score_main(a: argparse.Namespace) -> None:
    """`python -m convert score MODEL --val X.npz ...`: the same validation report for a saved model."""
    import keras

    model = keras.models.load_model(a.model)
    report = {}
    for (name, arr), p in zip(load_sets(a.val, "original", False), a.val):
        report[name] = evaluate(model, arr, majority_for(p, arr))
        print(summary(name, report[name]))
        print("  recall (flip-averaged): " + ", ".join(f"{k} {v:.2f}" for k, v in report[name]["flip_averaged"]["recall"].items() if v is not None))
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1))
