"""The most pixels an image may have before we decode it, for every format OpenCV reads.

Two fences. Our own header check (dfer_edge.image.encoded_size) refuses PNG, JPEG, GIF, BMP, WebP, TIFF and
PNM files whose header claims too much, with a message naming the size. OpenCV's own limit
(OPENCV_IO_MAX_IMAGE_PIXELS, checked after any decoder reads its header, for formats we do not parse) is
read once, when cv2 is first imported, so it is set here, before this package imports cv2: a 10 KB WebP
that claims 16383x16383 would otherwise be decoded into a gigabyte.
"""

from __future__ import annotations

import os
import sys

from .errors import ImageError

DEFAULT_MAX_PIXELS = 150_000_000
ENV = "DFER_MAX_PIXELS"
OPENCV_ENV = "OPENCV_IO_MAX_IMAGE_PIXELS"


def max_pixels() -> int:
    """DFER_MAX_PIXELS, or 150 MP (room for any camera photo). A value that is not a positive whole number
    is a one-line ImageError at the first image, not a traceback at import."""
    raw = os.environ.get(ENV, "").strip().replace("_", "")
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ImageError(f"{ENV}={os.environ[ENV]!r}: not a positive whole number of pixels (e.g. 150000000)")
    return value


def bound_opencv() -> bool:
    """Give OpenCV's decoders the same limit, if cv2 is not loaded yet (then it is too late: the header
    check still holds for the formats it reads). True when the limit was set here. DFER_MAX_PIXELS is the one
    knob: an OPENCV_IO_MAX_IMAGE_PIXELS inherited from a parent process is overwritten."""
    if "cv2" in sys.modules:
        return False
    try:
        limit = max_pixels()
    except ImageError:
        limit = DEFAULT_MAX_PIXELS  # the bad value is reported at the first image
    os.environ[OPENCV_ENV] = str(limit)
    return True
