"""Turning what users hand us (paths, encoded bytes, arrays) into one 8-bit grayscale array."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import cv2
import numpy as np

from .errors import ImageError
from .pixel_limit import max_pixels

ImageInput = Union[str, os.PathLike, bytes, bytearray, memoryview, np.ndarray]

# One grey conversion for files and arrays: a file is decoded as it is stored (grey stays grey, colour
# comes as BGR) and colour becomes grey through the same cvtColor an array from a camera or a Python
# caller goes through (array_to_gray). Decoding a JPEG straight to grey takes libjpeg's luma instead,
# which differs where chroma was subsampled (up to 15 grey levels on a few pixels of the shared photos),
# so a file and the same picture as an array gave different answers. The training data (FER2013's grey
# JPEGs, KDEF) decodes identically both ways: every KDEF file and a sample of FER2013 were checked.
# IMREAD_ANYDEPTH keeps 16-bit files 16-bit (we scale them ourselves); EXIF orientation is applied
# because IMREAD_IGNORE_ORIENTATION is not set, so boxes come out in the orientation the user sees.
_DECODE_GRAY = cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH
_DECODE_COLOR = cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH
# libjpeg can decode straight to 1/2, 1/4 or 1/8 size, far cheaper than decoding a 12 MP photo and
# shrinking it to 512 px afterwards.
_REDUCED_GRAY = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}



def _webp_size(b: bytes) -> tuple[str, int, int] | None:
    """The canvas of a WebP file: lossy (VP8), lossless (VP8L) or extended (VP8X)."""
    kind = b[12:16]
    if kind == b"VP8 " and len(b) >= 30 and b[23:26] == b"\x9d\x01\x2a":
        return "webp", int.from_bytes(b[26:28], "little") & 0x3FFF, int.from_bytes(b[28:30], "little") & 0x3FFF
    if kind == b"VP8L" and len(b) >= 25 and b[20] == 0x2F:
        bits = int.from_bytes(b[21:25], "little")
        return "webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8X" and len(b) >= 30:
        return "webp", int.from_bytes(b[24:27], "little") + 1, int.from_bytes(b[27:30], "little") + 1
    return None


def _tiff_size(data: bytes | bytearray | memoryview) -> tuple[str, int, int] | None:
    """Width and length of a classic TIFF's first image (the one OpenCV decodes)."""
    order = "little" if data[:2] == b"II" else "big"
    at = int.from_bytes(data[4:8], order)
    if at + 2 > len(data):
        return None
    n = int.from_bytes(data[at:at + 2], order)
    size = {}
    for i in range(min(n, 4096)):
        e = at + 2 + 12 * i
        if e + 12 > len(data):
            break
        tag, typ = int.from_bytes(data[e:e + 2], order), int.from_bytes(data[e + 2:e + 4], order)
        if tag in (256, 257) and typ in (3, 4):
            size[tag] = int.from_bytes(data[e + 8:e + 10] if typ == 3 else data[e + 8:e + 12], order)
    return ("tiff", size[256], size[257]) if len(size) == 2 else None


def _pnm_size(b: bytes) -> tuple[str, int, int] | None:
    """Width and height from a PBM/PGM/PPM header (comments allowed)."""
    words: list[int] = []
    for line in b[2:2048].split(b"\n"):
        for w in line.split(b"#", 1)[0].split():
            if not w.isdigit():
                return None
            words.append(int(w))
            if len(words) == 2:
                return "pnm", words[0], words[1]
    return None


def encoded_size(data: bytes | bytearray | memoryview) -> tuple[str, int, int] | None:
    """(format, width, height) read from the header of a PNG, JPEG, GIF, BMP, WebP, TIFF or PNM file; None if
    unknown (OpenCV's own pixel limit, set by dfer_edge.pixel_limit, still holds for the rest)."""
    b = bytes(data[:64 * 1024]) if len(data) > 64 * 1024 else bytes(data)
    if b[:4] == b"RIFF" and b[8:12] == b"WEBP":
        return _webp_size(b)
    if b[:4] in (b"II*\x00", b"MM\x00*") and len(b) >= 8:
        return _tiff_size(data)
    if len(b) >= 3 and b[:1] == b"P" and b[1:2] in b"123456" and b[2:3].isspace():
        return _pnm_size(b)
    if b[:8] == b"\x89PNG\r\n\x1a\n" and len(b) >= 24 and b[12:16] == b"IHDR":
        return "png", int.from_bytes(b[16:20], "big"), int.from_bytes(b[20:24], "big")
    if b[:6] in (b"GIF87a", b"GIF89a") and len(b) >= 10:
        return "gif", int.from_bytes(b[6:8], "little"), int.from_bytes(b[8:10], "little")
    if b[:2] == b"BM" and len(b) >= 26:
        return "bmp", abs(int.from_bytes(b[18:22], "little", signed=True)), \
            abs(int.from_bytes(b[22:26], "little", signed=True))
    if b[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(b):
            if b[i] != 0xFF:
                return None
            marker = b[i + 1]
            if marker == 0xFF:  # fill byte
                i += 1
                continue
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            seg = int.from_bytes(b[i + 2:i + 4], "big")
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                return "jpeg", int.from_bytes(b[i + 7:i + 9], "big"), int.from_bytes(b[i + 5:i + 7], "big")
            i += 2 + seg
    return None


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


def check_size(data: bytes | bytearray | memoryview, name: str) -> tuple[str, int, int] | None:
    """Refuse, before decoding, an image whose header claims too many pixels."""
    limit = max_pixels()
    size = encoded_size(data)
    if size and size[1] * size[2] > limit:
        raise ImageError(f"{name}: {size[1]}x{size[2]} pixels is more than the {limit:,} this reads "
                         "(set DFER_MAX_PIXELS to raise the limit)")
    return size


def _decode(data: bytes | bytearray | memoryview, flags: int, name: str) -> np.ndarray:
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size == 0:
        raise ImageError(f"{name}: empty input")
    check_size(data, name)
    try:
        img = cv2.imdecode(buf, flags)
    except cv2.error as e:
        if "validateInputImageSize" in str(e):  # OpenCV's own limit, for a format whose header we do not read
            raise ImageError(f"{name}: more pixels than the {max_pixels():,} this reads "
                             "(set DFER_MAX_PIXELS to raise the limit)") from None
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


def load_gray_for_width(image: ImageInput, width: int | None, name: str | None = None) -> tuple[np.ndarray, float]:
    """Like load_gray, but a large JPEG is decoded at 1/2, 1/4 or 1/8 size when that still leaves at
    least `width` pixels across. Returns (gray, factor): original pixels per returned pixel."""
    if isinstance(image, (str, os.PathLike)):
        name, image = name or str(image), read_bytes(image)
    if not width or not isinstance(image, (bytes, bytearray, memoryview)):
        return load_gray(image, name), 1.0
    size = check_size(image, name or "<bytes>")
    if not size or size[0] != "jpeg":
        return load_gray(image, name), 1.0
    _, w, h = size
    k = next((k for k in (8, 4, 2) if min(w, h) / k >= width), 1)
    if k == 1:
        return load_gray(image, name), 1.0
    gray = array_to_gray(_decode(image, _REDUCED_GRAY[k], name or "<bytes>"))
    gh, gw = gray.shape
    # EXIF may have turned the picture: match the decoded width to the header's width or height.
    orig_w = w if (gw >= gh) == (w >= h) else h
    return gray, orig_w / gw


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
