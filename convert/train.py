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
from .splits import heldout_subjects, tune_subjects

def add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--train", action="append", default=[], help="training .npz (repeatable)")
    p.add_argument("--val", action="append", default=[], help="validation .npz (repeatable)")
    p.add_argument("--out", help="run directory (model.keras, metrics.json, and a checkpoint every epoch); "
                                 "keep it outside the checkout, e.g. under ~/.cache/dfer-edge/runs")
    p.add_argument("--resume", metavar="RUN",
                   help="continue the interrupted run in this directory from its last checkpoint, with the "
                        "settings it was started with (every other option is ignored)")
    p.add_argument("--labels", default="original", choices=D.LABEL_MODES,
                   help="targets for data with FER+ votes (default: the dataset's own labels)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--arch", default="crops", choices=("crops", "face"),
                   help="crops: the shipped four-branch network; face: a whole-face teacher (convert/model.py: "
                        "build_face_model; needs caches with whole faces)")
    p.add_argument("--face-size", type=int, default=48, help="with --arch face: input side in pixels")
    p.add_argument("--width", type=float, default=1, help="width multiplier of every layer")
    p.add_argument("--branch-width", type=float, default=1.0,
                   help="extra multiplier of the first two convolutions of each crop branch only")
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--l2", type=float, default=0.0)
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--class-weight", default="sqrt", choices=("none", "sqrt", "balanced"))
    p.add_argument("--repeat", action="append", default=[],
                   help="NAME=K: repeat training file whose name contains NAME K times (e.g. kdef=3)")
    p.add_argument("--smooth", action="append", default=[],
                   help="NAME=EPS: targets of training files whose name contains NAME become (1-EPS) target + EPS/7 "
                        "(e.g. kdef=0.3: posed faces with one-hot labels would otherwise be learnt overconfidently)")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--wild-augment", action="store_true",
                   help="also random erasing, blur, low resolution and gamma (convert/data.py: Augment)")
    p.add_argument("--original-weight", type=float, default=0.0,
                   help="with FER+ targets: weight of the dataset's own label in each FER+ face's target")
    p.add_argument("--keep-tune-subjects", action="store_true",
                   help="train on KDEF's tune subjects too (kdef_split.json; by default they are left out so that "
                        "settings can be chosen on them; use once the settings are fixed)")
    p.add_argument("--keep-non-expression", action="store_true",
                   help="with FER+ targets, keep faces whose raters mostly said contempt/unknown/not-a-face "
                        "(default: leave them out)")
    p.add_argument("--calibration-holdout", type=float, default=0.05,
                   help="fraction of FER+-voted training faces (chosen by file name) kept out of training to fit "
                        "the softmax temperature on (0: no calibration)")
    p.add_argument("--calibrate-posed", action="store_true",
                   help="fit the temperature on KDEF's tune subjects too (posed labels), each kind of face weighing "
                        "the same (needs the tune subjects left out of training)")
    p.add_argument("--teacher", action="append", default=[],
                   help="teacher outputs from `python -m convert teach` (distillation; repeatable: averaged)")
    p.add_argument("--distill", type=float, default=0.5, help="weight of the teacher in the targets (with --teacher)")
    p.add_argument("--teacher-clean-copies", action="store_true",
                   help="capture-degraded copies get the teacher's outputs for their clean photo (with --teacher)")
    p.add_argument("--threads", type=int, default=0, help="TensorFlow threads (0: TensorFlow decides)")
    p.add_argument("--seed", type=int, default=0)


def batch_stream(a: D.Arrays, batch: int, weights: np.ndarray, aug: D.Augment | None, seed: int,
                 start_epoch: int = 0, face_size: int = 0):
    """Endless augmented, class-weighted batches, freshly shuffled every pass over the data. A resumed
    run starts from another seed (a fresh stream from `start_epoch` on), not from the batch it stopped at."""
    rng = np.random.default_rng(seed if start_epoch == 0 else (seed, start_epoch))
    while True:
        order = rng.permutation(len(a))
        for i in range(0, len(a), batch):
            idx = np.sort(order[i:i + batch])
            if face_size:  # a whole-face teacher
                x = ({D.FACE_INPUT: D.faces_at(a.face[idx], face_size)} if aug is None
                     else D.augmented_faces(a, idx, rng, aug, face_size))
            else:
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


