"""Pure geometry on dlib's 68 landmarks: levelling, crop transforms and the 13 distance features.

Everything here is numpy in, numpy out, so it can be tested on hand-made landmarks and shared
verbatim by training (convert/) and inference.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

import cv2
import numpy as np

# dlib 68-point indices. "Right" is the subject's right eye, i.e. the one on the image's left.
RIGHT_EYE = slice(36, 42)
LEFT_EYE = slice(42, 48)
RIGHT_BROW = slice(17, 22)
LEFT_BROW = slice(22, 27)
MOUTH = slice(48, 68)

# dlib-68 index of each point's mirror image (the face's left <-> right).
MIRROR = np.array(
    list(range(16, -1, -1))  # jaw
    + list(range(26, 21, -1)) + list(range(21, 16, -1))  # brows swap
    + [27, 28, 29, 30] + [35, 34, 33, 32, 31]  # nose
    + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40]  # eyes swap
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lips
    + [64, 63, 62, 61, 60, 67, 66, 65]  # inner lips
)

# The seed's 13 distances: 11 landmark pairs, then two midpoint distances.
FEATURE_PAIRS: tuple[tuple[int, int], ...] = (
    (21, 22), (21, 31), (22, 35), (19, 41), (24, 46), (37, 41),
    (44, 46), (51, 57), (36, 48), (45, 54), (48, 54),
)
N_FEATURES = 13
_PAIR_A = np.array([a for a, _ in FEATURE_PAIRS])
_PAIR_B = np.array([b for _, b in FEATURE_PAIRS])

# Crop squares, in units of the inter-ocular distance (outer eye corners 36-45), centred on
# the region in the levelled face. Chosen so that an eye crop holds the eye and its brow, and the
# mouth crop holds a wide-open (surprise) mouth; fixed relative to the face so that the crop scale
# itself carries no expression-dependent zoom.
EYE_SIDE = 0.62
EYE_RAISE = 0.12  # the eye crop's centre sits this far above the eye centre, to include the brow
MOUTH_SIDE = 0.85


@dataclass(frozen=True)
class CropRegions:
    """Where the three crops sit, in inter-ocular distances. A model is trained on one set and its sidecar
    names it ("crop_regions"); models without one use DEFAULT_REGIONS, the first models' regions. The
    inward shift moves both eye crops towards the nose (the glabella's frown lines), the mouth raise moves
    the mouth crop up towards the nose (the nasolabial folds); both keep the crops mirror-symmetric, so
    flipping a face still swaps and flips its crops."""

    eye_side: float = EYE_SIDE
    eye_raise: float = EYE_RAISE
    eye_inward: float = 0.0
    mouth_side: float = MOUTH_SIDE
    mouth_raise: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "CropRegions":
        """From a sidecar's or cache's mapping; unknown keys or values outside (-1, 3) are a ValueError."""
        names = {f.name for f in fields(CropRegions)}
        bad = [k for k in d if k not in names]
        if bad:
            raise ValueError(f"unknown crop region setting(s) {bad}; expected some of {sorted(names)}")
        vals = {k: float(v) for k, v in d.items()}
        if any(not -1.0 < v < 3.0 for v in vals.values()) or vals.get("eye_side", 1) <= 0 or vals.get("mouth_side", 1) <= 0:
            raise ValueError(f"crop regions {d} out of range")
        return CropRegions(**vals)


DEFAULT_REGIONS = CropRegions()


class Levelled(NamedTuple):
    """A face's landmarks rotated so the eyes are level, plus the transform that did it."""

    points: np.ndarray  # (68, 2) float64, levelled coordinates
    matrix: np.ndarray  # (2, 3) affine: source image -> levelled coordinates
    iod: float  # inter-ocular distance (36-45) in source pixels


def inter_ocular(points: np.ndarray) -> float:
    return float(np.hypot(*(points[45] - points[36])))


def point_error(points: np.ndarray, reference: np.ndarray) -> float:
    """Mean distance of 68 points from `reference`, in the reference's inter-ocular distances: how far
    a capture condition, or one frame to the next, moves the landmarks whatever the face's size."""
    return float(np.linalg.norm(points - reference, axis=1).mean() / max(inter_ocular(reference), 1e-6))


def level(points: np.ndarray) -> Levelled:
    """Rotate landmarks about the eye midpoint so the two eye centres share one y."""
    pts = np.asarray(points, dtype=np.float64)
    right = pts[RIGHT_EYE].mean(axis=0)
    left = pts[LEFT_EYE].mean(axis=0)
    dx, dy = left - right
    angle = np.degrees(np.arctan2(dy, dx))
    centre = (right + left) / 2.0
    m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), float(angle), 1.0)
    lev = pts @ m[:, :2].T + m[:, 2]
    return Levelled(lev, m, max(inter_ocular(pts), 1e-6))


