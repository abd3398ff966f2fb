"""Turning what users hand us (paths, encoded bytes, arrays) into one 8-bit grayscale array."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import cv2
import numpy as np

from .errors import ImageError

ImageInput = Union[str, os.PathLike, bytes, bytearray, memoryview, np.ndarray]

# IMREAD_ANYDEPTH keeps 16-bit files 16-bit (we scale them ourselves); EXIF orientation is applied
# because IMREAD_IGNORE_ORIENTATION is not set, so boxes come out in the orientation the user sees.
_DECODE_GRAY = cv2.IMREAD_GRAYSCALE | cv2.IMREAD_ANYDEPTH
_DECODE_COLOR = cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH


def read_bytes(path: str | os.PathLike) -> bytes:
    """Read a file, turning every OS failure into a one-line ImageError."""
    p = Path(path)
    try:
        if p.is_dir():
            raise ImageError(f"{p}: is a directory, not an image")
        data = p.read_bytes()
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{p}: no such file") from None
    except PermissionError:
        raise ImageError(f"{p}: permission denied") from None
    except OSError as e:
        raise ImageError(f"{p}: cannot read ({e.strerror or e})") from None
    if not data:
        raise ImageError(f"{p}: empty file")
    return data


def _decode(data: bytes | bytearray | memoryview, flags: int, name: str) -> np.ndarray:
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size == 0:
        raise ImageError(f"{name}: empty input")
    try:
        img = cv2.imdecode(buf, flags)
    except cv2.error:
        img = None
    if img is None or img.size == 0:
        raise ImageError(f"{name}: not a readable image (unknown format or corrupt data)")
    return img


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Bring 8- or 16-bit data to 8 bits; anything else is refused rather than guessed."""
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        return (img >> 8).astype(np.uint8)
    raise ImageError(f"unsupported pixel type {img.dtype} (expected uint8 or uint16)")


def array_to_gray(img: np.ndarray) -> np.ndarray:
    """Gray, BGR or BGRA array (8- or 16-bit) -> contiguous 8-bit gray."""
    if not isinstance(img, np.ndarray):
        raise ImageError(f"expected a numpy array, got {type(img).__name__}")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        gray = img
    elif img.ndim == 3 and img.shape[2] in (3, 4):
        gray = None
    else:
        raise ImageError(f"unsupported array shape {img.shape} (expected HxW, HxWx3 BGR or HxWx4 BGRA)")
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise ImageError(f"empty image of shape {img.shape}")
    img8 = to_uint8(img)
    if gray is None:
        code = cv2.COLOR_BGR2GRAY if img8.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
        return cv2.cvtColor(img8, code)
    return np.ascontiguousarray(img8)


def load_gray(image: ImageInput, name: str | None = None) -> np.ndarray:
    """Any supported input -> 8-bit grayscale array, EXIF orientation applied."""
    if isinstance(image, np.ndarray):
        return array_to_gray(image)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return array_to_gray(_decode(image, _DECODE_GRAY, name or "<bytes>"))
    if isinstance(image, (str, os.PathLike)):
        return array_to_gray(_decode(read_bytes(image), _DECODE_GRAY, name or str(image)))
    raise ImageError(f"cannot read an image from {type(image).__name__}")


def load_color(image: ImageInput, name: str | None = None) -> np.ndarray:
    """Any supported input -> 8-bit BGR array (for drawing annotations), EXIF orientation applied."""
    if isinstance(image, np.ndarray):
        array_to_gray(image)  # the same shape and dtype checks as the gray path
        img = to_uint8(image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image)
    elif isinstance(image, (bytes, bytearray, memoryview)):
        img = to_uint8(_decode(image, _DECODE_COLOR, name or "<bytes>"))
    elif isinstance(image, (str, os.PathLike)):
        img = to_uint8(_decode(read_bytes(image), _DECODE_COLOR, name or str(image)))
    else:
        raise ImageError(f"cannot read an image from {type(image).__name__}")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return img
