"""`dfer-edge watch`: run the tracker over a video source, emit per-frame results, save a video.

The loop is the only place that joins a source, the tracker and the outputs; each of those can be
used alone from Python.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

import cv2
import numpy as np

from .annotate import draw
from .errors import DferError
from .sources import LiveSource, SourceError, VideoFile
from .results import TrackedFace, frame_record
from .tracking import FaceTracker
from .visits import Visits, dominant_expression

LIVE_SAVE_FPS = 15.0  # a camera's nominal rate says little about how many frames we process


@dataclass
class WatchOptions:
    """When to stop and what to write; how faces are found and smoothed is the FaceTracker's business."""

    max_frames: int | None = None
    duration: float | None = None  # seconds of source time (a file's timestamps, or wall time live)
    save: Path | None = None  # annotated video
    blur_faces: bool = False  # faces in the saved video made unrecognisable


@dataclass
class WatchSummary:
    frames: int = 0
    detections: int = 0  # frames the detector ran on
    faces: int = 0  # face results over all frames
    seconds: float = 0.0  # wall time of processing, from the first frame to the last
    reconnects: int = 0
    ended: str = "end"  # end | max-frames | duration | interrupted | source-lost
    error: str | None = None  # why a live source was given up
    stages_ms: dict[str, float] = field(default_factory=dict)  # mean per processed frame
    read_ms: float = 0.0  # mean wait for a frame (decode for files)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "detections": self.detections, "faces": self.faces,
                "seconds": round(self.seconds, 3), "fps": round(self.fps, 2), "reconnects": self.reconnects,
                "ended": self.ended, "error": self.error, "read_ms": round(self.read_ms, 3), "stages_ms": self.stages_ms}

    def line(self) -> str:
        stages = ", ".join(f"{k} {v:.2f}" for k, v in self.stages_ms.items())
        return (f"{self.frames} frames ({self.detections} with detection), {self.faces} faces, "
                f"{self.seconds:.1f} s, {self.fps:.1f} frames/s ({self.ended}); ms per frame: read {self.read_ms:.2f}, "
                f"{stages}" + (f"; {self.reconnects} reconnects" if self.reconnects else ""))


class VideoSaver:
    """Writes annotated frames to an .mp4 (mp4v), opened on the first frame to learn its size."""

    def __init__(self, path: Path, fps: float, blur: bool = False) -> None:
        self.path = path
        self.blur = blur
        self.fps = fps if fps > 0 else LIVE_SAVE_FPS
        self._writer: cv2.VideoWriter | None = None
        if not path.parent.is_dir():
            raise DferError(f"cannot write {path}: folder {path.parent} does not exist")

    def write(self, frame: np.ndarray, faces: list[TrackedFace]) -> None:
        img = draw(frame, faces, bars=True, blur=self.blur)  # BGR whatever the frame was
        if self._writer is None:
            h, w = img.shape[:2]
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self._writer.isOpened():
                self._writer = None
                raise DferError(f"cannot write {self.path}: OpenCV could not open an mp4v video writer there")
        self._writer.write(img)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


def run(tracker: FaceTracker, source: VideoFile | LiveSource, options: WatchOptions,
        emit: Callable[[dict[str, Any]], None] | None = None, stop: threading.Event | None = None) -> WatchSummary:
    """Process frames until the source ends, a limit is reached or `stop` is set (the CLI sets it on
    SIGINT/SIGTERM: a flag read between frames, so a signal never lands half-way through closing the video).
    A KeyboardInterrupt still ends the run normally, and a live source that does not come back ends it with
    `error` set: every way, the summary covers the frames processed so far and a saved video is closed."""
    summary = WatchSummary()
    saver = VideoSaver(options.save, source.fps, options.blur_faces) if options.save else None
    reconnects = 0
    start = None
    read_s = 0.0
    frames = iter(source)
    try:
        while True:
            if stop is not None and stop.is_set():
                summary.ended = "interrupted"
                break
            if options.max_frames is not None and summary.frames >= options.max_frames:
                summary.ended = "max-frames"
                break
            t_read = time.perf_counter()
            frame = next(frames, None)
            if frame is None:
                if stop is not None and stop.is_set():  # a live source asked to stop ends its frames
                    summary.ended = "interrupted"
                break
            if start is None:
                start = time.perf_counter()  # the first frame's wait (camera start) is not processing
            else:
                read_s += time.perf_counter() - t_read
            if options.duration is not None and frame.t > options.duration:
                summary.ended = "duration"
                break
            if getattr(source, "reconnects", 0) != reconnects:  # a new camera session: old faces are stale
                reconnects = source.reconnects
                tracker.reset()
            faces, detected = tracker.process(frame.image, frame.t)
            summary.frames += 1
            summary.faces += len(faces)
            if emit:
                emit(frame_record(frame.index, frame.t, faces, detected))
            if saver:
                saver.write(frame.image, faces)
    except KeyboardInterrupt:
        summary.ended = "interrupted"
    except SourceError as e:  # a live source gone for good: keep what was processed
        summary.ended = "source-lost"
        summary.error = str(e)
    finally:
        if saver:
            saver.close()
        summary.seconds = time.perf_counter() - start if start is not None else 0.0
        summary.detections = tracker.detections
        summary.reconnects = getattr(source, "reconnects", 0)
        summary.stages_ms = tracker.times.means_ms(summary.frames)
        summary.read_ms = 1000 * read_s / max(1, summary.frames - 1)
    return summary




class VisitReporter:
    """Where visits go: each frame record in, events out to a JSON-lines stream and/or an MQTT publisher
    (mqtt.MqttPublisher: events, the number of faces now, the dominant expression of the people present,
    and run statistics). Only numbers leave: events carry no image, crop or landmark.

    A publisher never blocks (it queues while its broker is away), and a failing events stream is one
    error at the end, not a stopped camera loop."""

    STATS_EVERY_S = 30.0  # source seconds between statistics messages

    def __init__(self, visits: Visits, events: TextIO | None = None, publisher: Any = None) -> None:
        self.visits = visits
        self.events = events
        self.publisher = publisher
        self.count = 0  # events written
        self.error: str | None = None
        self._stats_t = -self.STATS_EVERY_S
        self._frames = 0

    def __call__(self, record: dict[str, Any]) -> None:
        self._frames += 1
        for event in self.visits.frame(record):
            self._send(event)
        faces = record["faces"]
        if self.publisher is not None:  # it sends only what changed, so every frame may call it
            self.publisher.publish_faces(len(faces))
            self.publisher.publish_expression(dominant_expression(faces))
            if record["t"] - self._stats_t >= self.STATS_EVERY_S:
                self._stats_t = record["t"]
                self.publisher.publish_stats(self.stats())

    def stats(self) -> dict[str, Any]:
        return {"frames": self._frames, "visits": self.visits.finished, "present": len(self.visits.present()),
                "events": self.count}

    def close(self, summary: dict[str, Any] | None = None) -> None:
        """End every open visit, send the last statistics (with the run's summary) and the empty scene."""
        for event in self.visits.close():
            self._send(event)
        if self.publisher is not None:
            self.publisher.publish_faces(0)
            self.publisher.publish_expression(None)
            self.publisher.publish_stats({**self.stats(), **({"run": summary} if summary else {})})

    def _send(self, event: dict[str, Any]) -> None:
        self.count += 1
        if self.events is not None and self.error is None:
            try:
                self.events.write(json.dumps(event) + "\n")
                self.events.flush()
            except OSError as e:
                self.error = f"cannot write events: {e.strerror or e}"
        if self.publisher is not None:
            self.publisher.publish_event(event)
