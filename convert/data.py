"""Cached extraction (.npz) -> training arrays: splits, label choices, features and augmentation."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from dfer_edge import geometry
from dfer_edge.labels import LABELS

LABEL_MODES = ("original", "ferplus-majority", "ferplus-soft")


@dataclass
class Arrays:
    right_eye: np.ndarray  # (N, S, S) uint8
    left_eye: np.ndarray
    mouth: np.ndarray
    landmarks: np.ndarray  # (N, 68, 2) float32, working-image pixels
    target: np.ndarray  # (N, 7) float32 target distribution
    label: np.ndarray  # (N,) int: the dataset's own label (for accuracy)
    subject: np.ndarray
    name: np.ndarray

    def __len__(self) -> int:
        return len(self.label)

    def take(self, idx: np.ndarray) -> "Arrays":
        return Arrays(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))

    @staticmethod
    def concat(parts: list["Arrays"]) -> "Arrays":
        return Arrays(*(np.concatenate([getattr(p, f) for p in parts]) for f in Arrays.__dataclass_fields__))


def targets(label: np.ndarray, votes: np.ndarray, mode: str) -> np.ndarray:
    """Target distributions: one-hot of the dataset label, or FER+ votes where they exist."""
    onehot = np.eye(len(LABELS), dtype=np.float32)[label]
    if mode == "original":
        return onehot
    if mode not in LABEL_MODES:
        raise SystemExit(f"error: unknown label mode {mode!r}; expected one of {LABEL_MODES}")
    v = np.nan_to_num(votes.astype(np.float32), nan=0.0)
    has = v.sum(1) > 0
    out = onehot.copy()
    if mode == "ferplus-soft":
        out[has] = v[has] / v[has].sum(1, keepdims=True)
    else:
        out[has] = np.eye(len(LABELS), dtype=np.float32)[v[has].argmax(1)]
    return out


def load(path: str, mode: str = "original") -> Arrays:
    z = np.load(path, allow_pickle=False)
    return Arrays(z["right_eye"], z["left_eye"], z["mouth"], z["landmarks"],
                  targets(z["label"], z["votes"], mode), z["label"].astype(np.int64),
                  z["subject"], z["name"])


def features(landmarks: np.ndarray) -> np.ndarray:
    """(N, 68, 2) -> (N, 13) with the runtime's own feature function."""
    return np.stack([geometry.normalised_features(geometry.level(p)) for p in landmarks])


def model_inputs(a: Arrays) -> dict[str, np.ndarray]:
    """Float inputs exactly as the runtime feeds them: crops / 255, iod-normalised features."""
    return {
        "right_eye": a.right_eye[..., None].astype(np.float32) / 255.0,
        "left_eye": a.left_eye[..., None].astype(np.float32) / 255.0,
        "mouth": a.mouth[..., None].astype(np.float32) / 255.0,
        "features": features(a.landmarks),
    }


@dataclass
class Augment:
    flip: bool = True
    rotate_deg: float = 8.0
    scale: float = 0.08
    shift: float = 0.04
    brightness: float = 0.15
    contrast: float = 0.25
    landmark_jitter: float = 0.015  # in units of the inter-ocular distance


def _warp_batch(imgs: np.ndarray, rng: np.random.Generator, aug: Augment) -> np.ndarray:
    n, s = imgs.shape[:2]
    out = np.empty_like(imgs)
    ang = rng.uniform(-aug.rotate_deg, aug.rotate_deg, n)
    sc = 1.0 + rng.uniform(-aug.scale, aug.scale, n)
    sh = rng.uniform(-aug.shift, aug.shift, (n, 2)) * s
    for i in range(n):
        m = cv2.getRotationMatrix2D((s / 2, s / 2), float(ang[i]), float(sc[i]))
        m[:, 2] += sh[i]
        out[i] = cv2.warpAffine(imgs[i], m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out


def augmented_batch(a: Arrays, idx: np.ndarray, rng: np.random.Generator, aug: Augment) -> dict[str, np.ndarray]:
    """One training batch: flip (eyes swapped, landmarks mirrored), small warps, photometric jitter,
    landmark jitter before the features are computed."""
    re, le, mo = a.right_eye[idx], a.left_eye[idx], a.mouth[idx]
    lm = a.landmarks[idx].astype(np.float64)
    if aug.flip:
        f = rng.random(len(idx)) < 0.5
        re_f, le_f = le[f][:, :, ::-1], re[f][:, :, ::-1]
        re, le = re.copy(), le.copy()
        re[f], le[f] = re_f, le_f
        mo = mo.copy()
        mo[f] = mo[f][:, :, ::-1]
        lm[f] = geometry.mirror(lm[f])
    if aug.rotate_deg or aug.scale or aug.shift:
        re, le, mo = (_warp_batch(x, rng, aug) for x in (re, le, mo))
    if aug.landmark_jitter:
        iod = np.hypot(*(lm[:, 45] - lm[:, 36]).T)[:, None, None]
        lm = lm + rng.normal(0, aug.landmark_jitter, lm.shape) * iod
    crops = []
    for x in (re, le, mo):
        x = x.astype(np.float32) / 255.0
        c = 1.0 + rng.uniform(-aug.contrast, aug.contrast, (len(idx), 1, 1))
        b = rng.uniform(-aug.brightness, aug.brightness, (len(idx), 1, 1))
        mean = x.mean(axis=(1, 2), keepdims=True)
        crops.append(np.clip((x - mean) * c + mean + b, 0.0, 1.0)[..., None])
    return {"right_eye": crops[0], "left_eye": crops[1], "mouth": crops[2], "features": features(lm)}