def crop_boxes(lev: Levelled, regions: CropRegions = DEFAULT_REGIONS) -> dict[str, tuple[float, float, float]]:
    """Centre (x, y) and side of each crop square, in levelled coordinates."""
    p, d, r = lev.points, lev.iod, regions
    r_eye = p[RIGHT_EYE].mean(axis=0)
    l_eye = p[LEFT_EYE].mean(axis=0)
    mouth = p[MOUTH].mean(axis=0)
    # level() turns the right-to-left eye vector to +x, so inward is +x for the right eye, -x for the left.
    return {
        "right_eye": (r_eye[0] + r.eye_inward * d, r_eye[1] - r.eye_raise * d, r.eye_side * d),
        "left_eye": (l_eye[0] - r.eye_inward * d, l_eye[1] - r.eye_raise * d, r.eye_side * d),
        "mouth": (mouth[0], mouth[1] - r.mouth_raise * d, r.mouth_side * d),
    }


def crop_matrix(levelling: np.ndarray, cx: float, cy: float, side: float, size: int) -> np.ndarray:
    """One affine from the source image straight to a size x size crop (level, cut and scale at once)."""
    k = size / max(side, 1e-6)
    m = levelling * k
    m[:, 2] += size / 2.0 - k * np.array([cx, cy])
    return m


def warp(image: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """`cv2.warpAffine(image, m, (size, size), INTER_LINEAR, BORDER_REPLICATE)` for a uint8 image,
    in plain float64 numpy so that every machine cuts the same crop to the bit.

    Why not OpenCV: its fixed-point SIMD kernels round differently per CPU (opencv-python-headless
    5.1.0.95 on AVX-512 x86 and on arm64 differ by a grey level here and there), and one grey level in a
    mouth crop moved a probability by 0.008. Separate ufuncs (no fused multiply-add) and a matrix
    inverted with scalar Python arithmetic keep x86 and a Pi identical. About 0.2 ms per 96 px crop.
    """
    (a, b, c), (d, e, f) = (float(v) for v in m[0]), (float(v) for v in m[1])
    det = a * e - b * d
    ia, ib, id_, ie = e / det, -b / det, -d / det, a / det
    ic, if_ = -(ia * c + ib * f), -(id_ * c + ie * f)
    grid = np.arange(size, dtype=np.float64)
    # Source position of every crop pixel: x' = ia*x + ib*y + ic, y' = id*x + ie*y + if.
    sx = np.add.outer(grid * ib + ic, grid * ia)
    sy = np.add.outer(grid * ie + if_, grid * id_)
    h, w = image.shape[:2]
    x0, y0 = np.floor(sx), np.floor(sy)
    fx, fy = sx - x0, sy - y0
    x0, y0 = x0.astype(np.intp), y0.astype(np.intp)
    # Edge replication is index clamping; gather from the flat image (faster than 2-D fancy indexing).
    x0i, x1i = np.clip(x0, 0, w - 1), np.clip(x0 + 1, 0, w - 1)
    y0i, y1i = np.clip(y0, 0, h - 1) * w, np.clip(y0 + 1, 0, h - 1) * w
    flat = np.ascontiguousarray(image).reshape(h * w, *image.shape[2:])
    if image.ndim == 3:  # colour: one weight per pixel for every channel
        fx, fy = fx[..., None], fy[..., None]
    p00, p01, p10, p11 = (flat[i].astype(np.float64) for i in (y0i + x0i, y0i + x1i, y1i + x0i, y1i + x1i))
    top = p00 + (p01 - p00) * fx
    bottom = p10 + (p11 - p10) * fx
    out = top + (bottom - top) * fy
    return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)


def crops(image: np.ndarray, lev: Levelled, size: int = 96,
          regions: CropRegions = DEFAULT_REGIONS) -> dict[str, np.ndarray]:
    """The three size x size uint8 crops. Parts outside the image are padded by edge replication,
    so a face at the border still gives full crops."""
    return {name: warp(image, crop_matrix(lev.matrix, cx, cy, side, size), size)
            for name, (cx, cy, side) in crop_boxes(lev, regions).items()}


def distances(points: np.ndarray) -> np.ndarray:
    """The seed's 13 raw Euclidean distances, in the units of `points`."""
    p = np.asarray(points, dtype=np.float64)
    pair = np.hypot(*(p[_PAIR_A] - p[_PAIR_B]).T)
    mouth_mid = (p[48] + p[54]) / 2.0
    brow_mid = (p[21] + p[22]) / 2.0
    extra = [np.hypot(*(mouth_mid - p[51])), np.hypot(*(brow_mid - p[27]))]
    return np.concatenate([pair, extra])


def normalised_features(lev: Levelled) -> np.ndarray:
    """13 distances on the levelled landmarks divided by the inter-ocular distance: scale-free."""
    return (distances(lev.points) / lev.iod).astype(np.float32)


def mirror(points: np.ndarray) -> np.ndarray:
    """The landmarks of the horizontally mirrored face (x negated, left and right points swapped)."""
    return np.asarray(points, dtype=np.float64)[..., MIRROR, :] * np.array([-1.0, 1.0])


def grow_box(box: tuple[float, float, float, float], margin: float) -> tuple[float, float, float, float]:
    """Grow (x1, y1, x2, y2) by `margin` of its width/height on every side."""
    x1, y1, x2, y2 = box
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    return (x1 - mx, y1 - my, x2 + mx, y2 + my)
