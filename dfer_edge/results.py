"""What the pipeline hands back: typed results, and the JSON records the CLI and the service print.

Plain data in original-image pixels, so a caller never needs to know about working images.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from .labels import LABELS
from .pose import HeadPose


@dataclass(frozen=True)
class Category:
    name: str
    score: float


class Scored:
    """The top label and its score, for anything holding a `box` and `probabilities` (Face, TrackedFace)."""

    box: tuple[int, int, int, int]
    landmarks: np.ndarray
    probabilities: dict[str, float]
    pose: HeadPose | None
    looking: bool | None

    @property
    def iod_px(self) -> float:
        """Inter-ocular distance (outer eye corners, landmarks 36 and 45) in original pixels: how many pixels
        the face had. Training faces have 100-140 in the images the model saw; below ~25 an answer rests on
        little (filter on it)."""
        return float(np.hypot(*(self.landmarks[45] - self.landmarks[36])))

    @property
    def label(self) -> str:
        return max(self.probabilities, key=self.probabilities.__getitem__)

    @property
    def score(self) -> float:
        return self.probabilities[self.label]

    @property
    def categories(self) -> list[Category]:
        """All labels, most likely first."""
        return sorted((Category(k, v) for k, v in self.probabilities.items()), key=lambda c: -c.score)

    def to_dict(self) -> dict[str, Any]:
        d = {"box": list(self.box), "label": self.label, "score": round(self.score, 6),
             "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()},
             "iod_px": round(self.iod_px, 1)}
        if self.pose is not None:
            d.update(pose=self.pose.to_dict(), looking=self.looking)
        return d


@dataclass(frozen=True)
class Face(Scored):
    """One face: where it is (original-image pixels) and what it expresses."""

    box: tuple[int, int, int, int]  # x1, y1, x2, y2: the detector box grown by detect.BOX_MARGIN, clipped
    landmarks: np.ndarray  # (68, 2) float, original-image pixels
    probabilities: dict[str, float]  # in LABELS order
    pose: HeadPose | None = None  # which way the head is turned (pose.py)
    looking: bool | None = None  # turned towards the camera, within the options' limits


@dataclass(frozen=True)
class TrackedFace(Scored):
    """One face in one video frame, in original frame pixels, with an id that lasts while it is followed."""

    id: int
    box: tuple[int, int, int, int]  # detector box grown by detect.BOX_MARGIN, clipped to the frame
    landmarks: np.ndarray
    probabilities: dict[str, float]  # smoothed when smoothing is on
    detected: bool  # this frame's box came from the detector, not from tracking
    pose: HeadPose | None = None
    looking: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, **super().to_dict()}


def result_record(path: str, faces: list[Scored] | None, error: str | None) -> dict[str, Any]:
    """The object `predict --json` prints per input and `POST /predict` answers: one definition, so the
    CLI and the service cannot drift apart."""
    return {"path": path, "error": error, "faces": [f.to_dict() for f in faces] if faces is not None else []}


def frame_record(index: int, t: float, faces: list[TrackedFace], detected: bool) -> dict[str, Any]:
    """One line of `watch --jsonl`."""
    return {"frame": index, "t": round(t, 4), "detected": detected, "faces": [f.to_dict() for f in faces]}


# --- CSV: the same records, one row per face ----------------------------------------------------
# Made from the JSON records above, not from the faces, so a CSV row and the JSON object of the same
# input carry the same (rounded) numbers. The box is the JSON box, x1, y1, x2, y2, as four columns; the
# probabilities are seven columns in LABELS order. An input or frame without a face is one row with the
# face columns empty, so every input appears in the file.

_FACE_COLUMNS = ("x1", "y1", "x2", "y2", "label", "score", *LABELS, "iod_px", "yaw", "pitch", "roll", "looking")

RESULT_CSV_HEADER = ("path", "face", *_FACE_COLUMNS, "error")  # predict --csv
FRAME_CSV_HEADER = ("frame", "t", "detected", "id", *_FACE_COLUMNS)  # watch --csv


def _face_cells(face: dict[str, Any]) -> list[Any]:
    pose = face.get("pose") or {}
    looking = face.get("looking")
    return [*face["box"], face["label"], face["score"], *(face["probabilities"][lab] for lab in LABELS), face["iod_px"],
            pose.get("yaw"), pose.get("pitch"), pose.get("roll"), None if looking is None else int(looking)]


_NO_FACE = [None] * len(_FACE_COLUMNS)


def result_rows(record: dict[str, Any]) -> list[list[Any]]:
    """The `predict --csv` rows of one result_record: one per face (index from 0, largest first); one
    with empty face columns for no face, or for an unreadable input (then `error` says why)."""
    if not record["faces"]:
        return [[record["path"], None, *_NO_FACE, record["error"]]]
    return [[record["path"], i, *_face_cells(f), record["error"]] for i, f in enumerate(record["faces"])]


def frame_rows(record: dict[str, Any]) -> list[list[Any]]:
    """The `watch --csv` rows of one frame_record: one per followed face; one with empty face columns
    for a frame without a face."""
    head = [record["frame"], record["t"], int(record["detected"])]
    if not record["faces"]:
        return [[*head, None, *_NO_FACE]]
    return [[*head, f["id"], *_face_cells(f)] for f in record["faces"]]


def csv_line(row: Iterable[Any]) -> str:
    """One CSV line without its line end (None is an empty cell; quoting as the csv module does it)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(row)
    return buf.getvalue()
