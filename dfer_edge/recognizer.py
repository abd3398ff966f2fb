"""The public API: build a Recognizer once, call it on many images."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import geometry
from .calibration import temper
from .detect import DEFAULT_WIDTH, FaceDetector, rect_to_box, working_image
from .extract import FaceInputs, face_inputs, mirrored, ready_crop_inputs
from .image import ImageInput, load_gray, load_gray_for_width
from .labels import LABELS
from .landmarks import LandmarkModel
from .model import ExpressionModel

BOX_MARGIN = 0.10  # the seed's margin around the detector's (tight) box in reported boxes


@dataclass(frozen=True)
class Category:
    name: str
    score: float


class Scored:
    """The top label and its score, for anything holding a `box` and `probabilities` (Face, TrackedFace)."""

    box: tuple[int, int, int, int]
    probabilities: dict[str, float]

    @property
    def label(self) -> str:
        return max(self.probabilities, key=self.probabilities.__getitem__)

    @property
    def score(self) -> float:
        return self.probabilities[self.label]

    def to_dict(self) -> dict[str, Any]:
        return {"box": list(self.box), "label": self.label, "score": round(self.score, 6),
                "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()}}


@dataclass(frozen=True)
class Face(Scored):
    """One face: where it is (original-image pixels) and what it expresses."""

    box: tuple[int, int, int, int]  # x1, y1, x2, y2: the detector box grown by BOX_MARGIN, clipped
    landmarks: np.ndarray  # (68, 2) float, original-image pixels
    probabilities: dict[str, float]  # in LABELS order

    @property
    def categories(self) -> list[Category]:
        """All labels, most likely first."""
        return sorted((Category(k, v) for k, v in self.probabilities.items()), key=lambda c: -c.score)


def result_record(path: str, faces: list[Scored] | None, error: str | None) -> dict[str, Any]:
    """The object `predict --json` prints per input and `POST /predict` answers: one definition, so the
    CLI and the service cannot drift apart."""
    return {"path": path, "error": error, "faces": [f.to_dict() for f in faces] if faces is not None else []}


def report_box(box: tuple[float, float, float, float], to_original: float, width: int,
               height: int) -> tuple[int, int, int, int]:
    """A detector-convention box in working pixels -> the reported box: grown by BOX_MARGIN, in original
    pixels, clipped to the original image."""
    x1, y1, x2, y2 = (v * to_original for v in geometry.grow_box(box, BOX_MARGIN))
    return max(0, round(x1)), max(0, round(y1)), min(width, round(x2)), min(height, round(y2))


@dataclass
class RecognizerOptions:
    """How to run the pipeline. Defaults are the original DeepFER settings."""

    model: str | os.PathLike | None = None  # .tflite; None: the shipped int8 model
    landmarks: str | os.PathLike | None = None  # dlib 68-point file; None: searched for
    width: int | None = DEFAULT_WIDTH  # working-image width; None keeps the input size
    upsample: int = 0  # HOG upsampling; 1 finds faces under ~80 px at ~4x the cost
    detect_width: int | None = None  # detect on a copy this wide, landmarks still on the `width` image
    min_score: float = 0.1  # HOG threshold (dlib default 0): 0.1 drops badge-like false faces, costs ~0.3% of KDEF faces
    num_threads: int | None = None  # interpreter threads; None lets the interpreter decide
    interpreter: str = "auto"  # auto | litert | tflite-runtime
    flip_average: bool = True  # also score the mirrored face and average: +1.9 points on FER2013 val for ~0.3 ms


class Recognizer:
    """Detect faces and recognise their expressions. Loads every model once; reuse it.

    >>> with Recognizer() as rec:
    ...     faces = rec.predict("photo.jpg")
    """

    def __init__(self, options: RecognizerOptions | None = None, **kwargs: Any) -> None:
        self.options = options or RecognizerOptions(**kwargs)
        o = self.options
        self.model = ExpressionModel(o.model, num_threads=o.num_threads, interpreter=o.interpreter)
        self.landmarks = LandmarkModel(o.landmarks)
        self.detector = FaceDetector(o.upsample, o.min_score, o.detect_width)
        # Ready crops are scanned without upsampling: predict_crop upscales them to 256 px first.
        self._crop_detector = FaceDetector(0, dlib_detector=self.detector.dlib_detector)

    def __enter__(self) -> Recognizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the models (the interpreter frees its memory when unreferenced)."""
        self.__dict__.pop("model", None)

    @property
    def labels(self) -> tuple[str, ...]:
        return LABELS

    def probabilities(self, inputs: FaceInputs) -> np.ndarray:
        """Probabilities as an array in LABELS order: flip-averaged when the options say so, then tempered
        with the model's calibration temperature, so that a score of 0.7 is right about 70% of the time."""
        p = self.model(inputs)
        if self.options.flip_average:
            p = (p + self.model(mirrored(inputs, self.model.info.feature_mode))) / 2.0
        return temper(p, self.model.temperature)

    def classify(self, inputs: FaceInputs) -> dict[str, float]:
        """Probabilities (LABELS order) for one face's extracted inputs."""
        return {lab: float(v) for lab, v in zip(LABELS, self.probabilities(inputs))}

    def predict(self, image: ImageInput) -> list[Face]:
        """Every face the detector finds, largest first. No face: an empty list."""
        gray, factor = load_gray_for_width(image, self.options.width)
        h, w = round(gray.shape[0] * factor), round(gray.shape[1] * factor)
        work = working_image(gray, self.options.width)
        to_original = factor / work.scale  # original pixels per working pixel
        faces = []
        for rect in self.detector(work.image):
            pts = self.landmarks(work.image, rect)
            inputs = face_inputs(work.image, pts, self.model.info.crop_size, self.model.info.feature_mode,
                                 self.model.info.regions)
            box = report_box(rect_to_box(rect), to_original, w, h)
            faces.append(Face(box, pts * to_original, self.classify(inputs)))
        return faces

    def predict_largest(self, image: ImageInput) -> Face | None:
        """The largest face only (the seed's predict_one), or None."""
        faces = self.predict(image)
        return faces[0] if faces else None

    def predict_crop(self, image: ImageInput) -> Face:
        """An image that is already a face crop (e.g. FER2013's 48x48): the whole image is the face."""
        gray = load_gray(image)
        h, w = gray.shape
        inputs, rc = ready_crop_inputs(gray, self._crop_detector, self.landmarks,
                                       self.model.info.crop_size, self.model.info.feature_mode,
                                       self.model.info.regions)
        return Face((0, 0, w, h), rc.to_original(inputs.landmarks), self.classify(inputs))
