"""dfer_edge.image: every supported input becomes 8-bit gray (or BGR); every bad one a one-line ImageError."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from dfer_edge.errors import ImageError
from dfer_edge.image import load_color, load_gray

REPO = Path(__file__).resolve().parent.parent


def _bgr(h: int = 40, w: int = 60) -> np.ndarray:
    """A colour image with distinct channels and a bright top-left block (to track orientation)."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.dstack([(xx * 4) % 256, (yy * 6) % 256, ((xx + yy) * 3) % 256]).astype(np.uint8)
    img[:10, :20] = 255
    return img


def _png(img: np.ndarray) -> bytes:
    ok, enc = cv2.imencode(".png", img)
    assert ok
    return enc.tobytes()


def _one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert msg and "\n" not in msg, repr(msg)
    return msg


# --- good inputs ------------------------------------------------------------------------------

def test_path_str_and_pathlike(tmp_path):
    bgr = _bgr()
    p = tmp_path / "face.png"
    p.write_bytes(_png(bgr))
    expected = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    for src in (p, str(p)):
        g = load_gray(src)
        assert g.dtype == np.uint8 and g.shape == (40, 60)
        assert np.abs(g.astype(int) - expected).max() <= 1  # decoder's own gray conversion
        c = load_color(src)
        assert c.dtype == np.uint8 and c.shape == (40, 60, 3)
        np.testing.assert_array_equal(c, bgr)  # PNG is lossless


def test_gray_png_round_trips_exactly(tmp_path):
    gray = _bgr()[:, :, 1].copy()
    p = tmp_path / "g.png"
    p.write_bytes(_png(gray))
    np.testing.assert_array_equal(load_gray(p), gray)
    c = load_color(p)
    assert c.shape == (40, 60, 3)
    for ch in range(3):
        np.testing.assert_array_equal(c[:, :, ch], gray)


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_encoded_bytes(wrap):
    bgr = _bgr()
    data = wrap(_png(bgr))
    g = load_gray(data)
    assert g.dtype == np.uint8 and g.shape == (40, 60)
    assert np.abs(g.astype(int) - cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)).max() <= 1
    c = load_color(data)
    np.testing.assert_array_equal(c, bgr)


def test_jpeg_bytes():
    ok, enc = cv2.imencode(".jpg", _bgr(120, 160), [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    g = load_gray(enc.tobytes())
    assert g.dtype == np.uint8 and g.shape == (120, 160)
    assert g[:10, :20].mean() > 240  # the white block survives


def test_numpy_gray_bgr_bgra_and_single_channel():
    bgr = _bgr()
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    bgra = cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)
    bgra[:, :, 3] = 7  # alpha is ignored

    g = load_gray(gray)
    np.testing.assert_array_equal(g, gray)
    np.testing.assert_array_equal(load_gray(bgr), gray)
    np.testing.assert_array_equal(load_gray(bgra), gray)
    g1 = load_gray(gray[:, :, None])
    assert g1.shape == (40, 60)
    np.testing.assert_array_equal(g1, gray)

    np.testing.assert_array_equal(load_color(bgr), bgr)
    np.testing.assert_array_equal(load_color(bgra), bgr)
    c = load_color(gray)
    assert c.shape == (40, 60, 3)
    np.testing.assert_array_equal(c[:, :, 2], gray)


def test_numpy_non_contiguous_views():
    bgr = _bgr(80, 120)
    view = bgr[::2, ::2]  # strided view
    g = load_gray(view)
    assert g.flags.c_contiguous and g.shape == (40, 60)
    np.testing.assert_array_equal(g, cv2.cvtColor(np.ascontiguousarray(view), cv2.COLOR_BGR2GRAY))
    gray_view = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)[:, ::3]
    g2 = load_gray(gray_view)
    assert g2.flags.c_contiguous
    np.testing.assert_array_equal(g2, gray_view)


