"""Drawing results onto images (`predict --annotate`) and video frames (`watch --save`)."""

from __future__ import annotations

from typing import Protocol, Sequence

import cv2
import numpy as np

GREEN = (0, 220, 0)
FONT = cv2.FONT_HERSHEY_SIMPLEX


class Drawable(Protocol):
    box: tuple[int, int, int, int]
    probabilities: dict[str, float]

    @property
    def label(self) -> str: ...

    @property
    def score(self) -> float: ...


def blur_faces(image: np.ndarray, boxes: Sequence[tuple[int, int, int, int]]) -> None:
    """Make every face in `image` unrecognisable, in place: each box is pixelated to 8 blocks across and
    then blurred, so that neither a person nor their expression can be read from a saved picture."""
    h, w = image.shape[:2]
    for x1, y1, x2, y2 in boxes:
        x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
        if x2 - x1 < 2 or y2 - y1 < 2:
            continue
        patch = image[y1:y2, x1:x2]
        blocks = cv2.resize(patch, (8, max(1, round(8 * (y2 - y1) / (x2 - x1)))), interpolation=cv2.INTER_AREA)
        coarse = cv2.resize(blocks, (x2 - x1, y2 - y1), interpolation=cv2.INTER_NEAREST)
        patch[:] = cv2.GaussianBlur(coarse, (0, 0), max(1.0, (x2 - x1) / 16))


def draw(image_bgr: np.ndarray, faces: Sequence[Drawable], bars: bool = False, blur: bool = False) -> np.ndarray:
    """A copy with each face's box and top label; `bars` adds all seven probabilities beside the box;
    `blur` makes the faces themselves unrecognisable first (blur_faces). A face with an `id` (from
    tracking) shows it before the label. A grey (or BGRA) frame becomes BGR first, so the boxes are green
    there too, not a grey smear of their colour."""
    if image_bgr.ndim == 2 or image_bgr.shape[2] == 1:
        out = cv2.cvtColor(image_bgr, cv2.COLOR_GRAY2BGR)
    elif image_bgr.shape[2] == 4:
        out = cv2.cvtColor(image_bgr, cv2.COLOR_BGRA2BGR)
    else:
        out = image_bgr.copy()
    if blur:
        blur_faces(out, [f.box for f in faces])
    thick = max(1, round(max(out.shape[:2]) / 400))
    for f in faces:
        x1, y1, x2, y2 = f.box
        cv2.rectangle(out, (x1, y1), (x2, y2), GREEN, thick)
        fid = getattr(f, "id", None)
        text = f"{'#%d ' % fid if fid is not None else ''}{f.label} {f.score:.2f}"
        scale = max(0.5, (x2 - x1) / 250)
        (tw, th), base = cv2.getTextSize(text, FONT, scale, thick)
        ty = y1 - 4 if y1 - th - base - 4 > 0 else y2 + th + 4
        cv2.rectangle(out, (x1, ty - th - base), (x1 + tw, ty + base), GREEN, -1)
        cv2.putText(out, text, (x1, ty), FONT, scale, (0, 0, 0), thick, cv2.LINE_AA)
        if bars:
            _bars(out, f.probabilities, f.box)
    return out


def _bars(out: np.ndarray, probs: dict[str, float], box: tuple[int, int, int, int]) -> None:
    """Seven labelled bars in a dark panel right of the box (left when there is no room)."""
    row, label_w, bar_w = 14, 72, 80
    panel_w, panel_h = label_w + bar_w + 8, row * len(probs) + 6
    x = box[2] + 6 if box[2] + 6 + panel_w <= out.shape[1] else max(0, box[0] - 6 - panel_w)
    y = min(max(0, box[1]), max(0, out.shape[0] - panel_h))
    sub = out[y:y + panel_h, x:x + panel_w]
    sub[:] = (sub * 0.35).astype(out.dtype)  # darken behind the text so it reads on any background
    for i, (name, p) in enumerate(probs.items()):
        yy = y + 4 + i * row
        cv2.putText(out, name, (x + 3, yy + 10), FONT, 0.38, (255, 255, 255), 1, cv2.LINE_AA)
        cv2.rectangle(out, (x + label_w, yy + 2), (x + label_w + max(1, round(bar_w * p)), yy + row - 3), GREEN, -1)