def load_sets(paths: list[str], mode: str, for_training: bool, drop_non_expression: bool = False,
              original_weight: float = 0.0, tune: bool = False, keep_tune: bool = False) -> list[tuple[str, D.Arrays]]:
    """Load caches; KDEF-like files (with subjects) are cut by kdef_split.json: training keeps the other
    subjects (and the tune subjects only with `keep_tune`), validation keeps the held-out subjects, or
    with `tune` the tune subjects."""
    out = []
    held, tuned = heldout_subjects(), tune_subjects()
    for p in paths:
        a = D.load(p, mode, drop_non_expression, original_weight)
        name = Path(p).stem
        if any(a.subject):
            if for_training:
                out_of_training = held if keep_tune else held | tuned
                keep = np.array([s not in out_of_training for s in a.subject])
                name += "-train-subjects"
            else:
                keep = np.array([s in (tuned if tune else held) for s in a.subject])
                name += "-tune-subjects" if tune else "-heldout-subjects"
            a = a.take(np.flatnonzero(keep))
        out.append((name, a))
    return out


def evaluate(model, a: D.Arrays, ferplus: dict[str, np.ndarray] | None = None) -> dict:
    """Accuracy and per-class recall on the dataset's own labels, one view and flip-averaged (as the
    runtime scores); with `ferplus` (per rule, the FER+ label per face, -1 for none) also against each
    FER+ rule ("ferplus_official", "ferplus_argmax7")."""
    from .calibrate import views

    p1, p2 = views(model, a)

    def score(p: np.ndarray, y: np.ndarray) -> dict:
        pred = p.argmax(1)
        return {"n": int(len(y)), "accuracy": float((pred == y).mean()),
                "recall": {LABELS[c]: float((pred[y == c] == c).mean()) if (y == c).any() else None
                           for c in range(len(LABELS))}}

    out = {**score(p1, a.label), "flip_averaged": score(p2, a.label)}
    for rule, lab in (ferplus or {}).items():
        m = lab >= 0
        if m.any():
            out[f"ferplus_{rule}"] = score(p1[m], lab[m])
            out[f"ferplus_{rule}_flip_averaged"] = score(p2[m], lab[m])
    return out


def majority_for(path: str, a: D.Arrays) -> dict[str, np.ndarray] | None:
    """FER+ labels by rule per face of a validation set loaded whole from `path` (FER2013); None for subject
    data (KDEF), which has no votes and is cut to its held-out subjects."""
    return None if any(a.subject) else D.ferplus_labels(path)


CHECKPOINT = "checkpoint.keras"  # the model, optimiser state included, after the last finished epoch
STATE = "state.json"  # {"epoch": finished epochs, "history": per-epoch metrics so far}
ARGS = "args.json"  # the options the run was started with (what --resume reads)


def resume_args(run: str | Path) -> argparse.Namespace:
    """The options an interrupted run was started with, pointed at the same run directory. Options added
    since the run started take their defaults, so train_main never has to guess what an old run meant."""
    run = Path(run)
    try:
        saved = json.loads((run / ARGS).read_text())
    except (OSError, ValueError) as e:
        raise ConvertError(f"{run}: not a training run that can be resumed (no readable {ARGS}: {e})") from None
    p = argparse.ArgumentParser()
    add_train_args(p)
    a = argparse.Namespace(**{**vars(p.parse_args([])), **saved, "out": str(run), "resume": str(run)})
    # Before --teacher could be repeated it held one file name or None.
    a.teacher = [a.teacher] if isinstance(a.teacher, str) else list(a.teacher or [])
    return a


