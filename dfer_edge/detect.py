"""Steps 1-2 of the pipeline: the working image and dlib's HOG face detector."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import dlib
import numpy as np

from . import geometry
from .errors import DferError
from .options import DEFAULTS

DEFAULT_WIDTH = DEFAULTS.width
# The working image is `width` wide unless that would make it taller than this (a strip a few pixels wide,
# which no face fits in anyway, scaled to 512 px would need gigabytes).
MAX_WORKING_HEIGHT = 8192
BOX_MARGIN = 0.10  # the seed's margin around the detector's (tight) box in reported boxes
# dlib's own frontal face detector, saved once with `dlib.get_frontal_face_detector().save(...)`.
# Loading it from this file takes ~2 ms; dlib rebuilds the embedded copy from text in ~0.4 s, a third
# of our cold start. Same detector, same boxes (tests/test_detect_real.py compares them).
DETECTOR_FILE = Path(__file__).with_name("frontal_face_detector.svm")


def load_frontal_detector():
    """dlib's HOG frontal face detector, from the saved copy when it loads, else dlib's embedded one."""
    try:
        return dlib.fhog_object_detector(str(DETECTOR_FILE))
    except RuntimeError:
        return dlib.get_frontal_face_detector()


@dataclass(frozen=True, eq=False)
class WorkingImage:
    """The equalised grayscale image the detector and landmarks run on, and how its pixels map back to
    the original image's (which may have been decoded reduced, see image.load_gray_for_width)."""

    image: np.ndarray
    scale: float  # working pixels per decoded pixel
    factor: float = 1.0  # original pixels per decoded pixel
    original_size: tuple[int, int] = (0, 0)  # (width, height) of the original image
    gray: np.ndarray | None = None  # the decoded image before resizing and equalising (a second look may use it)

    @property
    def to_original(self) -> float:
        """Original pixels per working pixel."""
        return self.factor / self.scale

    def points_to_original(self, points: np.ndarray) -> np.ndarray:
        """Working-image points -> original pixels, by the pixel-centre rule every resize here follows
        (INTER_AREA by a whole factor, INTER_LINEAR_EXACT, libjpeg's reduced decode): the centre of working
        pixel p is original (p + 0.5) k - 0.5, not p k (3.4 px off on a 4000-px photo)."""
        k = self.to_original
        return (points + 0.5) * k - 0.5

    def box_to_original(self, box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
        """A detector-convention box in working pixels (dlib's: right and bottom are the last pixels inside)
        -> the reported box: its pixel edges (left, right + 1) in original pixels, grown by BOX_MARGIN,
        rounded, clipped to the original image."""
        k = self.to_original
        x1, y1, x2, y2 = box
        x1, y1, x2, y2 = (v * k for v in geometry.grow_box((x1, y1, x2 + 1, y2 + 1), BOX_MARGIN))
        width, height = self.original_size
        return max(0, round(x1)), max(0, round(y1)), min(width, round(x2)), min(height, round(y2))


# Noise as histogram equalisation will stretch it: the frame's noise (Immerkaer's high-pass, robust
# median form, on every second pixel; grey levels) times 255 over its 1-99% range. Clean photos score
# 0-3.3 (KDEF 0.8-1.6, the shared photos 0-3.3), sensor noise alone 6-8, dim light with sensor or shot
# noise 9-28: there equalising multiplies the noise several times over before HOG, landmarks and
# crops see it. Above DENOISE_AT the working image is blurred (denoise_sigma) before it is
# equalised.
_NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
DENOISE_AT = 6.0
# The blur grows with the noise: sigma 1 px at a stretched noise of 9 (dim + sensor noise sigma 3), up
# to 3 px for the darkest, noisiest frames. On held-out KDEF, dim + noise sigma 6 (drop against clean):
# a fixed 1.5 px -10.0 points; sigma = noise / 6 -8.2; noise / 9 -6.4 (-5.0 with the flip-averaged
# landmarks); noise / 12 -8.0; noise / 3 -10.8; no blur -16.9. Too little leaves the stretched noise
# in the crops, too much blurs away the expression (convert/EXPERIMENTS.md, "Capture conditions").
DENOISE_SIGMA_PER_NOISE = 1.0 / 9
DENOISE_SIGMA_MAX = 3.0


def denoise_sigma(noise: float) -> float:
    """Blur (px of the working image) for a frame whose stretched noise is `noise`."""
    return min(DENOISE_SIGMA_MAX, DENOISE_SIGMA_PER_NOISE * noise)


def stretched_noise(gray: np.ndarray, step: int = 2) -> float:
    """The noise equalisation would leave in `gray` (8-bit), in grey levels of the equalised image.
    Every second row and column (`step` 2) is enough for the estimate on a frame (~0.3 ms at 512 px); a
    48-px face crop needs every pixel."""
    g = gray[::step, ::step]
    h, w = g.shape[:2]
    if h < 3 or w < 3:
        return 0.0
    # The median of the high-pass response (its kernel's norm is 6), not its mean: edges and texture,
    # which the mean takes for noise, are a minority of pixels. Integer response -> histogram median.
    sigma = _quantiles(np.abs(cv2.filter2D(g, cv2.CV_16S, _NOISE_KERNEL)[1:-1, 1:-1]), 0.5)[0] / (0.6745 * 6)
    lo, hi = _quantiles(g, 0.01, 0.99)
    return sigma * 255.0 / max(hi - lo, 1)


def _quantiles(values: np.ndarray, *qs: float) -> list[int]:
    """Quantiles of non-negative integers, from their histogram (cheaper than sorting)."""
    cum = np.cumsum(np.bincount(values.ravel()))
    return [int(np.searchsorted(cum, q * cum[-1])) for q in qs]


# How the working image's contrast is normalised. "global" is the seed's cv2.equalizeHist; "clahe" is a
# local equaliser (contrast-limited, 8x8 tiles, clip 2), which stretches a dim face by its own range rather
# than the whole frame's. A model is trained with one and runs with the same one (its sidecar's
# "equalize"; old models: global).
EQUALIZERS = ("global", "clahe")
CLAHE_CLIP = 2.0
CLAHE_TILES = (8, 8)


def check_equalizer(how: str) -> str:
    """`how` if it names an equaliser (EQUALIZERS), else a one-line DferError."""
    if how not in EQUALIZERS:
        raise DferError(f"unknown equaliser {how!r}; expected one of {', '.join(EQUALIZERS)}")
    return how


def equalise(gray: np.ndarray, how: str = "global") -> np.ndarray:
    """8-bit gray -> equalised 8-bit gray, by the named equaliser (EQUALIZERS)."""
    if check_equalizer(how) == "global":
        return cv2.equalizeHist(gray)
    return cv2.createCLAHE(CLAHE_CLIP, CLAHE_TILES).apply(gray)


def working_image(gray: np.ndarray, width: int | None = DEFAULT_WIDTH, factor: float = 1.0,
                  denoise: bool = True, equalize: str = "global") -> WorkingImage:
    """Resize to `width` px wide (None: keep size) and equalise the histogram, once per frame. `factor`:
    original pixels per pixel of `gray`, when it was decoded reduced. `denoise`: blur first when the
    frame is so noisy for its contrast that equalising would amplify the noise (dim light plus a cheap
    sensor); clean frames are never touched. `equalize`: which equaliser (EQUALIZERS)."""
    source = gray
    h, w = gray.shape[:2]
    original_size = (round(w * factor), round(h * factor))
    scale = 1.0
    if width and w != width:
        k = w // width
        if k < 2 or h < k:  # no whole-factor shrink (a strip of fewer rows than k would vanish)
            k = 1
        if k >= 2:
            # Shrink by a whole factor first: INTER_AREA averages (no aliasing for HOG) and is fast only
            # for whole factors (4000 px: 17 ms for 512 px directly, 0.3 ms this way). The < k leftover
            # pixels at the right and bottom edges are dropped; coordinates keep their origin.
            gray = cv2.resize(gray[: h - h % k, : w - w % k], (w // k, h // k), interpolation=cv2.INTER_AREA)
            h, w = gray.shape[:2]
        s = width / w
        size = (width, max(1, round(h * s)))
        if size[1] > MAX_WORKING_HEIGHT:  # a strip of a few pixels' width: do not blow it up to gigabytes
            s = MAX_WORKING_HEIGHT / h
            size = (max(1, round(w * s)), MAX_WORKING_HEIGHT)
        # LINEAR_EXACT: bit-exact fixed point, so x86 and a Pi's arm64 give the same working image (plain
        # INTER_LINEAR differed on arm64 and moved probabilities by 0.04); 0.03-0.1 ms more.
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_LINEAR_EXACT)
        scale = s / k
    if denoise:
        noise = stretched_noise(gray)
        if noise > DENOISE_AT:
            gray = cv2.GaussianBlur(gray, (0, 0), denoise_sigma(noise))
    return WorkingImage(equalise(gray, equalize), scale, factor, original_size, source)


class Detector(Protocol):
    """What the pipeline needs of a face detector, so that a second detector is one new class: every face
    in an 8-bit grayscale image, largest first, as dlib rectangles in that image's pixels and in dlib's
    box convention (the landmark model starts from them)."""

    def __call__(self, image: np.ndarray) -> list[dlib.rectangle]: ...


class FaceDetector:
    """dlib's frontal HOG detector (the seed's). Upsampling finds faces under ~80 px at ~4x the cost.

    `min_score` is the HOG decision threshold: 0 is dlib's default; a little above 0 (e.g. 0.1)
    drops face-like patterns such as badges, at the risk of losing faint real faces.
    """

    def __init__(self, upsample: int = 0, min_score: float = 0.0, detect_width: int | None = None,
                 dlib_detector=None) -> None:
        if upsample < 0:
            raise ValueError("upsample must be >= 0")
        self.upsample = upsample
        self.min_score = min_score
        self.detect_width = detect_width  # scan a copy shrunk to this width (HOG cost ~ pixels); boxes come back full size
        # The dlib detector keeps no state between calls, so detectors with different settings can share
        # one (pass another FaceDetector's `dlib_detector`) instead of each loading the file.
        self.dlib_detector = dlib_detector if dlib_detector is not None else load_frontal_detector()

    def __call__(self, image: np.ndarray) -> list[dlib.rectangle]:
        """Every face scoring at least `min_score`, largest first, in `image` pixels."""
        if self.detect_width and image.shape[1] > self.detect_width:
            k = image.shape[1] / self.detect_width
            small = cv2.resize(image, (self.detect_width, max(1, round(image.shape[0] / k))), interpolation=cv2.INTER_AREA)
            return [dlib.rectangle(round(r.left() * k), round(r.top() * k), round(r.right() * k), round(r.bottom() * k))
                    for r in self._detect(small)]
        return self._detect(image)

    def _detect(self, image: np.ndarray) -> list[dlib.rectangle]:
        if self.min_score == 0.0:
            rects = list(self.dlib_detector(image, self.upsample))
        else:
            found, scores, _ = self.dlib_detector.run(image, self.upsample, self.min_score)
            rects = list(found)
        rects.sort(key=lambda r: r.area(), reverse=True)
        return rects


def rect_to_box(rect: dlib.rectangle) -> tuple[float, float, float, float]:
    return (float(rect.left()), float(rect.top()), float(rect.right()), float(rect.bottom()))
