"""Faces across video frames: detect every N frames, follow faces by their landmarks in between.

HOG detection is most of a frame's cost (~27 ms at 512 px here, 100-200 ms on a Pi); the landmark
model refitted in a box placed from the previous frame's landmarks costs ~1 ms. A face keeps its id
while it is followed or matched to a new detection. A track whose refitted landmarks jump or change
scale too much (the face moved fast or left) triggers a detection on the same frame. Probabilities
can be smoothed per face with an exponential moving average over time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import dlib
import numpy as np

from .detect import WorkingImage, rect_to_box
from .pipeline import StageTimes
from .pose import head_pose
from .recognizer import Recognizer, as_dict
from .results import TrackedFace

MATCH_IOU = 0.3  # a detection continues a track when their boxes overlap at least this much
MAX_SCALE_CHANGE = 0.25  # refitted landmarks this much larger/smaller than the box they came from: drift
MAX_SHIFT = 0.35  # ...or their centre this far (in face sizes) from the box centre: drift


# --- Pure geometry ----------------------------------------------------------------------------

def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def anchor(points: np.ndarray) -> tuple[float, float, float]:
    """Centre and size of a landmark set: the mean point and the RMS distance from it. Stable
    under expression changes, unlike the bounding box of the points (an open mouth moves the chin)."""
    c = points.mean(axis=0)
    s = float(np.sqrt(((points - c) ** 2).sum(axis=1).mean()))
    return float(c[0]), float(c[1]), max(s, 1e-6)


@dataclass(frozen=True)
class BoxModel:
    """Where the detector's box sits relative to the landmark anchor, in anchor sizes. Recorded when a
    face is detected, so that boxes placed from landmarks later look like the detector's own."""

    dx: float
    dy: float
    half_w: float
    half_h: float

    @classmethod
    def from_detection(cls, box: tuple[float, float, float, float], points: np.ndarray) -> BoxModel:
        cx, cy, s = anchor(points)
        return cls(((box[0] + box[2]) / 2 - cx) / s, ((box[1] + box[3]) / 2 - cy) / s,
                   (box[2] - box[0]) / 2 / s, (box[3] - box[1]) / 2 / s)

    def place(self, points: np.ndarray) -> tuple[float, float, float, float]:
        cx, cy, s = anchor(points)
        x, y = cx + self.dx * s, cy + self.dy * s
        return (x - self.half_w * s, y - self.half_h * s, x + self.half_w * s, y + self.half_h * s)


def drifted(box: tuple[float, float, float, float], model: BoxModel, points: np.ndarray) -> bool:
    """Landmarks refitted in `box` that no longer describe a face of that box: the face moved too far
    or too fast for the landmark model to follow, or it is gone."""
    placed = model.place(points)
    w0, w1 = box[2] - box[0], placed[2] - placed[0]
    if w0 <= 0 or abs(w1 / w0 - 1) > MAX_SCALE_CHANGE:
        return True
    shift = math.hypot((placed[0] + placed[2] - box[0] - box[2]) / 2, (placed[1] + placed[3] - box[1] - box[3]) / 2)
    return shift > MAX_SHIFT * w0


def ema(previous: np.ndarray | None, current: np.ndarray, dt: float, tau: float) -> np.ndarray:
    """Exponential moving average with time constant `tau` seconds; tau 0 returns `current` (raw)."""
    if previous is None or tau <= 0:
        return current
    a = 1.0 - math.exp(-max(dt, 0.0) / tau)
    return a * current + (1.0 - a) * previous


# --- The tracker ------------------------------------------------------------------------------

@dataclass
class Track:
    id: int
    box: tuple[float, float, float, float]  # working-image pixels, detector convention
    model: BoxModel
    points: np.ndarray  # (68, 2) working-image pixels
    probs: np.ndarray | None = None  # smoothed, LABELS order
    t: float = 0.0
    cut_points: np.ndarray | None = None  # the landmarks the crops are cut from (smoothed over time, or raw)


