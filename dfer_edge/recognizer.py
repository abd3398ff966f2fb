"""The public API for photos: build a Recognizer once, call it on many images.

A thin face over the corridor (pipeline.Pipeline): it turns the pipeline's working-pixel results into
Face objects in original-image pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .detect import FaceDetector, rect_to_box
from .errors import DferError
from .extract import FaceInputs
from .image import ImageInput
from .labels import LABELS
from .landmarks import LandmarkModel
from .model import ExpressionModel
from .options import RecognizerOptions, options_from
from .pipeline import Pipeline
from .pose import head_pose
from .results import Category, Face, Scored, result_record

__all__ = ["Category", "Face", "Recognizer", "RecognizerOptions", "Scored", "result_record"]


class Recognizer:
    """Detect faces and recognise their expressions. Loads every model once; reuse it.

    >>> with Recognizer(RecognizerOptions(upsample=1)) as rec:   # or Recognizer(upsample=1)
    ...     faces = rec.predict("photo.jpg")
    """

    def __init__(self, options: RecognizerOptions | None = None, **settings: Any) -> None:
        self.options = options_from(options, settings)
        self._pipeline: Pipeline | None = Pipeline(self.options)

    def __enter__(self) -> Recognizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the models (the interpreter frees its memory when unreferenced). Using the recognizer
        afterwards is a DferError that says so, not an AttributeError from inside."""
        self._pipeline = None

    @property
    def pipeline(self) -> Pipeline:
        if self._pipeline is None:
            raise DferError("this Recognizer is closed: make a new one")
        return self._pipeline

    @property
    def labels(self) -> tuple[str, ...]:
        return LABELS

    @property
    def model(self) -> ExpressionModel:
        return self.pipeline.model

    @property
    def landmarks(self) -> LandmarkModel:
        return self.pipeline.landmark_model

    @property
    def detector(self) -> FaceDetector:
        return self.pipeline.detector

    def probabilities(self, inputs: FaceInputs) -> np.ndarray:
        """Probabilities as an array in LABELS order (Pipeline.score)."""
        return self.pipeline.score(inputs)

    def classify(self, inputs: FaceInputs) -> dict[str, float]:
        """Probabilities (LABELS order) for one face's extracted inputs."""
        return as_dict(self.pipeline.score(inputs))

    def predict(self, image: ImageInput) -> list[Face]:
        """Every face the detector finds, largest first. No face: an empty list."""
        return self._faces(image, None)

    def predict_largest(self, image: ImageInput) -> Face | None:
        """The largest face only (the seed's predict_one), or None. Only that face is fitted and scored."""
        faces = self._faces(image, 1)
        return faces[0] if faces else None

    def _faces(self, image: ImageInput, max_faces: int | None) -> list[Face]:
        work, found = self.pipeline.run(image, max_faces=max_faces)
        return [self._face(work.box_to_original(rect_to_box(f.rect)), work.points_to_original(f.landmarks),
                           f.probabilities, work.original_size) for f in found]

    def _face(self, box: tuple[int, int, int, int], points: np.ndarray, probabilities: np.ndarray,
              image_size: tuple[int, int]) -> Face:
        pose = head_pose(points, image_size)
        return Face(box, points, as_dict(probabilities), pose, self.looks(pose))

    def looks(self, pose) -> bool:
        """Whether a face with this head pose counts as looking at the camera (the options' limits)."""
        return pose.looking(self.options.looking_yaw, self.options.looking_pitch)

    def predict_crop(self, image: ImageInput) -> Face:
        """An image that is already a face crop (e.g. FER2013's 48x48): the whole image is the face."""
        rc, f = self.pipeline.run_crop(image)
        h, w = rc.original_shape
        return self._face((0, 0, w, h), rc.to_original(f.landmarks), f.probabilities, (w, h))


def as_dict(probabilities: np.ndarray) -> dict[str, float]:
    """LABELS-ordered array -> {label: probability}."""
    return {lab: float(v) for lab, v in zip(LABELS, probabilities)}
