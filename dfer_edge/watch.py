"""`dfer-edge watch`: run the tracker over a video source, emit per-frame results, save a video.

The loop is the only place that joins a source, the tracker and the outputs; each of those can be
used alone from Python.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from .annotate import draw
from .errors import DferError
from .sources import LiveSource, SourceError, VideoFile
from .results import TrackedFace, frame_record
from .tracking import FaceTracker

LIVE_SAVE_FPS = 15.0  # a camera's nominal rate says little about how many frames we process


@dataclass
class WatchOptions:
    """When to stop and what to write; how faces are found and smoothed is the FaceTracker's business."""

    max_frames: int | None = None
    duration: float | None = None  # seconds of source time (a file's timestamps, or wall time live)
    save: Path | None = None  # annotated video


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

    def __init__(self, path: Path, fps: float) -> None:
        self.path = path
        self.fps = fps if fps > 0 else LIVE_SAVE_FPS
        self._writer: cv2.VideoWriter | None = None
        if not path.parent.is_dir():
            raise DferError(f"cannot write {path}: folder {path.parent} does not exist")

    def write(self, frame: np.ndarray, faces: list[TrackedFace]) -> None:
        img = draw(frame, faces, bars=True)  # BGR whatever the frame was
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
    saver = VideoSaver(options.save, source.fps) if options.save else None
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