class FaceTracker:
    """Per-frame results with stable face ids. `detect_every=1` detects on every frame (no tracking).

    >>> tracker = FaceTracker(recognizer, detect_every=10, smooth=0.3)
    >>> faces = tracker.process(frame_bgr, t=0.033)
    """

    def __init__(self, recognizer: Recognizer, detect_every: int = 10, smooth: float = 0.0,
                 max_faces: int | None = None, smooth_landmarks: float = 0.0) -> None:
        if detect_every < 1:
            raise ValueError("detect_every must be >= 1")
        self.rec = recognizer
        self.times = StageTimes()
        self.pipeline = recognizer.pipeline.timed(self.times)  # the recognizer's models, timed per stage
        self.detect_every = detect_every
        self.smooth = smooth
        # Time constant (s) of a moving average of each face's 68 points before its crops are cut: noise
        # in a dim frame makes them jitter from frame to frame. Tracking and drift checks use the raw fit.
        self.smooth_landmarks = smooth_landmarks
        self.max_faces = max_faces
        self.tracks: list[Track] = []
        self.next_id = 0
        self.frames = 0
        self.detections = 0
        self.since_detect = 0

    def process(self, frame: np.ndarray, t: float) -> tuple[list[TrackedFace], bool]:
        """Faces in one frame (an image array, BGR or gray) at time `t` seconds, largest first, and
        whether the detector ran on it."""
        pipe = self.pipeline
        work = pipe.prepare(pipe.load(frame)[0])
        self.frames += 1

        detect = not self.tracks or self.since_detect + 1 >= self.detect_every
        found: list[tuple[Track, np.ndarray]] | None = None
        if not detect:
            found = self._follow(work)
            detect = found is None
        if detect:
            found = self._detect(work)
            self.since_detect = 0
            self.detections += 1
        else:
            self.since_detect += 1

        faces = []
        for track, pts in found:
            track.cut_points = ema(track.cut_points, pts, t - track.t, self.smooth_landmarks)
            p = pipe.score(pipe.cut(work.image, track.cut_points))
            track.probs = ema(track.probs, p, t - track.t, self.smooth)
            track.t = t
            points = work.points_to_original(pts)
            pose = head_pose(points, work.original_size)
            faces.append(TrackedFace(track.id, work.box_to_original(track.box), points, as_dict(track.probs), detect,
                                     pose, self.rec.looks(pose)))
        return faces, detect

    def _follow(self, work: WorkingImage) -> list[tuple[Track, np.ndarray]] | None:
        """Refit every track's landmarks in a box placed from its last landmarks. None when any track
        drifted or left the frame: the caller then detects on this frame."""
        h, w = work.image.shape[:2]
        found = []
        for tr in self.tracks:
            box = tr.model.place(tr.points)
            if box[0] < -0.25 * (box[2] - box[0]) or box[2] > w + 0.25 * (box[2] - box[0]) \
                    or box[1] < -0.25 * (box[3] - box[1]) or box[3] > h + 0.25 * (box[3] - box[1]):
                return None
            rect = dlib.rectangle(round(box[0]), round(box[1]), round(box[2]), round(box[3]))
            pts = self.pipeline.fit(work.image, rect)
            if drifted(box, tr.model, pts):
                return None
            # The reported box is placed from this frame's fit; `box` (from the last frame's) was only where
            # to look, and lagged a moving face by a frame.
            tr.box, tr.points = tr.model.place(pts), pts
            found.append((tr, pts))
        return found

    def _detect(self, work: WorkingImage) -> list[tuple[Track, np.ndarray]]:
        """Detect, fit landmarks, and give each face the id of the track its box overlaps most.
        Tracks without a detection end here."""
        rects = self.pipeline.detect(work)
        if self.max_faces:
            rects = rects[: self.max_faces]
        old = {tr.id: tr for tr in self.tracks}
        predicted = {tr.id: tr.model.place(tr.points) for tr in self.tracks}
        tracks, found = [], []
        for rect in rects:
            pts = self.pipeline.fit(work.image, rect)
            box = rect_to_box(rect)
            model = BoxModel.from_detection(box, pts)
            best = max(predicted, key=lambda i: iou(box, predicted[i]), default=None)
            if best is not None and iou(box, predicted[best]) >= MATCH_IOU:
                tr = old[best]
                del predicted[best]
                tr.box, tr.points, tr.model = box, pts, model
            else:
                tr = Track(self.next_id, box, model, pts)
                self.next_id += 1
            tracks.append(tr)
            found.append((tr, pts))
        self.tracks = tracks
        return found

    def reset(self) -> None:
        """Forget every face (e.g. after a camera reconnect: the scene may have changed)."""
        self.tracks = []
        self.since_detect = 0

