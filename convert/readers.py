"""Readers for the datasets users actually have. Each yields Samples with labels in LABELS order."""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from dfer_edge.ferplus import OTHER as FERPLUS_OTHER
from dfer_edge.ferplus import read_votes
from dfer_edge.inputs import walk_images
from dfer_edge.labels import LABELS, canonical_label

from .errors import ConvertError

# FER2013 CSV emotion codes: 0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Sad, 5 Surprise, 6 Neutral.
FER2013_CODES = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
# FER+ vote columns that are expressions we model (contempt, unknown and NF are not).
FERPLUS_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear")


@dataclass
class Sample:
    name: str  # file path or "<csv>:row"
    label: int  # index into LABELS
    image: np.ndarray | None = None  # decoded pixels when the source is not a file
    subject: str = ""
    votes: np.ndarray | None = None  # FER+ votes in LABELS order, if known
    votes_extra: np.ndarray | None = None  # FER+ votes for contempt, unknown and not-a-face (FERPLUS_OTHER order)
    extra: dict | None = None

    @property
    def votes_other(self) -> float:
        """The votes for the three classes we do not model, together (NaN when unknown)."""
        return float("nan") if self.votes_extra is None else float(self.votes_extra.sum())


def warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)


def read_folder(root: str | Path) -> Iterator[Sample]:
    """An image-folder tree <label>/<file>; common English folder names accepted, others skipped."""
    root = Path(root)
    if not root.is_dir():
        raise ConvertError(f"{root} is not a directory")
    for entry in sorted(root.iterdir()):
        if not entry.is_dir():
            continue
        lab = canonical_label(entry.name)
        if lab is None:
            warn(f"skipping folder {entry} (not one of the seven expressions)")
            continue
        for f in walk_images(entry):
            yield Sample(str(f), LABELS.index(lab))


def read_kdef(root: str | Path) -> Iterator[Sample]:
    """KDEF as shipped in ../shared/data/kdef: the folder tree plus index.csv for subjects and angles."""
    root = Path(root)
    index = root / "index.csv"
    if not index.is_file():
        yield from read_folder(root)
        return
    with index.open(newline="") as fh:
        for row in csv.DictReader(fh):
            lab = canonical_label(row["label"])
            if lab is None:
                continue
            yield Sample(str(root / row["path"]), LABELS.index(lab), subject=row.get("subject", ""),
                         extra={"angle": row.get("angle", ""), "session": row.get("session", "")})


def read_fer2013_csv(path: str | Path, usages: tuple[str, ...] = ("Training",)) -> Iterator[Sample]:
    """The original fer2013.csv: emotion,pixels,Usage with 48x48 pixels as space-separated integers."""
    with open(path, newline="") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            if usages and row.get("Usage") not in usages:
                continue
            px = np.array(row["pixels"].split(), dtype=np.uint8)
            side = int(round(np.sqrt(px.size)))
            if side * side != px.size:
                warn(f"{path}:{i + 2}: {px.size} pixels is not a square image; skipped")
                continue
            lab = FER2013_CODES[int(row["emotion"])]
            yield Sample(f"{path}:{i + 2}", LABELS.index(lab), image=px.reshape(side, side))


def read_ferplus_votes(path: str | Path, other: bool = False) -> dict[str, np.ndarray]:
    """FER+ votes keyed by file name, as counts in LABELS order (dfer_edge.ferplus.read_votes, the one reader
    of the file). With `other`, three more columns at the end: the votes for contempt, unknown and not-a-face
    (classes we do not model; FERPLUS_OTHER order), which the official FER+ majority rule needs one by one."""
    names, seven, rest = read_votes(path)
    table = np.concatenate([seven, rest], axis=1) if other else seven
    return {n: row.astype(np.float32) for n, row in zip(names, table)}


def attach_votes(samples: Iterator[Sample], votes: dict[str, np.ndarray]) -> Iterator[Sample]:
    for s in samples:
        v = votes.get(Path(s.name).name)
        if v is not None:
            s.votes = v[: len(LABELS)]
            if len(v) > len(LABELS):  # read with other=True
                s.votes_extra = v[len(LABELS):]
        yield s


def read_dataset(root: str | Path, votes: str | Path | None = None) -> list[Sample]:
    """Folder tree, KDEF (index.csv) or FER2013 CSV, by what `root` is."""
    root = Path(root)
    if root.is_file() and root.suffix.lower() == ".csv":
        samples = read_fer2013_csv(root)
    elif (root / "index.csv").is_file():
        samples = read_kdef(root)
    else:
        samples = read_folder(root)
    if votes:
        samples = attach_votes(samples, read_ferplus_votes(votes, other=True))
    return list(samples)
