"""The real pipeline front end on real photos: working image, HOG detector, dlib landmarks, crops.

Needs ../shared/data (skipped without it) and the dlib landmark model (skipped without it)."""

from __future__ import annotations

import numpy as np
import pytest

from dfer_edge import extract, geometry
from dfer_edge.detect import DEFAULT_WIDTH, FaceDetector, rect_to_box, working_image
from dfer_edge.errors import LandmarkModelError
from dfer_edge.image import load_gray
from dfer_edge.landmarks import LandmarkModel
from tests.helpers import FER_VAL, PHOTOS, eye_centres

ANGRY = PHOTOS / "angry.jpg"
NON_FACE = PHOTOS / "non_face.jpg"


def _need(path):
    if not path.exists():
        pytest.skip(f"shared test data not available: {path}")
    return path


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


@pytest.fixture(scope="module")
def landmark_model():
    try:
        return LandmarkModel()
    except LandmarkModelError as e:
        pytest.skip(f"dlib landmark model not available: {e}")


@pytest.fixture(scope="module")
def angry():
    gray = load_gray(_need(ANGRY))
    return gray, working_image(gray)


# --- working image ----------------------------------------------------------------------------

def test_working_image_size_and_equalisation(angry):
    gray, work = angry
    h, w = gray.shape
    img = work.image
    assert img.dtype == np.uint8
    assert img.shape == (round(h * DEFAULT_WIDTH / w), DEFAULT_WIDTH)
    assert work.scale == pytest.approx(DEFAULT_WIDTH / w)
    # Equalised: the cumulative histogram is close to the identity line.
    cdf = np.bincount(img.ravel(), minlength=256).cumsum() / img.size
    assert cdf[128] == pytest.approx(0.5, abs=0.1)
    assert cdf[64] == pytest.approx(0.25, abs=0.1) and cdf[192] == pytest.approx(0.75, abs=0.1)
    assert img.min() <= 5 and img.max() == 255  # stretched to the full range


def test_working_image_keeps_size_when_asked(angry):
    gray, _ = angry
    small = gray[::4, ::4].copy()
    work = working_image(small, width=None)
    assert work.image.shape == small.shape and work.scale == 1.0
    same = working_image(work.image, width=small.shape[1])
    assert same.scale == 1.0 and same.image.shape == small.shape


# --- detector and landmarks -------------------------------------------------------------------

def test_detector_finds_one_face(angry, detector):
    _, work = angry
    rects = detector(work.image)
    assert len(rects) == 1
    x1, y1, x2, y2 = rect_to_box(rects[0])
    h, w = work.image.shape
    assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
    assert (x2 - x1) > 0.2 * w  # a portrait: the face is a good part of the frame


def test_detector_rejects_negative_upsample():
    with pytest.raises(ValueError):
        FaceDetector(upsample=-1)


def test_no_face_in_non_face_photo(detector):
    work = working_image(load_gray(_need(NON_FACE)))
    assert detector(work.image) == []


def test_landmarks_and_face_inputs(angry, detector, landmark_model):
    _, work = angry
    rect = detector(work.image)[0]
    pts = landmark_model(work.image, rect)
    h, w = work.image.shape
    assert pts.shape == (68, 2) and pts.dtype == np.float64
    assert np.all(pts >= 0) and np.all(pts[:, 0] < w) and np.all(pts[:, 1] < h)
    # Landmarks sit in (a slightly grown) face box, and the face is upright.
    x1, y1, x2, y2 = geometry.grow_box(rect_to_box(rect), 0.15)
    assert np.all((pts[:, 0] >= x1) & (pts[:, 0] <= x2) & (pts[:, 1] >= y1) & (pts[:, 1] <= y2))
    right, left = eye_centres(pts)
    assert right[0] < left[0]
    assert max(right[1], left[1]) < pts[27:36, 1].mean() < pts[48:68, 1].mean() < pts[8, 1]

    fi = extract.face_inputs(work.image, pts)
    for crop in (fi.right_eye, fi.left_eye, fi.mouth):
        assert crop.shape == (96, 96) and crop.dtype == np.uint8
        assert np.ptp(crop) > 30  # real face texture, not a flat fill
    assert fi.features.shape == (13,) and fi.features.dtype == np.float32
    assert np.all(np.isfinite(fi.features))
    assert np.all(fi.features > 0) and np.all(fi.features < 3)
    np.testing.assert_array_equal(fi.landmarks, pts)

    # The seed's pixel convention is the same distances, not divided by the iod.
    px = extract.face_inputs(work.image, pts, mode="seed-pixels").features
    iod = geometry.inter_ocular(pts)
    np.testing.assert_allclose(px, fi.features * iod, rtol=1e-5)
    with pytest.raises(ValueError):
        extract.face_inputs(work.image, pts, mode="bogus")