def test_uint16_arrays_keep_the_high_byte():
    rng = np.random.default_rng(0)
    g16 = rng.integers(0, 65536, (30, 50), dtype=np.uint16)
    g = load_gray(g16)
    assert g.dtype == np.uint8 and g.shape == (30, 50)
    np.testing.assert_array_equal(g, (g16 // 256).astype(np.uint8))

    bgr16 = rng.integers(0, 65536, (30, 50, 3), dtype=np.uint16)
    expected = cv2.cvtColor((bgr16 // 256).astype(np.uint8), cv2.COLOR_BGR2GRAY)
    np.testing.assert_array_equal(load_gray(bgr16), expected)
    c = load_color(bgr16)
    assert c.dtype == np.uint8 and c.shape == (30, 50, 3)
    np.testing.assert_array_equal(c, (bgr16 // 256).astype(np.uint8))

    bgra16 = rng.integers(0, 65536, (30, 50, 4), dtype=np.uint16)
    assert load_gray(bgra16).shape == (30, 50)
    assert load_gray(g16[:, :, None]).shape == (30, 50)


def test_uint16_png(tmp_path):
    rng = np.random.default_rng(1)
    g16 = rng.integers(0, 65536, (30, 50), dtype=np.uint16)
    data = _png(g16)
    g = load_gray(data)
    assert g.dtype == np.uint8 and g.shape == (30, 50)
    np.testing.assert_array_equal(g, (g16 // 256).astype(np.uint8))  # PNG is lossless
    p = tmp_path / "deep.png"
    p.write_bytes(data)
    np.testing.assert_array_equal(load_gray(p), g)
    c = load_color(p)
    assert c.dtype == np.uint8 and c.shape == (30, 50, 3)
    np.testing.assert_array_equal(c[:, :, 0], g)

    bgr16 = rng.integers(0, 65536, (30, 50, 3), dtype=np.uint16)
    c = load_color(_png(bgr16))
    assert c.dtype == np.uint8 and c.shape == (30, 50, 3)
    np.testing.assert_array_equal(c, (bgr16 // 256).astype(np.uint8))
    assert load_gray(_png(bgr16)).dtype == np.uint8


def test_exif_orientation_is_applied(tmp_path):
    bgr = _bgr(40, 60)  # 60 wide, 40 high, white block at the top-left
    pil = Image.fromarray(bgr[:, :, ::-1].copy())
    exif = pil.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    buf = io.BytesIO()
    pil.save(buf, "JPEG", quality=95, exif=exif.tobytes())
    p = tmp_path / "rotated.jpg"
    p.write_bytes(buf.getvalue())

    for src in (p, buf.getvalue()):
        g = load_gray(src)
        assert g.shape == (60, 40)  # width and height swapped
        # Clockwise: the original top-left 10x20 block (rows x cols) ends up top-right, 20x10.
        assert g[:20, -10:].mean() > 240
        assert g[:20, :10].mean() < 200
        c = load_color(src)
        assert c.shape == (60, 40, 3)


# --- bad inputs -------------------------------------------------------------------------------

def test_empty_bytes():
    for data in (b"", bytearray(), memoryview(b"")):
        with pytest.raises(ImageError) as e:
            load_gray(data)
        assert "empty" in _one_line(e)
    with pytest.raises(ImageError) as e:
        load_color(b"")
    _one_line(e)


def test_garbage_bytes():
    with pytest.raises(ImageError) as e:
        load_gray(b"this is not an image at all", name="upload.jpg")
    assert "upload.jpg" in _one_line(e)


def test_zero_byte_file(tmp_path):
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    for load in (load_gray, load_color):
        with pytest.raises(ImageError) as e:
            load(p)
        msg = _one_line(e)
        assert str(p) in msg and "empty" in msg


def test_text_file_named_jpg(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("hello, I am a text file\nwith two lines\n")
    with pytest.raises(ImageError) as e:
        load_gray(p)
    msg = _one_line(e)
    assert str(p) in msg and "not a readable image" in msg
    with pytest.raises(ImageError) as e:
        load_color(p)
    assert "not a readable image" in _one_line(e)


def test_truncated_jpeg(tmp_path):
    # With the bundled OpenCV (5.x, libjpeg-turbo), cv2.imdecode returns None for a JPEG cut in
    # half, so it must become an ImageError. (Some builds decode the intact part and return a
    # partial image; then a full-size uint8 image is the only acceptable alternative.)
    rng = np.random.default_rng(2)
    ok, enc = cv2.imencode(".jpg", rng.integers(0, 256, (200, 300, 3), dtype=np.uint8))
    assert ok
    data = enc.tobytes()[: len(enc) // 2]
    p = tmp_path / "cut.jpg"
    p.write_bytes(data)
    partial = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    for src in (p, data):
        if partial is None:
            with pytest.raises(ImageError) as e:
                load_gray(src)
            _one_line(e)
        else:  # pragma: no cover - depends on the OpenCV build
            g = load_gray(src)
            assert g.shape == (200, 300) and g.dtype == np.uint8


def test_directory(tmp_path):
    for load in (load_gray, load_color):
        with pytest.raises(ImageError) as e:
            load(tmp_path)
        msg = _one_line(e)
        assert str(tmp_path) in msg and "directory" in msg


def test_missing_path(tmp_path):
    p = tmp_path / "nope" / "missing.png"
    for load in (load_gray, load_color):
        for src in (p, str(p)):
            with pytest.raises(ImageError) as e:
                load(src)
            msg = _one_line(e)
            assert str(p) in msg and "no such file" in msg


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32, np.int8, bool])
def test_unsupported_dtype(dtype):
    arr = np.zeros((20, 30), dtype=dtype)
    for load in (load_gray, load_color):
        with pytest.raises(ImageError) as e:
            load(arr)
        msg = _one_line(e)
        assert "unsupported pixel type" in msg and np.dtype(dtype).name in msg
    with pytest.raises(ImageError):
        load_gray(np.zeros((20, 30, 3), dtype=dtype))


@pytest.mark.parametrize("shape", [(20, 30, 2), (20, 30, 5), (20,), (2, 20, 30, 3)])
def test_unsupported_shape_gray(shape):
    with pytest.raises(ImageError) as e:
        load_gray(np.zeros(shape, np.uint8))
    assert "shape" in _one_line(e)


def test_empty_array():
    for shape in [(0, 30), (20, 0), (0, 0, 3)]:
        with pytest.raises(ImageError) as e:
            load_gray(np.zeros(shape, np.uint8))
        _one_line(e)


def test_unsupported_object_gray():
    for obj in (12, None, [[1, 2], [3, 4]]):
        with pytest.raises(ImageError) as e:
            load_gray(obj)
        _one_line(e)


# --- load_color checks its input like load_gray ------------------------------------------------

def test_load_color_single_channel_array():
    gray = _bgr()[:, :, 0].copy()
    assert load_color(gray[:, :, None]).shape == (40, 60, 3)


def test_load_color_wrong_shape():
    with pytest.raises(ImageError):
        load_color(np.zeros((20, 30, 2), np.uint8))


def test_load_color_unsupported_object():
    with pytest.raises(ImageError):
        load_color(12)


def test_load_color_decode_error_names_the_whole_path(tmp_path):
    p = tmp_path / "a-rather-long-directory-name" / "notes.jpg"
    p.parent.mkdir()
    p.write_text("not an image")
    with pytest.raises(ImageError) as e:
        load_color(p)
    assert str(p) in _one_line(e)


# --- header checks and reduced JPEG decoding ------------------------------------------------------

def _png_header(width: int, height: int) -> bytes:
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + b"\x00" * 64


def test_encoded_size_reads_real_headers(tmp_path):
    from dfer_edge.image import encoded_size

    img = np.zeros((37, 53, 3), np.uint8)
    cases = [(".png", "png", []), (".jpg", "jpeg", []), (".bmp", "bmp", []), (".webp", "webp", []),
             (".webp", "webp", [cv2.IMWRITE_WEBP_QUALITY, 101]),  # lossless (VP8L)
             (".tif", "tiff", []), (".tif", "tiff", [cv2.IMWRITE_TIFF_COMPRESSION, 1]), (".ppm", "pnm", [])]
    for ext, fmt, params in cases:
        ok, enc = cv2.imencode(ext, img, params)
        assert ok
        assert encoded_size(enc.tobytes()) == (fmt, 53, 37), (ext, params)
    ok, enc = cv2.imencode(".webp", np.zeros((37, 53, 4), np.uint8))  # with alpha
    assert encoded_size(enc.tobytes()) == ("webp", 53, 37)
    pgm = b"P5\n# made by hand\n53 37\n255\n" + bytes(53 * 37)
    assert encoded_size(pgm) == ("pnm", 53, 37)
    assert encoded_size(b"hello world, not an image") is None


def test_huge_png_header_is_refused_before_decoding():
    from dfer_edge.pixel_limit import max_pixels

    data = _png_header(100_000, 100_000)
    assert 100_000 * 100_000 > max_pixels()
    with pytest.raises(ImageError) as e:
        load_gray(data)
    msg = _one_line(e)
    assert "100000x100000" in msg and "DFER_MAX_PIXELS" in msg


def test_large_jpeg_is_decoded_reduced_with_the_right_factor():
    from dfer_edge.image import load_gray_for_width

    big = (np.indices((1800, 2400)).sum(0) % 256).astype(np.uint8)
    ok, enc = cv2.imencode(".jpg", big)
    gray, factor = load_gray_for_width(enc.tobytes(), 512)
    # 1800 / 2 = 900 >= 512 and 1800 / 4 = 450 < 512: half size is the smallest that keeps 512 px.
    assert gray.shape == (900, 1200)
    assert factor == pytest.approx(2.0)
    small, f1 = load_gray_for_width(enc.tobytes(), None)
    assert small.shape == (1800, 2400) and f1 == 1.0


# --- every format bounded (dfer_edge.pixel_limit) -------------------------------------------------

WEBP_BOMB = Path(__file__).parent / "data" / "webp-16383x16383.webp"  # 10 KB, lossless, made by cv2.imencode


def _peak_rss_cli(*args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, float]:
    """The CLI run in a fresh process, with that process's own peak RSS in MiB (VmHWM, which belongs to the
    new process image; ru_maxrss would carry over a large parent's), printed last on stderr."""
    code = ("import re, sys\nfrom dfer_edge.cli import main\nsys.argv = ['dfer-edge', *sys.argv[1:]]\ntry:\n"
            "    main()\nfinally:\n    print(int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())"
            ".group(1)) // 1024, file=sys.stderr)")
    full = {k: v for k, v in os.environ.items() if k != "DFER_VERBOSE"}
    full.update(env or {})
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=full, timeout=300,
                       cwd=REPO)
    *lines, peak = r.stderr.strip().splitlines()
    return subprocess.CompletedProcess(r.args, r.returncode, r.stdout, "\n".join(lines)), int(peak)


def test_a_10kb_webp_claiming_268_megapixels_is_refused_in_one_line_without_decoding():
    from dfer_edge.image import encoded_size

    data = WEBP_BOMB.read_bytes()
    assert len(data) < 16_000 and encoded_size(data) == ("webp", 16383, 16383)
    with pytest.raises(ImageError) as e:
        load_gray(data)
    assert "16383x16383" in _one_line(e)
    r, rss = _peak_rss_cli("predict", str(WEBP_BOMB))
    assert r.returncode == 1, r.stderr
    assert r.stderr.count("\n") == 0 and "16383x16383" in r.stderr and "DFER_MAX_PIXELS" in r.stderr
    # Decoded, it is a 268 MB grey image (1.2 GB peak measured); refused, the process stays at its usual size.
    assert rss < 500, rss


def test_opencv_limit_holds_for_a_format_whose_header_we_do_not_read(tmp_path):
    """Sun raster: no header check of ours, so only OpenCV's own limit, set before cv2 loads, can refuse it."""
    from dfer_edge.image import encoded_size

    ok, enc = cv2.imencode(".ras", np.full((100, 120), 128, np.uint8))
    assert ok and encoded_size(enc.tobytes()) is None
    path = tmp_path / "grey.ras"
    path.write_bytes(enc.tobytes())
    assert load_gray(path).shape == (100, 120)  # readable at the default limit
    r, _ = _peak_rss_cli("predict", str(path), env={"DFER_MAX_PIXELS": "5000"})
    assert r.returncode == 1 and "more pixels than the 5,000" in r.stderr, r.stderr
    assert r.stderr.count("\n") == 0


@pytest.mark.parametrize("value", ["lots", "-5", "1.5e8", "0"])
def test_a_bad_pixel_limit_is_one_line_not_a_traceback(value):
    r, _ = _peak_rss_cli("predict", str(REPO / "samples" / "astronaut.jpg"), env={"DFER_MAX_PIXELS": value})
    assert r.returncode != 0
    assert r.stderr.startswith("error: DFER_MAX_PIXELS=") and r.stderr.count("\n") == 0, r.stderr
    assert "Traceback" not in r.stderr


# --- one grey conversion ---------------------------------------------------------------------------

def test_a_file_and_the_same_picture_as_an_array_are_one_grey_image():
    """Files used to be decoded straight to libjpeg's luma, arrays converted with cvtColor: up to 9 grey
    levels apart on the sample. Now both go through cvtColor; a reduced decode of a large JPEG too."""
    from dfer_edge.image import load_gray_for_width

    sample = REPO / "samples" / "astronaut.jpg"
    direct = cv2.imread(str(sample), cv2.IMREAD_GRAYSCALE)
    as_array = load_gray(cv2.imread(str(sample)))
    assert np.abs(direct.astype(int) - as_array).max() >= 5  # the two conversions really differ here
    np.testing.assert_array_equal(load_gray(sample), as_array)
    np.testing.assert_array_equal(load_gray(sample.read_bytes()), as_array)
    big = cv2.resize(cv2.imread(str(sample)), (2048, 2048), interpolation=cv2.INTER_NEAREST)
    ok, enc = cv2.imencode(".jpg", big)
    reduced, factor = load_gray_for_width(enc.tobytes(), 512)
    colour = cv2.imdecode(enc, cv2.IMREAD_REDUCED_COLOR_4)
    assert factor == 4 and np.array_equal(reduced, load_gray(colour))


def test_grey_files_stay_exactly_grey(tmp_path):
    """A grey file (FER2013's JPEGs, a grey PNG) decodes to the very values it stores."""
    grey = (np.indices((60, 80)).sum(0) * 3 % 256).astype(np.uint8)
    assert cv2.imwrite(str(tmp_path / "g.png"), grey)
    np.testing.assert_array_equal(load_gray(tmp_path / "g.png"), grey)
    assert cv2.imwrite(str(tmp_path / "g.jpg"), grey)
    np.testing.assert_array_equal(load_gray(tmp_path / "g.jpg"), cv2.imread(str(tmp_path / "g.jpg"), cv2.IMREAD_GRAYSCALE))
