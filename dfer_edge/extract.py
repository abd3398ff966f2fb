"""Steps 3-4: landmarks -> levelled crops and features. The one implementation that both training
(convert/) and inference use, so a model sees at run time exactly what it saw in training."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import dlib
import numpy as np

from . import geometry
from .detect import FaceDetector, equalise, stretched_noise
from .landmarks import LandmarkModel

# How the 13 distances are expressed. "iod": divided by the inter-ocular distance (this project's
# models). "seed-pixels": raw pixel distances on the 512-px working image (the original DeepFER).
FEATURE_MODES = ("iod", "seed-pixels")


@dataclass(frozen=True)
class FaceInputs:
    """What the network eats for one face, plus the landmarks it came from (working-image pixels)."""

    right_eye: np.ndarray  # (size, size) uint8
    left_eye: np.ndarray
    mouth: np.ndarray
    features: np.ndarray  # (13,) float32
    landmarks: np.ndarray  # (68, 2) float64


def features_for(lev: geometry.Levelled, mode: str = "iod") -> np.ndarray:
    if mode == "iod":
        return geometry.normalised_features(lev)
    if mode == "seed-pixels":
        return geometry.distances(lev.points).astype(np.float32)
    raise ValueError(f"unknown feature convention {mode!r}; expected one of {FEATURE_MODES}")


def face_inputs(image: np.ndarray, landmarks: np.ndarray, size: int = 96, mode: str = "iod",
                regions: geometry.CropRegions = geometry.DEFAULT_REGIONS) -> FaceInputs:
    """Crops and features from landmarks already found on `image` (the working image)."""
    lev = geometry.level(landmarks)
    c = geometry.crops(image, lev, size, regions)
    return FaceInputs(c["right_eye"], c["left_eye"], c["mouth"], features_for(lev, mode), landmarks)


def mirrored(face: FaceInputs, mode: str = "iod") -> FaceInputs:
    """The same face seen in a mirror: eye crops swapped and flipped, mouth flipped, features from the
    mirrored landmarks. Training flips faces this way; averaging both views at run time smooths out
    left/right asymmetries of crops and landmarks."""
    lm = geometry.mirror(face.landmarks)
    return FaceInputs(face.left_eye[:, ::-1], face.right_eye[:, ::-1], face.mouth[:, ::-1],
                      features_for(geometry.level(lm), mode), lm)


# --- Ready face crops ("the whole image is the face") -------------------------------------------
# FER2013-style 48x48 crops are too small for HOG and the whole image is a poor landmark box
# (dlib's boxes sit tighter and lower). So: pad, upscale, try HOG; if it finds nothing, use a box
# calibrated to where HOG puts faces on these crops (medians measured on 400 FER2013 train images,
# HOG found 81% of them).
READY_PAD = 8  # px of padding around the original crop
READY_SIZE = 256  # padded crop is upscaled to this square
READY_FALLBACK = (0.016, 0.115, 0.948, 0.964)  # (x1, y1, x2, y2) as fractions of the unpadded crop


@dataclass(frozen=True)
class ReadyCrop:
    image: np.ndarray  # the equalised, padded, upscaled working image (READY_SIZE square)
    rect: dlib.rectangle  # the face box used for landmarks, in `image` pixels
    detected: bool  # True if HOG found the face, False if the calibrated box was used
    scale: float  # working pixels per original pixel
    offset: tuple[float, float]  # original-pixel position of the padded square's corner (x, y), <= 0
    original_shape: tuple[int, int] = (0, 0)  # (height, width) of the original crop

    def to_original(self, points: np.ndarray) -> np.ndarray:
        """Working-image points -> pixels of the original crop (cv2.resize's pixel-centre convention)."""
        return (points + 0.5) / self.scale - 0.5 + np.array(self.offset)


# Denoising a ready crop: the noise is estimated on the crop itself (after the upscale to READY_SIZE it
# is hidden). Clean FER2013 val crops score 3.8 (median), 6.7 (95%), 8.9 (99%); dim light with sensor
# noise sigma 6 scores 13-44, shot noise 12-29. Above CROP_DENOISE_AT the crop is blurred by about one
# sensor pixel, as the working image of a photo is.
CROP_DENOISE_AT = 10.0
CROP_DENOISE_SIGMA = 1.0


def ready_crop(gray: np.ndarray, detector: FaceDetector, equalize: str = "global", denoise: bool = True) -> ReadyCrop:
    """Working image and face box for an image that is already a face crop. A non-square crop is
    padded to a square first so that the face is scaled, never stretched. `denoise` and `equalize` as
    for a photo's working image (detect.working_image)."""
    if denoise and stretched_noise(gray, step=1) > CROP_DENOISE_AT:
        gray = cv2.GaussianBlur(gray, (0, 0), CROP_DENOISE_SIGMA)
    h, w = gray.shape[:2]
    side = max(h, w)
    left, top = READY_PAD + (side - w) // 2, READY_PAD + (side - h) // 2
    right, bottom = side + 2 * READY_PAD - w - left, side + 2 * READY_PAD - h - top
    s = READY_SIZE / (side + 2 * READY_PAD)
    interp = cv2.INTER_CUBIC if s > 1 else cv2.INTER_AREA

    def upscaled(border: int) -> np.ndarray:
        padded = cv2.copyMakeBorder(gray, top, bottom, left, right, border, value=0)
        return equalise(cv2.resize(padded, (READY_SIZE, READY_SIZE), interpolation=interp), equalize)

    # HOG finds more faces on a black-padded copy (81% vs 73% with replicated edges), but crops cut
    # from it show black bands that full photos never have; so landmarks and crops use edge replication.
    work = upscaled(cv2.BORDER_REPLICATE)
    offset = (-float(left), -float(top))
    rects = detector(upscaled(cv2.BORDER_CONSTANT))
    if rects:
        return ReadyCrop(work, rects[0], True, s, offset, (h, w))
    fx1, fy1, fx2, fy2 = READY_FALLBACK

    def to_work(v: float, pad: int) -> int:  # original pixel -> working pixel, pixel-centre convention
        return round((v + pad + 0.5) * s - 0.5)

    rect = dlib.rectangle(to_work(fx1 * w, left), to_work(fy1 * h, top), to_work(fx2 * w, left), to_work(fy2 * h, top))
    return ReadyCrop(work, rect, False, s, offset, (h, w))


def ready_crop_inputs(gray: np.ndarray, detector: FaceDetector, landmarks: LandmarkModel,
                      size: int = 96, mode: str = "iod",
                      regions: geometry.CropRegions = geometry.DEFAULT_REGIONS) -> tuple[FaceInputs, ReadyCrop]:
    rc = ready_crop(gray, detector)
    pts = landmarks(rc.image, rc.rect)
    return face_inputs(rc.image, pts, size, mode, regions), rc
