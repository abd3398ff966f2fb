"""A close-up of a small face: the window of the decoded photo around it, scaled to the size of the faces
the model learnt from.

A face 64 px wide in a 1920x1440 photo is ~17 px wide in the 512-px working image: its landmarks are fitted
on a few pixels and its crops are those pixels blown up, equalised by a histogram that is mostly the rest
of the photo. Nothing in training looks like that (faces there have an inter-ocular distance of 100-140 px
in the image they were equalised in), and the answers were close to chance. The photo itself usually has
more pixels of that face: this module cuts the face's neighbourhood from it at the resolution it was
taken at, scaled so the face has a training face's size; the pipeline equalises that window on its own,
fits the landmarks and cuts the crops there, then maps the points back.

Pure geometry: numbers in, numbers out; the pipeline (pipeline.py) does the image work.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import inter_ocular

# A face whose inter-ocular distance (landmarks 36-45) in the working image is below this is scored on a
# close-up. Training faces: FER2013's median 99 px (10-90%: 77-120), KDEF's 144 (125-187).
SMALL_IOD = 70.0
# The close-up's inter-ocular distance: between the two training sets' medians.
TARGET_IOD = 120.0
# Context around the landmarks' bounding box, as a share of its larger side on every side: the crop regions
# reach past the landmarks (eyebrows, cheeks, chin), and the landmark model starts from a detector box. The
# window is equalised on its own, so more context means more background in its histogram. Chosen on the
# tune subjects (benchmarks/small_face_accuracy.py --split tune, 40 and 64 px faces in 1920x1440 and
# 640x480; alone 90.2%): 0.15: 83-88%, 0.25: 86-88%, 0.4: 87-89%, 0.55: 87-88%, 0.8: 83-84%, 1.5: 70%.
# TARGET_IOD mattered little there (90, 120, 150 within one face of each other).
CONTEXT = 0.4


@dataclass(frozen=True)
class Window:
    """Source pixels [x0, x1) x [y0, y1), scaled by `zoom` (window pixels per source pixel)."""

    x0: int
    y0: int
    x1: int
    y1: int
    zoom: float

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the scaled window."""
        return max(1, round((self.x1 - self.x0) * self.zoom)), max(1, round((self.y1 - self.y0) * self.zoom))

    def to_source(self, points: np.ndarray) -> np.ndarray:
        """Window points -> source points (pixel centres, as cv2.resize maps them)."""
        return (points + 0.5) / self.zoom - 0.5 + np.array([self.x0, self.y0])

    def edges_from_source(self, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        """A box given by its pixel edges in the source -> its edges in the window."""
        x1, y1, x2, y2 = box
        z = self.zoom
        return (x1 - self.x0) * z, (y1 - self.y0) * z, (x2 - self.x0) * z, (y2 - self.y0) * z


def window_for(points: np.ndarray, shape: tuple[int, int], target_iod: float = TARGET_IOD,
               context: float = CONTEXT) -> Window:
    """The window around a face's 68 points (source pixels) in a source image of `shape` (h, w), scaled so
    its inter-ocular distance becomes `target_iod`."""
    lo, hi = points.min(0), points.max(0)
    side = float((hi - lo).max())
    pad = context * side
    h, w = shape[:2]
    x0, y0 = max(0, int(np.floor(lo[0] - pad))), max(0, int(np.floor(lo[1] - pad)))
    x1, y1 = min(w, int(np.ceil(hi[0] + pad)) + 1), min(h, int(np.ceil(hi[1] + pad)) + 1)
    return Window(x0, y0, max(x1, x0 + 1), max(y1, y0 + 1), target_iod / max(inter_ocular(points), 1e-6))
