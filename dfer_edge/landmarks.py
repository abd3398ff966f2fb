"""Finding and running dlib's 68-point landmark model."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import dlib
import numpy as np

from .errors import LandmarkModelError

LANDMARK_FILE = "shape_predictor_68_face_landmarks.dat"
SYSTEM_PATH = Path("/usr/share/dlib") / LANDMARK_FILE
ENV_VAR = "DFER_LANDMARKS"

HOW_TO_GET = (
    "get it with `pip install face_recognition_models` (or `pip install dfer-edge[landmarks]`), "
    "or on Debian/Raspberry Pi OS `sudo apt install libdlib-data`, "
    f"or pass --landmarks PATH / set {ENV_VAR}"
)


def _package_file() -> Path | None:
    # Located without importing: face_recognition_models' __init__ needs pkg_resources.
    try:
        spec = importlib.util.find_spec("face_recognition_models")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        p = Path(root) / "models" / LANDMARK_FILE
        if p.is_file():
            return p
    return None


def candidate_paths(explicit: str | os.PathLike | None = None) -> list[tuple[str, Path | None]]:
    """Where we look, in order: --landmarks, $DFER_LANDMARKS, face_recognition_models, /usr/share/dlib."""
    env = os.environ.get(ENV_VAR)
    return [
        ("--landmarks", Path(explicit) if explicit else None),
        (ENV_VAR, Path(env) if env else None),
        ("face_recognition_models", _package_file()),
        ("libdlib-data", SYSTEM_PATH),
    ]


def find_landmark_model(explicit: str | os.PathLike | None = None) -> Path:
    """The first landmark file that exists; an explicitly named one must exist."""
    for source, path in candidate_paths(explicit):
        if path is None:
            continue
        if source in ("--landmarks", ENV_VAR):
            if not path.is_file():
                raise LandmarkModelError(f"landmark model {path} (from {source}) not found; {HOW_TO_GET}")
            return path
        if path.is_file():
            return path
    raise LandmarkModelError(f"dlib landmark model {LANDMARK_FILE} not found; {HOW_TO_GET}")


class LandmarkModel:
    """dlib's shape predictor, loaded once. Call with a uint8 image and a dlib.rectangle."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = find_landmark_model(path)
        try:
            self._predictor = dlib.shape_predictor(str(self.path))
        except RuntimeError as e:
            raise LandmarkModelError(f"landmark model {self.path} cannot be loaded ({(str(e).strip().splitlines() or ['unknown error'])[0]}); "
                                     f"the file is corrupt or not a dlib shape predictor: {HOW_TO_GET}") from None

    def __call__(self, image: np.ndarray, rect: dlib.rectangle) -> np.ndarray:
        shape = self._predictor(image, rect)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
