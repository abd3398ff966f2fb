"""Where video frames come from: a camera index, a video file or a stream URL (cv2.VideoCapture).

Kept apart from inference (as picamera2 keeps the camera apart from the model): a source yields
`Frame`s and knows nothing about faces. A file is read frame by frame and ends at its end. A live
source (camera or URL) is read on its own thread that keeps only the newest frame, so a slow Pi
never falls behind the scene; when it stops delivering it is reopened with backoff until
`reconnect` seconds have passed without a frame.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from .errors import DferError

# FFmpeg's own log lines ("Stream ends prematurely") would duplicate our messages; read at first open.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
try:  # OpenCV's own warnings ("can't open camera by index") would duplicate our one-line errors
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
except AttributeError:  # pragma: no cover - very old OpenCV
    pass

BACKOFF = (0.5, 1.0, 2.0, 4.0)  # seconds between reopen attempts; the last repeats


class SourceError(DferError):
    """The video source cannot be opened, or a live source stayed silent too long."""


@dataclass(frozen=True)
class Frame:
    index: int  # position in the source (live sources skip indices when frames are dropped)
    t: float  # seconds: the frame's timestamp in a file, time since start for a live source
    image: np.ndarray  # BGR


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # "camera" | "file" | "stream"
    target: int | str  # what cv2.VideoCapture gets
    name: str  # for messages

    @property
    def live(self) -> bool:
        return self.kind != "file"


def parse_source(source: str) -> SourceSpec:
    """`0` -> camera 0; `rtsp://...`, `http://...` -> stream; `/dev/video0` -> camera; else a file."""
    s = source.strip()
    if s.isdigit():
        return SourceSpec("camera", int(s), f"camera {s}")
    if "://" in s:
        return SourceSpec("stream", s, s)
    if s.startswith("/dev/"):
        return SourceSpec("camera", s, s)
    return SourceSpec("file", s, s)


def _open(spec: SourceSpec) -> cv2.VideoCapture | None:
    cap = cv2.VideoCapture(spec.target)
    if not cap.isOpened():
        cap.release()
        return None
    return cap


def open_source(source: str, reconnect: float = 30.0, log: Callable[[str], None] | None = None) -> VideoFile | LiveSource:
    spec = parse_source(source)
    if spec.live:
        return LiveSource(spec, reconnect, log or (lambda m: None))
    return VideoFile(spec)


class VideoFile:
    """Every frame of a video file, in order. The end of the file (or the first unreadable frame of a
    file damaged half-way) ends the iteration."""

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec
        p = Path(spec.target)
        if p.is_dir():
            raise SourceError(f"{p}: is a directory, not a video file")
        if not p.exists():
            raise SourceError(f"{p}: no such file")
        if not os.access(p, os.R_OK):
            raise SourceError(f"{p}: permission denied")
        self._cap = _open(spec)
        if self._cap is None:
            raise SourceError(f"{p}: cannot open as a video (not a video file, or a codec OpenCV lacks)")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 0 < fps < 1000 else 0.0

    def __iter__(self) -> Iterator[Frame]:
        i = 0
        while self._cap is not None:
            ok, img = self._cap.read()
            if not ok or img is None:
                return
            t = i / self.fps if self.fps else self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            yield Frame(i, t, img)
            i += 1

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class LiveSource:
    """A camera or stream read on a background thread that keeps the newest frame only."""

    def __init__(self, spec: SourceSpec, reconnect: float, log: Callable[[str], None]) -> None:
        self.spec = spec
        self.reconnect = reconnect
        self.log = log
        self.fps = 0.0
        self.reconnects = 0
        self._start = time.monotonic()
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._error: str | None = None
        self._stop = threading.Event()
        cap = self._reopen(first=True)  # fail in the caller's thread when it never opens
        self.fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        self._thread = threading.Thread(target=self._run, args=(cap,), name="dfer-source", daemon=True)
        self._thread.start()

    def _reopen(self, first: bool = False) -> cv2.VideoCapture:
        """Open, retrying with backoff while less than `reconnect` seconds have passed."""
        deadline = time.monotonic() + self.reconnect
        attempt = 0
        while True:
            cap = _open(self.spec)
            if cap is not None:
                if not first:
                    self.reconnects += 1
                    self.log(f"{self.spec.name}: reconnected")
                return cap
            delay = BACKOFF[min(attempt, len(BACKOFF) - 1)]
            attempt += 1
            if self._stop.is_set() or time.monotonic() + delay > deadline:
                if first:
                    raise SourceError(f"{self.spec.name}: cannot open (tried for {self.reconnect:g} s; "
                                      "is it connected and not in use by another program?)")
                raise SourceError(f"{self.spec.name}: lost, and not back within {self.reconnect:g} s")
            self.log(f"{self.spec.name}: not available; retrying in {delay:g} s (attempt {attempt})")
            self._stop.wait(delay)

    def _run(self, cap: cv2.VideoCapture) -> None:
        i = 0
        try:
            while not self._stop.is_set():
                ok, img = cap.read()
                if not ok or img is None:
                    cap.release()
                    if self._stop.is_set():
                        return
                    self.log(f"{self.spec.name}: stopped delivering frames; reconnecting")
                    cap = self._reopen()
                    continue
                with self._cond:
                    self._frame = Frame(i, time.monotonic() - self._start, img)
                    self._cond.notify_all()
                i += 1
        except SourceError as e:
            with self._cond:
                self._error = str(e)
                self._cond.notify_all()
        finally:
            cap.release()

    def __iter__(self) -> Iterator[Frame]:
        last = -1
        while True:
            with self._cond:
                while (self._frame is None or self._frame.index == last) and self._error is None:
                    if self._stop.is_set():
                        return
                    self._cond.wait(0.1)  # short waits keep Ctrl-C responsive
                if self._frame is not None and self._frame.index != last:
                    frame = self._frame
                elif self._error is not None:
                    raise SourceError(self._error)
                else:  # pragma: no cover
                    continue
            last = frame.index
            yield frame

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