# --- ready face crops (FER2013) ---------------------------------------------------------------

def _fer_sample(n: int = 20) -> list:
    root = _need(FER_VAL)
    files = [f for label in sorted(p for p in root.iterdir() if p.is_dir())
             for f in sorted(label.glob("*.jpg"))[:3]][:n]
    if len(files) < n:
        pytest.skip(f"shared data incomplete: fewer than {n} FER2013 validation images under {root}")
    return files


def test_ready_crop_inputs_on_fer2013(detector, landmark_model):
    inside_all = []
    for f in _fer_sample(20):
        gray = load_gray(f)
        assert gray.shape == (48, 48)
        fi, rc = extract.ready_crop_inputs(gray, detector, landmark_model)
        assert rc.image.shape == (extract.READY_SIZE, extract.READY_SIZE)
        for crop in (fi.right_eye, fi.left_eye, fi.mouth):
            assert crop.shape == (96, 96) and crop.dtype == np.uint8
            assert np.ptp(crop) > 0
        assert np.all(np.isfinite(fi.features)) and np.all(fi.features < 3)
        # FER2013 crops often cut off the jaw and brow ends (the face overflows the crop), so only the
        # inner face — nose, eyes and mouth (27-67), which the crops are cut from — must lie inside.
        orig = rc.to_original(fi.landmarks)
        inside = np.all((orig[27:] >= -6) & (orig[27:] <= 54), axis=1)
        assert inside.mean() >= 0.9, f
        inside_all.append(inside.mean())
    assert np.mean(inside_all) >= 0.97


def test_ready_crop_geometry(detector):
    # The padded 48+2*PAD crop is scaled to READY_SIZE, so the working image's corners are the
    # padded crop's corners: (-PAD, -PAD) and (48 + PAD, 48 + PAD) in original pixels.
    flat = np.full((48, 48), 128, np.uint8)  # no face: the calibrated fallback box is used
    rc = extract.ready_crop(flat, detector)
    assert not rc.detected
    s = extract.READY_SIZE / (48 + 2 * extract.READY_PAD)
    assert rc.scale == pytest.approx(s)
    # Pixel-centre convention of cv2.resize: working pixel centre -0.5 is the padded edge -PAD - 0.5.
    corners = rc.to_original(np.array([[-0.5, -0.5], [extract.READY_SIZE - 0.5, extract.READY_SIZE - 0.5]]))
    np.testing.assert_allclose(corners, [[-extract.READY_PAD - 0.5] * 2, [48 + extract.READY_PAD - 0.5] * 2], atol=1e-9)
    # The fallback rect is READY_FALLBACK of the unpadded crop (to rounding in working pixels).
    box = rc.to_original(np.array(rect_to_box(rc.rect)).reshape(2, 2)).ravel()
    np.testing.assert_allclose(box, np.array(extract.READY_FALLBACK) * 48, atol=0.5 / s + 1e-9)


def test_saved_detector_is_dlibs_own():
    """The shipped copy of dlib's frontal detector (fast to load) finds exactly what dlib's embedded one
    finds, with the same scores, on real photos at both upsampling levels."""
    import dlib

    from dfer_edge.detect import DETECTOR_FILE, load_frontal_detector

    assert DETECTOR_FILE.is_file()
    saved, embedded = load_frontal_detector(), dlib.get_frontal_face_detector()
    assert isinstance(saved, dlib.fhog_object_detector)
    photos = sorted(PHOTOS.glob("*.jp*g"))
    if not photos:
        pytest.skip(f"shared test data not available: {PHOTOS}")
    found = 0
    for p in photos:
        img = working_image(load_gray(p)).image
        for up in (0, 1):
            a, b = saved.run(img, up, -0.5), embedded.run(img, up, -0.5)
            assert [(r.left(), r.top(), r.right(), r.bottom()) for r in a[0]] == \
                   [(r.left(), r.top(), r.right(), r.bottom()) for r in b[0]], p.name
            assert a[1] == pytest.approx(b[1]) and a[2] == b[2]
            found += len(a[0])
    assert found >= 8


def test_detectors_sharing_one_dlib_detector_keep_their_own_settings(detector, angry):
    """Recognizer's photo and crop detectors share one loaded dlib detector; each call still uses its
    own settings, in either order."""
    _, work = angry
    shared = FaceDetector(1, min_score=0.0, dlib_detector=detector.dlib_detector)
    assert shared.dlib_detector is detector.dlib_detector
    boxes = lambda rects: [(r.left(), r.top(), r.right(), r.bottom()) for r in rects]  # noqa: E731
    plain, upsampled = boxes(detector(work.image)), boxes(shared(work.image))
    assert plain == boxes(FaceDetector()(work.image)) and plain
    assert upsampled == boxes(FaceDetector(1)(work.image))
    assert boxes(detector(work.image)) == plain  # unchanged by the other's call
