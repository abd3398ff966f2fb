"""dfer_edge.geometry on synthetic dlib-68 landmarks: levelling, features, crop transforms."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dfer_edge import geometry
from tests.helpers import (
    BROW_INNER_X,
    EYE_LID,
    LEFT_EYE_CENTRE,
    MOUTH_CENTRE,
    MOUTH_HALF_HEIGHT,
    MOUTH_HALF_WIDTH,
    RIGHT_EYE_CENTRE,
    eye_centres,
    synthetic_landmarks,
    template_face,
    to_image,
)

ANGLES = [-40.0, -25.0, -10.0, -3.5, 0.0, 2.0, 15.0, 30.0, 40.0]


def _features64(points: np.ndarray) -> np.ndarray:
    """normalised_features without its float32 cast, for tight invariance checks."""
    lev = geometry.level(points)
    return geometry.distances(lev.points) / lev.iod


# --- the helper itself ------------------------------------------------------------------------

def test_synthetic_landmarks_layout():
    pts = synthetic_landmarks(200.0, 150.0, 80.0, 0.0)
    assert pts.shape == (68, 2)
    right, left = eye_centres(pts)
    np.testing.assert_allclose(right, [200 - 0.35 * 80, 150], atol=1e-12)
    np.testing.assert_allclose(left, [200 + 0.35 * 80, 150], atol=1e-12)
    np.testing.assert_allclose(pts[48:68].mean(axis=0), [200, 150 + 0.86 * 80], atol=1e-12)
    assert geometry.inter_ocular(pts) == pytest.approx(80.0, rel=1e-12)
    # dlib conventions: the subject's right eye/brow/jaw start are on the image's left; chin lowest.
    assert pts[36, 0] < pts[39, 0] < pts[42, 0] < pts[45, 0]
    assert pts[0, 0] < pts[16, 0] and pts[8, 1] == pts[:, 1].max()
    assert pts[19, 1] < pts[37, 1] < pts[41, 1] < pts[30, 1] < pts[51, 1] < pts[57, 1] < pts[8, 1]


def test_synthetic_rotation_is_about_eye_midpoint():
    a = synthetic_landmarks(300.0, 200.0, 100.0, 0.0)
    b = synthetic_landmarks(300.0, 200.0, 100.0, 30.0)
    ra, la = eye_centres(a)
    rb, lb = eye_centres(b)
    np.testing.assert_allclose((rb + lb) / 2, (ra + la) / 2, atol=1e-9)
    ang = np.degrees(np.arctan2(*(lb - rb)[::-1]))
    assert ang == pytest.approx(30.0, abs=1e-9)


# --- level() ----------------------------------------------------------------------------------

@pytest.mark.parametrize("angle", ANGLES)
@pytest.mark.parametrize("jitter", [0.0, 0.02])
def test_level_makes_eye_centres_share_y(angle, jitter):
    pts = synthetic_landmarks(250.0, 220.0, 120.0, angle, jitter=jitter, seed=3)
    lev = geometry.level(pts)
    right, left = eye_centres(lev.points)
    assert abs(right[1] - left[1]) < 1e-9
    assert right[0] < left[0]  # still upright: the subject's right eye stays on the image's left
    # iod is the 36-45 distance of the input, and levelling is a rotation (the iod is unchanged).
    assert lev.iod == pytest.approx(float(np.linalg.norm(pts[45] - pts[36])), rel=1e-12)
    assert geometry.inter_ocular(lev.points) == pytest.approx(lev.iod, rel=1e-9)
    # The rotation is about the eye midpoint, which therefore stays put.
    r0, l0 = eye_centres(pts)
    np.testing.assert_allclose((right + left) / 2, (r0 + l0) / 2, atol=1e-9)
    # The returned matrix is the transform that produced the points, and it is a pure rotation.
    np.testing.assert_allclose(pts @ lev.matrix[:, :2].T + lev.matrix[:, 2], lev.points, atol=1e-9)
    np.testing.assert_allclose(lev.matrix[:, :2] @ lev.matrix[:, :2].T, np.eye(2), atol=1e-12)


@pytest.mark.parametrize("angle", ANGLES)
def test_level_undoes_the_rotation(angle):
    # Without jitter the eye centres are level in the template, so levelling a rotated face gives
    # back the unrotated face (same eye midpoint), landmark for landmark.
    rotated = synthetic_landmarks(180.0, 260.0, 90.0, angle)
    upright = synthetic_landmarks(180.0, 260.0, 90.0, 0.0)
    np.testing.assert_allclose(geometry.level(rotated).points, upright, atol=1e-9)


def test_level_accepts_integer_landmarks():
    pts = np.round(synthetic_landmarks(250.0, 220.0, 120.0, 12.0)).astype(np.int64)
    lev = geometry.level(pts)
    right, left = eye_centres(lev.points)
    assert lev.points.dtype == np.float64
    assert abs(right[1] - left[1]) < 1e-9


# --- features ---------------------------------------------------------------------------------

def test_feature_count_and_first_feature():
    pts = synthetic_landmarks(256.0, 256.0, 140.0, 17.0, jitter=0.02, seed=1)
    lev = geometry.level(pts)
    f = geometry.normalised_features(lev)
    assert f.shape == (geometry.N_FEATURES,) == (13,)
    assert f.dtype == np.float32
    iod = np.linalg.norm(pts[45] - pts[36])
    assert f[0] == pytest.approx(np.linalg.norm(pts[21] - pts[22]) / iod, rel=1e-6)
    assert len(geometry.distances(pts)) == 13


def test_features_of_template_match_its_geometry():
    # In the template, iod = 1, so the normalised features are the template's own distances.
    f = geometry.normalised_features(geometry.level(synthetic_landmarks(300.0, 200.0, 150.0, -22.0)))
    t = template_face()
    assert f[0] == pytest.approx(2 * BROW_INNER_X, rel=1e-6)  # 21-22: gap between inner brow ends
    assert f[5] == pytest.approx(2 * EYE_LID, rel=1e-6)  # 37-41: right eye opening
    assert f[6] == pytest.approx(2 * EYE_LID, rel=1e-6)  # 44-46: left eye opening
    assert f[7] == pytest.approx(2 * MOUTH_HALF_HEIGHT, rel=1e-6)  # 51-57: mouth opening
    assert f[10] == pytest.approx(2 * MOUTH_HALF_WIDTH, rel=1e-6)  # 48-54: mouth width
    assert f[11] == pytest.approx(MOUTH_HALF_HEIGHT, rel=1e-6)  # corners' midpoint to 51
    brow_mid = (t[21] + t[22]) / 2
    assert f[12] == pytest.approx(np.linalg.norm(brow_mid - t[27]), rel=1e-6)  # brows to nose top
    # Symmetric face: the two sides' pairs agree.
    assert f[1] == pytest.approx(f[2], rel=1e-6)  # 21-31 vs 22-35
    assert f[3] == pytest.approx(f[4], rel=1e-6)  # 19-41 vs 24-46
    assert f[8] == pytest.approx(f[9], rel=1e-6)  # 36-48 vs 45-54


@pytest.mark.parametrize("jitter", [0.0, 0.03])
def test_features_invariant_to_scale_rotation_translation(jitter):
    base = synthetic_landmarks(100.0, 120.0, 40.0, 0.0, jitter=jitter, seed=7)
    posed = [
        synthetic_landmarks(100.0, 120.0, 200.0, 0.0, jitter=jitter, seed=7),  # scale x5
        synthetic_landmarks(100.0, 120.0, 40.0, 25.0, jitter=jitter, seed=7),  # rotated
        synthetic_landmarks(377.5, -64.25, 40.0, 0.0, jitter=jitter, seed=7),  # shifted
        synthetic_landmarks(812.0, 333.0, 200.0, -25.0, jitter=jitter, seed=7),  # all three
    ]
    f0 = _features64(base)
    for pts in posed:
        np.testing.assert_allclose(_features64(pts), f0, rtol=1e-9)
        # The public float32 features agree to float32 precision.
        np.testing.assert_allclose(geometry.normalised_features(geometry.level(pts)),
                                   f0.astype(np.float32), rtol=1e-6)


def test_distances_scale_linearly():
    small = synthetic_landmarks(50.0, 60.0, 40.0, 10.0, jitter=0.02, seed=5)
    large = synthetic_landmarks(50.0, 60.0, 200.0, 10.0, jitter=0.02, seed=5)
    d_small, d_large = geometry.distances(small), geometry.distances(large)
    assert np.all(d_small > 0)
    np.testing.assert_allclose(d_large, 5.0 * d_small, rtol=1e-9)
    # Distances don't care about rotation and translation either.
    moved = synthetic_landmarks(400.0, 10.0, 40.0, -33.0, jitter=0.02, seed=5)
    np.testing.assert_allclose(geometry.distances(moved), d_small, rtol=1e-9)


# --- crop transforms --------------------------------------------------------------------------

SIZE = 96
# Where the eye centre lands in an eye crop: the crop is centred EYE_RAISE*iod above the eye, and
# the crop side is EYE_SIDE*iod, so the eye sits EYE_RAISE/EYE_SIDE of the crop below its centre.
EYE_IN_CROP = (SIZE / 2, SIZE / 2 + geometry.EYE_RAISE / geometry.EYE_SIDE * SIZE)


@pytest.mark.parametrize("angle", [-30.0, 0.0, 20.0])
def test_crop_matrix_maps_region_centres(angle):
    pts = synthetic_landmarks(256.0, 200.0, 150.0, angle)
    lev = geometry.level(pts)
    boxes = geometry.crop_boxes(lev)
    right, left = eye_centres(pts)
    mouth = pts[48:68].mean(axis=0)
    for name, src, dst in [("right_eye", right, EYE_IN_CROP), ("left_eye", left, EYE_IN_CROP),
                           ("mouth", mouth, (SIZE / 2, SIZE / 2))]:
        cx, cy, side = boxes[name]
        m = geometry.crop_matrix(lev.matrix, cx, cy, side, SIZE)
        np.testing.assert_allclose(m[:, :2] @ src + m[:, 2], dst, atol=1e-9)
        # The crop is the region's square scaled to SIZE: the iod spans SIZE/side_in_iod pixels.
        side_iod = geometry.MOUTH_SIDE if name == "mouth" else geometry.EYE_SIDE
        assert side == pytest.approx(side_iod * lev.iod, rel=1e-12)
        a, b = m[:, :2] @ pts[36] + m[:, 2], m[:, :2] @ pts[45] + m[:, 2]
        assert np.linalg.norm(b - a) == pytest.approx(SIZE / side_iod, rel=1e-9)
        assert abs(a[1] - b[1]) < 1e-9  # the crop is levelled


def _disc(img: np.ndarray, centre, radius: float, value: int) -> None:
    yy, xx = np.mgrid[0:img.shape[0], 0:img.shape[1]]
    img[(xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= radius ** 2] = value


MARKS = {"right_eye": 200, "left_eye": 120, "mouth": 250}
BACKGROUND = 40


@pytest.mark.parametrize("angle", [-35.0, -12.0, 0.0, 20.0, 38.0])
def test_crops_show_the_right_regions(angle):
    cx, cy, iod = 256.0, 190.0, 150.0
    pts = synthetic_landmarks(cx, cy, iod, angle)
    img = np.full((512, 512), BACKGROUND, np.uint8)
    where = {
        "right_eye": to_image(RIGHT_EYE_CENTRE, cx, cy, iod, angle),
        "left_eye": to_image(LEFT_EYE_CENTRE, cx, cy, iod, angle),
        "mouth": to_image(MOUTH_CENTRE, cx, cy, iod, angle),
    }
    right, left = eye_centres(pts)
    np.testing.assert_allclose(where["right_eye"], right, atol=1e-9)
    np.testing.assert_allclose(where["left_eye"], left, atol=1e-9)
    for name, centre in where.items():
        _disc(img, centre, 0.07 * iod, MARKS[name])

    crops = geometry.crops(img, geometry.level(pts), SIZE)
    assert set(crops) == set(MARKS)
    for name, crop in crops.items():
        assert crop.shape == (SIZE, SIZE) and crop.dtype == np.uint8
        x, y = EYE_IN_CROP if name != "mouth" else (SIZE / 2, SIZE / 2)
        x, y = int(round(x)), int(round(y))
        patch = crop[y - 2:y + 3, x - 2:x + 3]
        assert np.all(patch == MARKS[name]), (name, patch)
        # Nothing but this region's own mark shows: every non-background pixel lies within the
        # mark's radius (scaled into the crop) of where the mark lands. The other two marks fall
        # outside the crop (eyes are 0.7 iod apart, the mouth 0.86 iod below them; crop
        # half-sides are 0.31 and 0.425 iod).
        side = geometry.MOUTH_SIDE if name == "mouth" else geometry.EYE_SIDE
        radius_in_crop = 0.07 * SIZE / side
        ys, xs = np.nonzero(crop != BACKGROUND)
        assert len(xs) > 0.9 * np.pi * radius_in_crop ** 2
        dist = np.hypot(xs - (EYE_IN_CROP[0] if name != "mouth" else SIZE / 2),
                        ys - (EYE_IN_CROP[1] if name != "mouth" else SIZE / 2))
        assert dist.max() <= radius_in_crop + 1.5, name
    # Eye crops: the eye mark is in the lower part, the brow area above it is background.
    for name in ("right_eye", "left_eye"):
        assert np.all(crops[name][:10, 40:57] == BACKGROUND)


def _gradient_image() -> np.ndarray:
    yy, xx = np.mgrid[0:512, 0:512]
    return (0.4 * yy + 0.1 * xx).astype(np.uint8)


@pytest.mark.parametrize("cx, cy, angle", [
    (0.0, 0.0, 10.0),  # face centred on the top-left corner
    (511.0, 511.0, -25.0),  # ... and on the bottom-right corner
    (30.0, 256.0, 0.0),  # right eye hanging off the left edge
    (256.0, 500.0, 5.0),  # mouth and chin below the bottom edge
])
def test_crops_of_border_faces(cx, cy, angle):
    yy, xx = np.mgrid[0:512, 0:512]
    img = (128 + 100 * np.sin(xx / 9.0) * np.cos(yy / 13.0)).astype(np.uint8)  # texture everywhere
    lev = geometry.level(synthetic_landmarks(cx, cy, 150.0, angle))
    crops = geometry.crops(img, lev, SIZE)
    assert set(crops) == {"right_eye", "left_eye", "mouth"}
    # Reference: the same warp on an image explicitly edge-padded far beyond every crop, so no
    # sample falls outside it. Edge replication must give the same pixels.
    pad = 600
    padded = np.pad(img, pad, mode="edge")
    for name, crop in crops.items():
        assert crop.shape == (SIZE, SIZE) and crop.dtype == np.uint8
        assert img.min() <= crop.min() and crop.max() <= img.max()
        m = geometry.crop_matrix(lev.matrix, *geometry.crop_boxes(lev)[name], SIZE)
        m_pad = m.copy()
        m_pad[:, 2] -= m[:, :2] @ np.array([pad, pad], dtype=np.float64)
        ref = cv2.warpAffine(padded, m_pad, (SIZE, SIZE), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        assert np.abs(crop.astype(int) - ref.astype(int)).max() <= 1, name
    # At least one crop per face overlaps the image and has real texture in it.
    assert max(np.ptp(c) for c in crops.values()) > 50


def test_crops_of_face_entirely_off_the_left_edge():
    # Eye midpoint 200 px left of the image: every crop samples x < 0 only, so replication of
    # column 0 makes each crop row (a fixed source y at angle 0) constant while columns follow the
    # vertical gradient of column 0.
    img = _gradient_image()
    crops = geometry.crops(img, geometry.level(synthetic_landmarks(-200.0, 256.0, 150.0, 0.0)), SIZE)
    for name, crop in crops.items():
        assert crop.shape == (SIZE, SIZE) and crop.dtype == np.uint8
        assert np.ptp(crop.astype(int), axis=1).max() <= 1, name  # rows constant (+-1 rounding)
        assert np.ptp(crop[:, 0]) > 10, name
        assert np.all(np.diff(crop[:, 0].astype(int)) >= 0), name  # brighter downwards, like column 0


def test_crops_on_a_color_image_keep_channels():
    img = np.dstack([_gradient_image()] * 3)
    crops = geometry.crops(img, geometry.level(synthetic_landmarks(256.0, 200.0, 150.0, 8.0)), 64)
    for crop in crops.values():
        assert crop.shape == (64, 64, 3)


# --- grow_box ---------------------------------------------------------------------------------

def test_grow_box():
    assert geometry.grow_box((10.0, 20.0, 110.0, 70.0), 0.1) == pytest.approx((0.0, 15.0, 120.0, 75.0))
    assert geometry.grow_box((10.0, 20.0, 110.0, 70.0), 0.0) == pytest.approx((10.0, 20.0, 110.0, 70.0))
    x1, y1, x2, y2 = geometry.grow_box((-5.0, 3.0, 45.0, 203.0), 0.25)
    # Each side grows by margin * size, so the box grows by (1 + 2 * margin) about the same centre.
    assert (x2 - x1, y2 - y1) == pytest.approx((50.0 * 1.5, 200.0 * 1.5))
    assert ((x1 + x2) / 2, (y1 + y2) / 2) == pytest.approx((20.0, 103.0))
    # A negative margin shrinks.
    assert geometry.grow_box((0.0, 0.0, 100.0, 100.0), -0.1) == pytest.approx((10.0, 10.0, 90.0, 90.0))


# --- warp: OpenCV's bilinear warp, the same on every CPU ------------------------------------------

@pytest.mark.parametrize("seed", range(6))
def test_warp_matches_opencv_within_one_grey_level(seed):
    # Real photo, random rotations, scales and shifts (some reaching past the border).
    img = cv2.imread(str(Path(__file__).resolve().parents[1] / "samples" / "astronaut.jpg"), cv2.IMREAD_GRAYSCALE)
    rng = np.random.default_rng(seed)
    for _ in range(10):
        m = cv2.getRotationMatrix2D((rng.uniform(0, 512), rng.uniform(0, 512)), rng.uniform(-40, 40),
                                    rng.uniform(0.3, 3.0))
        m[:, 2] += rng.uniform(-150, 150, 2)
        ref = cv2.warpAffine(img, m, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out = geometry.warp(img, m, SIZE)
        assert out.shape == ref.shape and out.dtype == np.uint8
        # OpenCV rounds source positions to 1/32 px; the float warp does not.
        assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1
        assert np.mean(out == ref) > 0.9


def test_warp_identity_and_half_pixel_shift_are_exact():
    img = _gradient_image()
    m = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert np.array_equal(geometry.warp(img, m, 64), img[:64, :64])
    m[0, 2] = -0.5  # each output pixel is the mean of two neighbours, rounded half up
    want = np.floor((img[:64, :64].astype(float) + img[:64, 1:65]) / 2 + 0.5).astype(np.uint8)
    assert np.array_equal(geometry.warp(img, m, 64), want)
