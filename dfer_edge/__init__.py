"""dfer-edge: the seven basic facial expressions, offline, on Raspberry-Pi-class computers."""

from .errors import DferError, ImageError, LandmarkModelError, ModelError
from .labels import LABELS
from .recognizer import Category, Face, Recognizer, RecognizerOptions
from .tracking import FaceTracker, TrackedFace

__version__ = "0.1.0"

__all__ = ["LABELS", "Category", "DferError", "Face", "ImageError", "LandmarkModelError", "ModelError",
           "Recognizer", "RecognizerOptions", "FaceTracker", "TrackedFace", "__version__"]
