"""Drawing results onto images (the CLI's --annotate)."""

from __future__ import annotations

import cv2
import numpy as np

from .recognizer import Face


def draw(image_bgr: np.ndarray, faces: list[Face]) -> np.ndarray:
    out = image_bgr.copy()
    thick = max(1, round(max(out.shape[:2]) / 400))
    for f in faces:
        x1, y1, x2, y2 = f.box
        cv2.rectangle(out, (x1, y1), (x2, y2), (0, 220, 0), thick)
        text = f"{f.label} {f.score:.2f}"
        scale = max(0.5, (x2 - x1) / 250)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        ty = y1 - 4 if y1 - th - base - 4 > 0 else y2 + th + 4
        cv2.rectangle(out, (x1, ty - th - base), (x1 + tw, ty + base), (0, 220, 0), -1)
        cv2.putText(out, text, (x1, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick, cv2.LINE_AA)
    return out
