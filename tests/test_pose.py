"""Head pose and `looking`: pure geometry on a projected head, then real KDEF photos through the pipeline."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from dfer_edge import Recognizer
from dfer_edge.pose import _LANDMARKS, _MODEL_POINTS, PITCH_OFFSET, YAW_GAIN, HeadPose, head_pose
from tests.helpers import KDEF, REPO, run_cli


def projected(yaw: float, pitch: float, roll: float, size=(640, 480), distance: float = 4000.0) -> np.ndarray:
    """68 points whose six pose points are the generic head turned by (yaw, pitch, roll) as pose.py reports
    them, seen by pose.py's camera; the other points are unused by the pose and left at the centre."""
    w, h = size
    camera = np.array([[w, 0.0, w / 2], [0.0, w, h / 2], [0.0, 0.0, 1.0]])
    # Undo the reported conventions: yaw is scaled and sign-flipped, pitch flipped and offset.
    raw_y = -yaw / YAW_GAIN
    raw_x = -(pitch + PITCH_OFFSET)
    rx, ry, rz = (np.radians(v) for v in (raw_x, raw_y, roll))
    rot_x = np.array([[1, 0, 0], [0, np.cos(rx), -np.sin(rx)], [0, np.sin(rx), np.cos(rx)]])
    rot_y = np.array([[np.cos(ry), 0, np.sin(ry)], [0, 1, 0], [-np.sin(ry), 0, np.cos(ry)]])
    rot_z = np.array([[np.cos(rz), -np.sin(rz), 0], [np.sin(rz), np.cos(rz), 0], [0, 0, 1]])
    rotation = rot_z @ rot_y @ rot_x  # RQDecomp3x3's order
    img, _ = cv2.projectPoints(_MODEL_POINTS, cv2.Rodrigues(rotation)[0], np.array([0.0, 0.0, distance]), camera, None)
    points = np.tile([w / 2, h / 2], (68, 1)).astype(np.float64)
    points[_LANDMARKS] = img.reshape(-1, 2)
    return points


@pytest.mark.parametrize("yaw, pitch, roll", [(0, 0, 0), (30, 0, 0), (-40, 0, 0), (0, 15, 0), (0, -20, 0),
                                              (0, 0, 10), (20, -10, -5)])
def test_a_projected_head_gives_its_pose_back(yaw, pitch, roll):
    got = head_pose(projected(yaw, pitch, roll), (640, 480))
    assert got.yaw == pytest.approx(yaw, abs=0.5) and got.pitch == pytest.approx(pitch, abs=0.5)
    assert got.roll == pytest.approx(roll, abs=0.5)


def test_the_signs_follow_the_image():
    """yaw > 0: the nose moved towards the image's right; pitch > 0: it moved up."""
    straight = projected(0, 0, 0)
    right, up = projected(25, 0, 0), projected(0, 15, 0)
    assert right[30, 0] - right[[36, 45], 0].mean() > straight[30, 0] - straight[[36, 45], 0].mean() + 5
    assert up[30, 1] - up[[36, 45], 1].mean() < straight[30, 1] - straight[[36, 45], 1].mean() - 5


def test_looking_is_within_both_limits():
    assert HeadPose(10, -10, 0).looking(25, 30) and not HeadPose(26, 0, 0).looking(25, 30)
    assert not HeadPose(0, -31, 0).looking(25, 30) and HeadPose(-25, 30, 0).looking(25, 30)
    assert HeadPose(5, 0, 0).to_dict() == {"yaw": 5.0, "pitch": 0.0, "roll": 0.0}


def kdef_views(subjects: list[str]) -> list[tuple[str, str]]:
    out = []
    for s in subjects:
        for view in ("S", "HL", "HR"):
            for code in ("NE", "HA", "AN"):
                hits = sorted(KDEF.glob(f"*/A{s}{code}{view}.jpg"))  # session A
                if hits:
                    out.append((str(hits[0]), view))
    return out


def test_kdef_half_profiles_turn_and_do_not_look():
    """Held-out subjects (never used for the two corrections), three expressions, three views each. On all
    168 held-out subjects' photos per view `benchmarks/HEAD_POSE.md` finds `looking` right on ~99%; here 90%
    of 36 photos must be (a margin of several photos for a retrained landmark set), and the median yaw of each
    half profile must be within 12 degrees of 45 (the benchmark's medians are within 2)."""
    split = json.loads((REPO / "convert" / "kdef_split.json").read_text())
    views = kdef_views(split["heldout"][:4])
    assert len(views) == 36, "expected 4 subjects x 3 views x 3 expressions in ../shared/data/kdef"
    rec = Recognizer()
    yaws: dict[str, list[float]] = {"S": [], "HL": [], "HR": []}
    right = 0
    for path, view in views:
        face = rec.predict_largest(path)
        assert face is not None and face.pose is not None, path
        yaws[view].append(face.pose.yaw)
        right += face.looking == (view == "S")
    assert right >= 0.9 * len(views), f"looking right on {right} of {len(views)}"
    assert abs(np.median(yaws["S"])) < 8
    assert np.median(yaws["HL"]) == pytest.approx(-45, abs=12) and np.median(yaws["HR"]) == pytest.approx(45, abs=12)


def test_the_limits_are_options(tmp_path):
    """A half profile looks when the yaw limit is wide enough; the JSON carries the pose and the flag."""
    split = json.loads((REPO / "convert" / "kdef_split.json").read_text())
    path = next(p for p, v in kdef_views(split["heldout"][:1]) if v == "HL")
    default = json.loads(run_cli("predict", path, "--json").stdout)[0]["faces"][0]
    wide = json.loads(run_cli("predict", path, "--json", "--looking-yaw", "80").stdout)[0]["faces"][0]
    assert set(default["pose"]) == {"yaw", "pitch", "roll"} and default["pose"]["yaw"] < -25
    assert default["looking"] is False and wide["looking"] is True
    assert wide["pose"] == default["pose"]
    bad = run_cli("predict", path, "--looking-yaw", "120")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
