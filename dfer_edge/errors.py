"""Exceptions whose message is fit to show a user as one line."""


class DferError(Exception):
    """Base class: anything the CLI may print as a one-line error instead of a traceback."""


class ImageError(DferError):
    """The input could not be read as an image."""


class ModelError(DferError):
    """The expression model is missing, corrupt or not a dfer-edge model."""


class LandmarkModelError(DferError):
    """The dlib 68-point landmark model cannot be found or loaded."""
