"""Head pose from the 68 landmarks: which way a face is turned, and whether it is turned to the camera.

A kiosk wants to know whether someone looked at the screen, not only what their face showed. The 68 points
are already fitted for every face, so the pose costs one small `cv2.solvePnP` (~0.05 ms): six of the points
(nose tip, chin, outer eye corners, mouth corners) against the same points of a generic 3D head, seen by a
camera whose focal length is the image width (a normal lens; the answer barely depends on it).

Angles are in degrees, for the person as seen in the image: yaw > 0 when the face turns towards the
image's right (the person's left), pitch > 0 when it tilts up, roll > 0 when it leans clockwise in the
image. Two corrections were fitted on KDEF's training subjects (never on the held-out ones): dlib's points
on a half-profile face make the generic head read ~38 deg for KDEF's 45-deg views, so yaw is scaled by
YAW_GAIN; and its straight views read ~5.9 deg of upward pitch, removed by PITCH_OFFSET. The error on the
held-out subjects is in benchmarks/HEAD_POSE.md (`python benchmarks/head_pose.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# The generic head, in arbitrary units (about 0.1 mm), in the camera's axes for a face looking at it:
# x to the image's right, y down, z away from the camera (the nose tip is nearest).
_MODEL_POINTS = np.array([
    (0.0, 0.0, 0.0),  # 30 nose tip
    (0.0, 330.0, 65.0),  # 8 chin
    (-225.0, -170.0, 135.0),  # 36 outer corner of the eye on the image's left
    (225.0, -170.0, 135.0),  # 45 outer corner of the eye on the image's right
    (-150.0, 150.0, 125.0),  # 48 mouth corner on the image's left
    (150.0, 150.0, 125.0),  # 54 mouth corner on the image's right
])
_LANDMARKS = [30, 8, 36, 45, 48, 54]
YAW_GAIN = 1.18  # 45 / the median |yaw| of KDEF's half-profile views (training subjects: 38.1)
PITCH_OFFSET = 5.9  # deg: the median pitch of KDEF's straight views (training subjects, read as predict reads them) is 5.9 up

@dataclass(frozen=True)
class HeadPose:
    """Yaw, pitch and roll in degrees (module docstring for the signs)."""

    yaw: float
    pitch: float
    roll: float

    def looking(self, max_yaw: float, max_pitch: float) -> bool:
        """Turned towards the camera: |yaw| and |pitch| within the limits (RecognizerOptions.looking_yaw and
        looking_pitch; pitch gets the wider one: it is the rougher reading, a smile alone moves it ~5 deg)."""
        return abs(self.yaw) <= max_yaw and abs(self.pitch) <= max_pitch

    def to_dict(self) -> dict[str, float]:
        return {"yaw": round(self.yaw, 1), "pitch": round(self.pitch, 1), "roll": round(self.roll, 1)}


def head_pose(points: np.ndarray, image_size: tuple[int, int]) -> HeadPose:
    """The pose of a face from its 68 landmarks, in the pixels of an image `image_size` = (width, height)."""
    w, h = (max(1, int(v)) for v in image_size)
    camera = np.array([[w, 0.0, w / 2.0], [0.0, w, h / 2.0], [0.0, 0.0, 1.0]])
    image_points = np.ascontiguousarray(np.asarray(points, dtype=np.float64)[_LANDMARKS])
    ok, rvec, _ = cv2.solvePnP(_MODEL_POINTS, image_points, camera, None, flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return HeadPose(float("nan"), float("nan"), float("nan"))
    rotation, _ = cv2.Rodrigues(rvec)
    down, to_image_left, clockwise = cv2.RQDecomp3x3(rotation)[0]
    # In these axes (y down, z away) RQDecomp3x3's x angle is positive when the face tilts down and its y
    # angle when the nose turns towards the image's left; both are flipped to the signs above.
    return HeadPose(-float(to_image_left) * YAW_GAIN, -float(down) - PITCH_OFFSET, float(clockwise))
