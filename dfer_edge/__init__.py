"""dfer-edge: the seven basic facial expressions, offline, on Raspberry-Pi-class computers."""

from .pixel_limit import bound_opencv

bound_opencv()  # before anything below imports cv2: OpenCV reads its pixel limit once, at import

from .errors import DferError, ImageError, LandmarkModelError, ModelError
from .labels import LABELS
from .options import RecognizerOptions
from .pipeline import Pipeline
from .recognizer import Recognizer
from .results import Category, Face, TrackedFace
from .tracking import FaceTracker

__version__ = "0.1.0"

__all__ = ["LABELS", "Category", "DferError", "Face", "ImageError", "LandmarkModelError", "ModelError",
           "Pipeline", "Recognizer", "RecognizerOptions", "FaceTracker", "TrackedFace", "__version__"]