def checkpoint_callback(keras, out: Path, history: dict):
    """Saves the whole model (weights and optimiser state, so the learning-rate schedule continues) and
    the history after every epoch, each by write-then-rename: a run killed at any moment leaves the
    last finished epoch on disk, never half a file."""

    class Checkpoint(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            for k, v in (logs or {}).items():
                history.setdefault(k, []).append(round(float(v), 4))
            tmp = out / ("tmp-" + CHECKPOINT)
            self.model.save(tmp)
            tmp.replace(out / CHECKPOINT)
            state = out / ("tmp-" + STATE)
            state.write_text(json.dumps({"epoch": epoch + 1, "history": history}))
            state.replace(out / STATE)

    return Checkpoint()


def train_main(a: argparse.Namespace) -> None:
    if a.resume:
        a = resume_args(a.resume)
    elif not a.out:
        raise ConvertError("--out RUN (a new run directory) or --resume RUN is needed")
    elif (Path(a.out) / ARGS).exists():  # checked before TensorFlow loads (and starts logging)
        raise ConvertError(f"{a.out} holds a run already: continue it with --resume {a.out}, or choose a new --out")
    if a.calibrate_posed and a.keep_tune_subjects:
        raise ConvertError("--calibrate-posed fits on KDEF's tune subjects, which --keep-tune-subjects trains on")
    if a.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(a.threads)
        tf.config.threading.set_inter_op_parallelism_threads(a.threads)
    import keras

    from .calibrate import fit_temperature, holdout_mask
    from .distill import mix_teacher
    from .model import build_face_model, build_model

    keras.utils.set_random_seed(a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    done, history = 0, {}
    if a.resume:
        if (out / "metrics.json").exists() and (out / "model.keras").exists():
            print(f"{out}: this run finished already (model.keras, metrics.json)")
            return
        if (out / CHECKPOINT).exists():
            state = json.loads((out / STATE).read_text())
            done, history = int(state["epoch"]), state["history"]
        print(f"resuming {out} after epoch {done} of {a.epochs}")
    else:
        (out / ARGS).write_text(json.dumps({k: v for k, v in vars(a).items() if k != "func"}, indent=1))
    regions = {json.dumps(D.crop_regions(p), sort_keys=True) for p in a.train + a.val}
    if len(regions) != 1:
        raise ConvertError(f"the caches were extracted with different crop regions: {sorted(regions)}")
    equalizers = {D.equalizer(p) for p in a.train + a.val}
    if len(equalizers) != 1:
        raise ConvertError(f"the caches were extracted with different equalisers: {sorted(equalizers)}")
    train_sets = load_sets(a.train, a.labels, True, not a.keep_non_expression, a.original_weight,
                           keep_tune=a.keep_tune_subjects)
    reps = dict(r.split("=") for r in a.repeat)
    smooth = {n: float(v) for n, v in (r.split("=") for r in a.smooth)}
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
            arr, hit = mix_teacher(arr, a.teacher, a.distill, a.teacher_clean_copies)
            names = ", ".join(Path(t).name for t in a.teacher)
            print(f"teacher: {name}: {hit} of {len(arr)} faces get {a.distill:g} of their target from {names}")
        eps = next((v for n, v in smooth.items() if n in name), 0.0)
        if eps:
            arr = arr.with_target(((1 - eps) * arr.target + eps / len(LABELS)).astype(np.float32))
            print(f"smooth: {name}: targets {1 - eps:g} x target + {eps:g}/{len(LABELS)}")
        k = next((int(v) for n, v in reps.items() if n in name), 1)
        parts += [arr] * k
        print(f"train: {name}: {len(arr)} faces x{k}")
    tr = D.Arrays.concat(parts)
    # Held-out subjects of subject-labelled training files validate too; np.load reads only `subject`
    # here, not the whole cache again.
    with_subjects = [p for p in a.train if any(np.load(p)["subject"])]
    val_sets = load_sets(a.val, "original", False) + load_sets(with_subjects, "original", False)
    val_paths = a.val + with_subjects
    if not a.keep_tune_subjects and with_subjects:
        val_sets += load_sets(with_subjects, "original", False, tune=True)
        val_paths += with_subjects
    face = a.arch == "face"
    if face and tr.face is None:
        raise ConvertError("--arch face needs caches with whole faces (re-extract them with this version)")
    if done:
        model = keras.models.load_model(out / CHECKPOINT)
    elif face:
        model = build_face_model(a.face_size, a.width, a.dropout)
    else:
        feats = D.features(tr.landmarks)  # the standardisation built into the model
        model = build_model(tr.right_eye.shape[1], int(a.width), a.dropout, True, feats.mean(0),
                            feats.var(0) + 1e-6, a.l2, a.branch_width)
    w = class_weights(tr.target, a.class_weight)
    sample_w = (tr.target * w).sum(1)
    aug = None if a.no_augment else (D.Augment(erase=0.25, blur=0.15, lowres=0.15, gamma=0.4) if a.wild_augment
                                      else D.Augment())
    per_epoch = math.ceil(len(tr) / a.batch)
    sched = keras.optimizers.schedules.CosineDecay(0.0, a.epochs * per_epoch, warmup_target=a.lr,
                                                   warmup_steps=per_epoch)
    if not done:  # a checkpoint comes back compiled, its optimiser and schedule where they stopped
        model.compile(keras.optimizers.AdamW(sched, weight_decay=1e-4),
                      keras.losses.CategoricalCrossentropy(label_smoothing=a.label_smoothing), metrics=["accuracy"])
    val_name, val_arr = val_sets[0]
    val_x = D.inputs_for(model, val_arr)
    val_y = np.eye(len(LABELS), dtype=np.float32)[val_arr.label]
    t0 = time.time()
    # The last epoch is kept (no checkpoint picking on validation data, so validation stays unseen).
    if done < a.epochs:
        model.fit(prefetch(batch_stream(tr, a.batch, sample_w, aug, a.seed, done, a.face_size if face else 0)),
                  steps_per_epoch=per_epoch,
                  epochs=a.epochs, initial_epoch=done, validation_data=(val_x, val_y), verbose=2,
                  callbacks=[checkpoint_callback(keras, out, history)])
    model.save(out / "model.keras")
    metrics = {
        "args": {k: v for k, v in vars(a).items() if k != "func"},
        "train_faces": int(len(tr)),
        "crop_regions": json.loads(regions.pop()),
        "equalize": equalizers.pop(),
        "train_seconds": round(time.time() - t0),
        "monitored": val_name,
        "resumed_after_epochs": done or None,
        "history": history,
        "val": {name: evaluate(model, arr, majority_for(p, arr))
                for (name, arr), p in zip(val_sets, val_paths)},
    }
    if calib_parts:
        official = D.official_by_name(a.train) if a.labels != "original" else None
        tuned = [arr for name, arr in val_sets if name.endswith("-tune-subjects")]
        posed = D.Arrays.concat(tuned) if tuned and a.calibrate_posed else None
        cal = fit_temperature(model, D.Arrays.concat(calib_parts), official, posed)
        metrics["calibration"] = cal
        print(f"calibration: temperature {cal['temperature']:.3f} on {cal['n']} held-out faces "
              f"(ECE {cal['ece_before']:.4f} -> {cal['ece_after']:.4f})"
              + (f"; posed tune faces ECE {cal['posed']['ece_before']:.4f} -> {cal['posed']['ece_after']:.4f}"
                 if "posed" in cal else ""))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    # The preprocessing this model needs, which `convert export --run` puts inside the .tflite.
    from .export import contract_of

    (out / "contract.json").write_text(json.dumps(contract_of(metrics), indent=1, sort_keys=True))
    for name, m in metrics["val"].items():
        print(summary(name, m))


def summary(name: str, m: dict) -> str:
    text = f"{name}: accuracy {m['accuracy']:.4f} (flip-averaged {m['flip_averaged']['accuracy']:.4f}) on {m['n']} faces"
    for rule, about in (("official", "FER+ official majority"), ("argmax7", "FER+ argmax of 7")):
        fp = m.get(f"ferplus_{rule}_flip_averaged")
        if fp:
            text += f"; {about} {fp['accuracy']:.4f} flip-averaged on {fp['n']}"
    return text


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
