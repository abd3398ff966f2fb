"""Capture conditions: what a cheap camera in a dim lobby does to a photo, applied before the pipeline.

Each condition is a seeded function of an 8-bit gray photo (the clean capture) returning the photo as
that camera would have delivered it: dimmed (gamma, gain), with sensor noise (Gaussian, or Poisson-like:
variance growing with the signal), blurred (Gaussian, defocus disk, motion line), JPEG-compressed, or
shrunk so that the face is small (the pipeline's own resize then scales it back up). Conditions combine
left to right (`dim+noise6` dims first, as light falls before the sensor adds noise). Never stored as
images: `evaluate --condition NAME` and benchmarks/capture.py apply them on the fly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

Step = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def dim(gamma: float = 2.2, gain: float = 0.4) -> Step:
    """Less light: intensities through a gamma curve, then scaled down (an under-exposed sensor)."""
    def f(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = (img.astype(np.float32) / 255.0) ** gamma * gain
        return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return f


def noise(sigma: float) -> Step:
    """Gaussian sensor noise of `sigma` grey levels."""
    def f(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.clip(img.astype(np.float32) + rng.normal(0.0, sigma, img.shape), 0, 255).astype(np.uint8)
    return f


def shot_noise(electrons_per_level: float) -> Step:
    """Poisson-like noise: each pixel's count of photo-electrons is Poisson, so darker pixels are relatively
    noisier (`electrons_per_level` electrons per grey level; fewer is noisier)."""
    def f(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        counts = rng.poisson(img.astype(np.float64) * electrons_per_level)
        return np.clip(counts / electrons_per_level, 0, 255).astype(np.uint8)
    return f


def blur(sigma: float) -> Step:
    def f(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return cv2.GaussianBlur(img, (0, 0), sigma)
    return f


def defocus(radius: int) -> Step:
    """An out-of-focus lens: a uniform disk kernel."""
    k = np.zeros((2 * radius + 1, 2 * radius + 1), np.float32)
    cv2.circle(k, (radius, radius), radius, 1.0, -1)
    k /= k.sum()

    def f(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return cv2.filter2D(img, -1, k, borderType=cv2.BORDER_REPLICATE)
    return f


def motion(length: int) -> Step:
    """Camera or subject motion during the exposure: a line kernel at a random angle."""
    def f(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        k = np.zeros((length, length), np.float32)
        a = rng.uniform(0, np.pi)
        c = (length - 1) / 2
        dx, dy = np.cos(a) * c, np.sin(a) * c
        cv2.line(k, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1)
        return cv2.filter2D(img, -1, k / k.sum(), borderType=cv2.BORDER_REPLICATE)
    return f


def jpeg(quality: int) -> Step:
    def f(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
        return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    return f


def shrink(face_width: int, face_share: float) -> Step:
    """Shrink the photo so that a face taking `face_share` of its width becomes `face_width` px wide."""
    def f(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        s = min(1.0, face_width / (face_share * img.shape[1]))
        return cv2.resize(img, (max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s))),
                          interpolation=cv2.INTER_AREA)
    return f


# KDEF's faces take ~45% of the photo's width (HOG's box on the 337-px-wide images); FER2013's 48x48
# crops are already small and are not shrunk.
KDEF_FACE_SHARE = 0.45


@dataclass(frozen=True)
class Condition:
    name: str
    steps: tuple[Step, ...]
    about: str

    def __call__(self, img: np.ndarray, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        for step in self.steps:
            img = step(img, rng)
        return img


CONDITIONS = {c.name: c for c in (
    Condition("clean", (), "the photo as it is"),
    Condition("jpeg20", (jpeg(20),), "JPEG quality 20"),
    Condition("blur2", (blur(2.0),), "Gaussian blur, sigma 2 px"),
    Condition("defocus3", (defocus(3),), "defocus, disk of radius 3 px"),
    Condition("motion9", (motion(9),), "motion blur, 9 px line at a random angle"),
    Condition("small48", (shrink(48, KDEF_FACE_SHARE),), "face ~48 px wide (photo shrunk; the pipeline resizes it)"),
    Condition("dim", (dim(),), "dim: gamma 2.2, gain 0.4"),
    Condition("noise6", (noise(6),), "sensor noise, sigma 6 grey levels"),
    Condition("shot", (shot_noise(0.5),), "Poisson-like shot noise, 0.5 electrons per grey level"),
    Condition("dim+noise3", (dim(), noise(3)), "dim + sensor noise sigma 3"),
    Condition("dim+noise6", (dim(), noise(6)), "dim + sensor noise sigma 6"),
    Condition("dim+shot", (dim(), shot_noise(2.0)), "dim + shot noise, 2 electrons per grey level"),
)}


def condition(name: str) -> Condition:
    from .errors import DferError

    if name not in CONDITIONS:
        raise DferError(f"unknown capture condition {name!r}; expected one of {', '.join(CONDITIONS)}")
    return CONDITIONS[name]


def seed_for(name: str) -> int:
    """A stable per-file seed (noise differs between files, never between runs)."""
    import zlib

    return zlib.crc32(name.encode())
