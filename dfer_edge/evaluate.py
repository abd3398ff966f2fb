"""Scoring the model exactly as users run it, on an image-folder tree <label>/<file>."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .calibration import ECE_BINS, expected_calibration_error, reliability
from .errors import DferError
from .geometry import point_error
from .inputs import walk_images
from .labels import LABELS, canonical_label


@dataclass
class Dataset:
    items: list[tuple[Path, int]]  # (image, label index)
    skipped: list[str] = field(default_factory=list)  # human-readable warnings


def scan(root: str | Path) -> Dataset:
    """The labelled images under `root`; loose files and unknown folders are skipped with a warning."""
    root = Path(root)
    if not root.is_dir():
        raise DferError(f"{root}: not a directory (expected an image-folder tree <label>/<file>)")
    items, skipped = [], []
    loose = [p.name for p in sorted(root.iterdir()) if p.is_file()]
    if loose:
        skipped.append(f"skipping {len(loose)} file(s) beside the label folders ({', '.join(loose[:3])}"
                       f"{', ...' if len(loose) > 3 else ''})")
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        lab = canonical_label(d.name)
        if lab is None:
            skipped.append(f"skipping folder {d.name}/ (not one of the seven expressions)")
            continue
        items.extend((f, LABELS.index(lab)) for f in walk_images(d))
    if not items:
        raise DferError(f"{root}: no labelled images found (expected folders named like {', '.join(LABELS)})")
    return Dataset(items, skipped)


def metrics(true: np.ndarray, pred: np.ndarray, confidence: np.ndarray | None = None) -> dict:
    """Accuracy, macro-F1, per-class recall, the confusion matrix and, given the top score of every
    prediction, the expected calibration error (ECE_BINS bins). pred == -1 means no face found: it counts
    as wrong, is left out of the confusion matrix (reported per class as no_face) and of the ECE."""
    k = len(LABELS)
    n = len(true)
    conf = np.zeros((k, k), dtype=int)
    found = pred >= 0
    np.add.at(conf, (true[found], pred[found]), 1)
    per_class, f1s = {}, []
    for c in range(k):
        n_c = int((true == c).sum())
        tp = conf[c, c]
        recall = tp / n_c if n_c else None
        predicted = conf[:, c].sum()
        precision = tp / predicted if predicted else 0.0
        if n_c:
            f1s.append(0.0 if tp == 0 else 2 * precision * recall / (precision + recall))
        per_class[LABELS[c]] = {"recall": None if recall is None else round(float(recall), 4), "n": n_c,
                                "no_face": int(((true == c) & ~found).sum())}
    out = {
        "n": int(n),
        "accuracy": round(float((pred == true).mean()) if n else 0.0, 4),
        "macro_f1": round(float(np.mean(f1s)) if f1s else 0.0, 4),
        "detection_rate": round(float(found.mean()) if n else 0.0, 4),
        "per_class": per_class,
        "confusion": conf.tolist(),
        "labels": list(LABELS),
    }
    if confidence is not None:
        c, ok = np.asarray(confidence)[found], (pred == true)[found]
        out["ece"] = round(expected_calibration_error(c, ok), 4)
        out["ece_bins"] = ECE_BINS
        out["reliability"] = reliability(c, ok)
    return out


@dataclass
class Predictions:
    """What `run` saw: per readable image its label, the predicted label (-1: no face), the top score
    (0 without a face) and its path."""

    true: np.ndarray
    pred: np.ndarray
    confidence: np.ndarray
    paths: list[Path]
    # The face's 68 points in pixels of the clean image (None: no face), for landmark stability.
    landmarks: list[np.ndarray | None] = field(default_factory=list)


@dataclass(frozen=True)
class Outcome:
    """One image's result as `score_item` returns it (from a worker process or this one): the predicted
    label index (-1: no face), its score, the face's 68 points in clean-image pixels, or the error that
    kept the image from being read."""

    path: Path
    label: int
    pred: int = -1
    score: float = 0.0
    landmarks: np.ndarray | None = None
    error: str | None = None


def score_item(recognizer, item: tuple[Path, int], crops: bool = False, condition=None) -> Outcome:
    """Predict one labelled image; never raises for a bad file (its error comes back in the Outcome, so
    one unreadable file does not lose the others' results in a worker pool). `condition`
    (degrade.Condition, or its name, which is what crosses to a worker process) is applied to the
    photo first, as a camera would, seeded by the file name."""
    from .degrade import condition as named, seed_for
    from .image import load_gray

    path, label = item
    if isinstance(condition, str):
        condition = named(condition)
    try:
        image, back = path, 1.0
        if condition is not None:
            gray = load_gray(path)
            image = condition(gray, seed_for(path.name))
            back = gray.shape[1] / image.shape[1]  # degraded pixels -> clean pixels
        face = recognizer.predict_crop(image) if crops else recognizer.predict_largest(image)
    except DferError as e:
        return Outcome(path, label, error=str(e) if str(path) in str(e) else f"{path}: {e}")
    if face is None:
        return Outcome(path, label)
    return Outcome(path, label, LABELS.index(face.label), face.score, face.landmarks * back)


def collect(outcomes: Iterable[Outcome], on_error: Callable[[str], None] = lambda msg: None,
            on_item: Callable[[Outcome], None] = lambda o: None) -> Predictions:
    """Predictions from outcomes in input order. Unreadable files are reported through `on_error` and
    left out (they are not the model's fault); `on_item` sees every outcome (a progress bar)."""
    true, pred, conf, paths, marks = [], [], [], [], []
    for o in outcomes:
        on_item(o)
        if o.error is not None:
            on_error(o.error)
            continue
        true.append(o.label)
        pred.append(o.pred)
        conf.append(o.score)
        paths.append(o.path)
        marks.append(o.landmarks)
    return Predictions(np.array(true, dtype=int), np.array(pred, dtype=int), np.array(conf, dtype=float), paths,
                       marks)


def run(recognizer, items: Iterable[tuple[Path, int]], crops: bool,
        on_error: Callable[[str], None] = lambda msg: None, condition=None) -> Predictions:
    """Predict every item in this process (score_item, then collect). Unreadable files are reported
    through `on_error` and left out. `evaluate --workers` sends the same score_item to worker processes."""
    return collect((score_item(recognizer, it, crops, condition) for it in items), on_error)


def landmark_error(clean: Predictions, other: Predictions) -> float | None:
    """Median distance of the 68 points from where they sit on the clean image, in inter-ocular
    distances (outer eye corners), over the images where both found a face."""
    ref = {p: m for p, m in zip(clean.paths, clean.landmarks) if m is not None}
    errs = [point_error(m, ref[p]) for p, m in zip(other.paths, other.landmarks) if m is not None and p in ref]
    return float(np.median(errs)) if errs else None


def conditions_report(rows: list[dict]) -> str:
    """The per-condition table `evaluate --condition` prints."""
    out = ["capture condition     accuracy    drop   FER+ acc    drop   landmark error (IOD)"]
    for r in rows:
        fp = r.get("ferplus_accuracy")
        lm = r.get("landmark_error_iod")
        out.append(f"{r['condition']:<20} {100 * r['accuracy']:8.2f}% {100 * r['drop']:+7.2f}"
                   + (f" {100 * fp:9.2f}% {100 * r['ferplus_drop']:+7.2f}" if fp is not None else " " * 18)
                   + (f"   {lm:.4f}" if lm is not None else "   -"))
    return "\n".join(out)


def ferplus_metrics(p: Predictions, majority: dict[str, int], rule: str = "official") -> dict:
    """The same metrics against one FER+ rule's label (`majority`: file name -> label), on the images that
    have one; the rule's name and description ride along."""
    from .ferplus import RULES

    idx = [i for i, path in enumerate(p.paths) if path.name in majority]
    fp_true = np.array([majority[p.paths[i].name] for i in idx], dtype=int)
    return {"rule": rule, "about": RULES[rule], **metrics(fp_true, p.pred[idx], p.confidence[idx])}


# Where each FER+ rule's block sits in evaluate's metrics (and its JSON): the official rule is the FER+ number.
FERPLUS_BLOCKS = (("ferplus", "official"), ("ferplus_argmax7", "argmax7"))


def ferplus_blocks(p: Predictions, rules: dict[str, dict[str, int]]) -> dict:
    """The metrics against every FER+ rule (`rules`: dfer_edge.ferplus.labels_by_rule), keyed as in the JSON."""
    return {key: ferplus_metrics(p, rules[rule], rule) for key, rule in FERPLUS_BLOCKS}


def _block(m: dict, title: str) -> list[str]:
    ece = f"   ECE {m['ece']:.4f} ({m['ece_bins']} bins)" if "ece" in m else ""
    lines = [f"{title}: images {m['n']}   accuracy {100 * m['accuracy']:.2f}%   macro-F1 {m['macro_f1']:.4f}"
             f"{ece}   detection rate {100 * m['detection_rate']:.2f}%", ""]
    lines.append(f"{'class':<10} {'n':>6} {'recall':>7} {'no face':>8}")
    for lab, pc in m["per_class"].items():
        r = "-" if pc["recall"] is None else f"{100 * pc['recall']:.1f}%"
        lines.append(f"{lab:<10} {pc['n']:>6} {r:>7} {pc['no_face']:>8}")
    lines.append("")
    short = [lab[:5] for lab in LABELS]
    lines.append("confusion (rows: true, columns: predicted)")
    lines.append(f"{'':<10}" + "".join(f"{s:>7}" for s in short))
    for lab, row in zip(LABELS, m["confusion"]):
        lines.append(f"{lab:<10}" + "".join(f"{v:>7}" for v in row))
    return lines


def report(m: dict) -> str:
    """The human-readable summary printed by `dfer-edge evaluate`: the folder labels, then (with --votes)
    the FER+ labels by the official majority rule and by the argmax of the 7 expression votes, each with
    accuracy, macro-F1, calibration error and per-class recall."""
    lines = _block(m, "folder labels")
    if "ferplus" in m:
        lines += [""] + _block(m["ferplus"], "FER+ majority, official rule (microsoft/FERPlus: single votes dropped, "
                                             "winner > 50%; contempt/unknown/not-a-face left out)")
    if "ferplus_argmax7" in m:
        lines += [""] + _block(m["ferplus_argmax7"], "FER+ argmax of the 7 expression votes (every voted face)")
    return "\n".join(lines)
