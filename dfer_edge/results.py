"""What the pipeline hands back: typed results, and the JSON records the CLI and the service print.

Plain data in original-image pixels, so a caller never needs to know about working images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Category:
    name: str
    score: float


class Scored:
    """The top label and its score, for anything holding a `box` and `probabilities` (Face, TrackedFace)."""

    box: tuple[int, int, int, int]
    probabilities: dict[str, float]

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
        return {"box": list(self.box), "label": self.label, "score": round(self.score, 6),
                "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()}}


@dataclass(frozen=True)
class Face(Scored):
    """One face: where it is (original-image pixels) and what it expresses."""

    box: tuple[int, int, int, int]  # x1, y1, x2, y2: the detector box grown by detect.BOX_MARGIN, clipped
    landmarks: np.ndarray  # (68, 2) float, original-image pixels
    probabilities: dict[str, float]  # in LABELS order


@dataclass(frozen=True)
class TrackedFace(Scored):
    """One face in one video frame, in original frame pixels, with an id that lasts while it is followed."""

    id: int
    box: tuple[int, int, int, int]  # detector box grown by detect.BOX_MARGIN, clipped to the frame
    landmarks: np.ndarray
    probabilities: dict[str, float]  # smoothed when smoothing is on
    detected: bool  # this frame's box came from the detector, not from tracking

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, **super().to_dict()}


def result_record(path: str, faces: list[Scored] | None, error: str | None) -> dict[str, Any]:
    """The object `predict --json` prints per input and `POST /predict` answers: one definition, so the
    CLI and the service cannot drift apart."""
    return {"path": path, "error": error, "faces": [f.to_dict() for f in faces] if faces is not None else []}


def frame_record(index: int, t: float, faces: list[TrackedFace], detected: bool) -> dict[str, Any]:
    """One line of `watch --jsonl`."""
    return {"frame": index, "t": round(t, 4), "detected": detected, "faces": [f.to_dict() for f in faces]}
