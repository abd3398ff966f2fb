"""Test scenes for face detection: real faces pasted at known sizes onto varied backgrounds, and
face-free images, generated from a fixed seed (never stored as images).

Faces come from KDEF (straight and half-profile views, ../shared/data/kdef): each source photo's face
box is dlib's HOG box found at full resolution; a frame pastes 1-6 of them, scaled so that this box is
32-160 px wide, with a feathered elliptical mask, onto a background (crops of a face-free photo, smooth
noise, gradients, stripes and checks, with noise). `recall` matches what a detector reports against the
pasted boxes. `dfer-edge bench --scenes` and the tests use it; so does benchmarks/small_faces.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
MIN_SIZE, MAX_SIZE = 32, 160
PAD = 0.7  # context pasted around the face box, in box widths per side


@dataclass(frozen=True)
class Scene:
    """A frame and the faces in it: boxes (x1, y1, x2, y2) in its pixels, detector convention."""

    image: np.ndarray  # 8-bit gray
    faces: list[tuple[float, float, float, float]] = field(default_factory=list)
    name: str = ""


@dataclass(frozen=True)
class SourceFace:
    gray: np.ndarray
    box: tuple[int, int, int, int]


def source_faces(kdef: Path, count: int = 80, seed: int = 0) -> list[SourceFace]:
    """`count` KDEF photos (straight views and half-profiles, evenly spread over subjects) with dlib's
    HOG face box at full resolution; photos where HOG finds no face are skipped."""
    from .detect import FaceDetector

    files = sorted(p for p in kdef.glob("*/*.jpg") if p.stem[-1] in "S" or p.stem.endswith(("HL", "HR")))
    if not files:
        raise FileNotFoundError(f"no KDEF photos under {kdef}")
    rng = np.random.default_rng(seed)
    det = FaceDetector(0, 0.0)
    out = []
    for p in rng.permutation(files):
        gray = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        rects = det(cv2.equalizeHist(gray)) if gray is not None else []
        if rects:
            r = rects[0]
            out.append(SourceFace(gray, (r.left(), r.top(), r.right(), r.bottom())))
        if len(out) == count:
            break
    return out


def background(rng: np.random.Generator, w: int, h: int, photos: Sequence[np.ndarray]) -> np.ndarray:
    """One of: a face-free photo crop, smooth noise, a gradient, stripes or checks; then noise."""
    kind = rng.integers(5)
    if kind == 0 and photos:
        src = photos[rng.integers(len(photos))]
        s = max(w / src.shape[1], h / src.shape[0]) * rng.uniform(1.0, 2.0)
        big = cv2.resize(src, (max(w, round(src.shape[1] * s)), max(h, round(src.shape[0] * s))))
        y, x = rng.integers(big.shape[0] - h + 1), rng.integers(big.shape[1] - w + 1)
        img = big[y:y + h, x:x + w].astype(np.float32)
    elif kind == 1:
        small = rng.uniform(0, 255, (max(2, h // 40), max(2, w // 40))).astype(np.float32)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    elif kind == 2:
        a = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        t = (xx * math.cos(a) + yy * math.sin(a)) / max(w, h)
        img = rng.uniform(20, 120) + rng.uniform(60, 140) * t
    elif kind == 3:
        period = rng.uniform(6, 40)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        a = rng.uniform(0, math.pi)
        img = 128 + 90 * np.sign(np.sin((xx * math.cos(a) + yy * math.sin(a)) * 2 * math.pi / period))
    else:
        cell = int(rng.integers(8, 48))
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.where(((yy // cell) + (xx // cell)) % 2 == 0, rng.uniform(30, 100), rng.uniform(150, 230))
    img = img.astype(np.float32) + rng.normal(0, rng.uniform(2, 8), (h, w))
    return np.clip(img, 0, 255).astype(np.float32)


def paste(canvas: np.ndarray, face: SourceFace, width: float, cx: float, cy: float) -> tuple[float, ...]:
    """Paste `face` scaled so its box is `width` px wide, box centre at (cx, cy); returns the box."""
    x1, y1, x2, y2 = face.box
    s = width / (x2 - x1)
    bw, bh = x2 - x1, y2 - y1
    # The source region: the box with PAD context, clipped to the photo.
    rx1, ry1 = max(0, round(x1 - PAD * bw)), max(0, round(y1 - PAD * bh))
    rx2, ry2 = min(face.gray.shape[1], round(x2 + PAD * bw)), min(face.gray.shape[0], round(y2 + PAD * bh))
    region = face.gray[ry1:ry2, rx1:rx2]
    rw, rh = max(1, round((rx2 - rx1) * s)), max(1, round((ry2 - ry1) * s))
    patch = cv2.resize(region, (rw, rh), interpolation=cv2.INTER_AREA).astype(np.float32)
    # Where the patch lands: the box centre goes to (cx, cy).
    bcx, bcy = ((x1 + x2) / 2 - rx1) * s, ((y1 + y2) / 2 - ry1) * s
    ox, oy = round(cx - bcx), round(cy - bcy)
    yy, xx = np.mgrid[0:rh, 0:rw].astype(np.float32)
    ell = ((xx - bcx) / (0.5 * rw * 0.9)) ** 2 + ((yy - bcy) / (0.5 * rh * 0.95)) ** 2
    mask = np.clip((1.0 - ell) * 4.0, 0.0, 1.0)  # opaque inside, feathered to nothing at the ellipse
    H, W = canvas.shape
    cx1, cy1, cx2, cy2 = max(0, ox), max(0, oy), min(W, ox + rw), min(H, oy + rh)
    if cx2 <= cx1 or cy2 <= cy1:
        return ()
    m = mask[cy1 - oy:cy2 - oy, cx1 - ox:cx2 - ox]
    p = patch[cy1 - oy:cy2 - oy, cx1 - ox:cx2 - ox]
    canvas[cy1:cy2, cx1:cx2] = m * p + (1 - m) * canvas[cy1:cy2, cx1:cx2]
    return (cx - bw * s / 2, cy - bh * s / 2, cx + bw * s / 2, cy + bh * s / 2)


def face_free_photos(data: Path) -> list[np.ndarray]:
    """The shared face-free photo (backgrounds are cut from it), if it is there."""
    photo = cv2.imread(str(data / "photos" / "non_face.jpg"), cv2.IMREAD_GRAYSCALE)
    return [photo] if photo is not None else []


def face_scenes(n: int = 60, seed: int = 0, data: Path = DEFAULT_DATA, size: tuple[int, int] = (640, 480),
                sizes: tuple[int, int] = (MIN_SIZE, MAX_SIZE), sources: list[SourceFace] | None = None) -> list[Scene]:
    """`n` frames of `size` with 1-6 faces each, face widths log-uniform in `sizes`, none overlapping."""
    rng = np.random.default_rng(seed)
    sources = sources or source_faces(data / "kdef", seed=seed)
    photos = face_free_photos(data)
    w, h = size
    out = []
    for i in range(n):
        canvas = background(rng, w, h, photos)
        boxes: list[tuple[float, ...]] = []
        for _ in range(int(rng.integers(1, 7))):
            for _try in range(30):
                fw = float(math.exp(rng.uniform(math.log(sizes[0]), math.log(sizes[1]))))
                cx, cy = rng.uniform(fw * 0.6, w - fw * 0.6), rng.uniform(fw * 0.6, h - fw * 0.6)
                cand = (cx - fw, cy - fw, cx + fw, cy + fw)  # keep context apart too
                if all(cand[2] < b[0] - 4 or cand[0] > b[2] + 4 or cand[3] < b[1] - 4 or cand[1] > b[3] + 4
                       for b in boxes):
                    box = paste(canvas, sources[int(rng.integers(len(sources)))], fw, cx, cy)
                    if box:
                        boxes.append(box)
                    break
        img = np.clip(canvas * rng.uniform(0.7, 1.1) + rng.uniform(-15, 15), 0, 255).astype(np.uint8)
        out.append(Scene(img, [tuple(b) for b in boxes], f"scene-{seed}-{i:03d}"))
    return out


def face_free_scenes(n: int = 40, seed: int = 1, data: Path = DEFAULT_DATA,
                     size: tuple[int, int] = (640, 480)) -> list[Scene]:
    """`n` images without a face: the face-free photo itself, its crops, and generated backgrounds."""
    rng = np.random.default_rng(seed)
    photos = face_free_photos(data)
    out = [Scene(p, [], "non_face.jpg") for p in photos]
    w, h = size
    while len(out) < n:
        out.append(Scene(np.clip(background(rng, w, h, photos), 0, 255).astype(np.uint8), [], f"free-{seed}-{len(out):03d}"))
    return out


def match(truth: Sequence[tuple[float, ...]], found: Sequence[tuple[float, ...]]) -> list[bool]:
    """For each true face, whether a found box claims it: the found box's centre lies inside the true
    box and the widths are within a factor 2. Each found box claims one face at most."""
    used = set()
    hits = []
    for t in truth:
        tw = t[2] - t[0]
        best = None
        for j, f in enumerate(found):
            if j in used:
                continue
            cx, cy = (f[0] + f[2]) / 2, (f[1] + f[3]) / 2
            fw = f[2] - f[0]
            if t[0] <= cx <= t[2] and t[1] <= cy <= t[3] and 0.5 <= fw / tw <= 2.0:
                d = math.hypot(cx - (t[0] + t[2]) / 2, cy - (t[1] + t[3]) / 2)
                if best is None or d < best[0]:
                    best = (d, j)
        if best is not None:
            used.add(best[1])
        hits.append(best is not None)
    return hits


@dataclass
class RecallReport:
    """Faces found by size band, and false faces (found boxes claiming no true face)."""

    bands: dict[str, list[int]] = field(default_factory=dict)  # band -> [found, total]
    false_faces: int = 0
    images: int = 0

    def add(self, truth: Sequence[tuple[float, ...]], found: Sequence[tuple[float, ...]]) -> None:
        hits = match(truth, found)
        for t, hit in zip(truth, hits):
            band = size_band(t[2] - t[0])
            cell = self.bands.setdefault(band, [0, 0])
            cell[0] += int(hit)
            cell[1] += 1
        self.false_faces += max(0, len(found) - sum(hits))
        self.images += 1

    def recall(self, min_width: float) -> float:
        """Share of faces at least `min_width` wide that were found."""
        f = t = 0
        for band, (found, total) in self.bands.items():
            if BANDS[band][0] >= min_width:
                f, t = f + found, t + total
        return f / t if t else float("nan")


BANDS = {"32-36": (32, 36), "36-48": (36, 48), "48-64": (48, 64), "64-80": (64, 80), "80-120": (80, 120),
         "120+": (120, 10_000)}


def size_band(width: float) -> str:
    for name, (lo, hi) in BANDS.items():
        if lo <= width < hi:
            return name
    return "32-36" if width < 32 else "120+"


def measure(find: Callable[[np.ndarray], list[tuple[float, ...]]], scenes: Sequence[Scene]) -> RecallReport:
    """Run `find` (image -> boxes in its pixels) on every scene."""
    rep = RecallReport()
    for s in scenes:
        rep.add(s.faces, find(s.image))
    return rep


@dataclass(frozen=True)
class DetectionSummary:
    """What `dfer-edge bench --scenes N` reports beside the times."""

    scenes: int
    faces: int
    recall_36: float  # share found of faces at least 36 px wide
    recall_80: float
    false_per_20: float  # false faces per 20 face-free images
    ms_per_scene: float
    bands: dict[str, list[int]]

    def to_dict(self) -> dict:
        return {"scenes": self.scenes, "faces": self.faces, "recall_36": round(self.recall_36, 4),
                "recall_80": round(self.recall_80, 4), "false_per_20": round(self.false_per_20, 3),
                "ms_per_scene": round(self.ms_per_scene, 2), "bands": self.bands}


_CACHE: dict[tuple, tuple[list[Scene], list[Scene]]] = {}


def detection_summary(predict: Callable[[np.ndarray], Sequence], n: int = 100, free: int = 40, seed: int = 0,
                      data: Path = DEFAULT_DATA) -> DetectionSummary:
    """Recall by face size and false faces of `predict` (an image -> objects with a `.box`, e.g.
    Recognizer.predict) on `n` generated scenes and `free` face-free images, seeded."""
    import time

    key = (n, free, seed, str(data))
    if key not in _CACHE:
        _CACHE[key] = (face_scenes(n, seed, data), face_free_scenes(free, seed + 1, data))
    faces, empty = _CACHE[key]
    boxes = lambda img: [f.box for f in predict(img)]  # noqa: E731
    t0 = time.perf_counter()
    rep = measure(boxes, faces)
    ms = 1000 * (time.perf_counter() - t0) / max(1, len(faces))
    fp = measure(boxes, empty)
    return DetectionSummary(len(faces), sum(t for _, t in rep.bands.values()), rep.recall(36), rep.recall(80),
                            20 * fp.false_faces / max(1, fp.images), ms,
                            {b: rep.bands[b] for b in BANDS if b in rep.bands})
