"""Where video frames come from: a camera index, a video file, a stream URL (cv2.VideoCapture), or a
Raspberry Pi Camera Module (picamera2).

Kept apart from inference (as picamera2 keeps the camera apart from the model): a source yields
`Frame`s and knows nothing about faces. A file is read frame by frame and ends at its end. A live
source (camera, URL or Camera Module) is read on its own thread that keeps only the newest frame, so a
slow Pi never falls behind the scene; when it stops delivering it is reopened with backoff until
`reconnect` seconds have passed without a frame. What that thread opens, reads and closes is a small
`Capture` adapter, so every kind of live source shares the same thread, backoff and stop.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

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

# Camera Module frames (picamera2). "RGB888" is libcamera's name for 24-bit pixels stored B, G, R in
# memory, i.e. OpenCV's BGR: capture_array() hands over a (height, width, 3) uint8 array the pipeline
# reads as it is, with no colour conversion. 640x480: the pipeline scales frames to 512 px wide by
# default, so more pixels would be scaled away, after costing the ISP and picamera2's copy of each buffer.
PICAMERA2 = "picamera2"
PICAMERA2_SIZE = (640, 480)
PICAMERA2_FORMAT = "RGB888"
PICAMERA2_READ_TIMEOUT = 2.0  # s; a frame later than this (cable out, camera hung) counts as a lost camera
PICAMERA2_INSTALL = ("sudo apt install python3-picamera2, and create the venv with "
                     "`python3 -m venv --system-site-packages`")

# The last clause of "cannot open (tried for N s; ...)": where to look, per kind of live source.
OPEN_HINT = {PICAMERA2: "is the Camera Module connected (rpicam-hello --list-cameras) and not in use by another program?"}
DEFAULT_OPEN_HINT = "is it connected and not in use by another program?"


class SourceError(DferError):
    """The video source cannot be opened, or a live source stayed silent too long."""


class Unavailable(Exception):
    """Raised by a Capture's constructor: the device cannot be opened now. LiveSource retries with
    backoff; the message (may be empty) says why, for the warning line."""


@dataclass(frozen=True)
class Frame:
    index: int  # position in the source (live sources skip indices when frames are dropped)
    t: float  # seconds: the frame's timestamp in a file, time since start for a live source
    image: np.ndarray  # BGR


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # "camera" | "file" | "stream" | "picamera2"
    target: int | str  # what cv2.VideoCapture gets; the camera number for picamera2
    name: str  # for messages

    @property
    def live(self) -> bool:
        return self.kind != "file"


def parse_source(source: str) -> SourceSpec:
    """`0` -> camera 0; `rtsp://...`, `http://...` -> stream; `/dev/video0` -> camera; `picamera2`,
    `picamera2:N` -> Camera Module N through picamera2; else a file."""
    s = source.strip()
    if s.isdigit():
        return SourceSpec("camera", int(s), f"camera {s}")
    if s == PICAMERA2 or s.startswith(PICAMERA2 + ":"):
        num = s[len(PICAMERA2) + 1:] or "0"
        if not num.isdigit():
            raise SourceError(f"{s}: the camera number after `picamera2:` must be a whole number, e.g. picamera2:0")
        return SourceSpec(PICAMERA2, int(num), f"picamera2 camera {int(num)}")
    if "://" in s:
        return SourceSpec("stream", s, s)
    if s.startswith("/dev/"):
        return SourceSpec("camera", s, s)
    return SourceSpec("file", s, s)


def _open(target: int | str) -> cv2.VideoCapture | None:
    cap = cv2.VideoCapture(target)
    if not cap.isOpened():
        cap.release()
        return None
    return cap


def open_source(source: str, reconnect: float = 30.0, log: Callable[[str], None] | None = None) -> VideoFile | LiveSource:
    spec = parse_source(source)
    log = log or (lambda m: None)
    if spec.kind == PICAMERA2:
        picamera2 = import_picamera2()  # before any retrying: a missing package does not come back
        return LiveSource(spec, reconnect, log, lambda: Picamera2Capture(picamera2, int(spec.target)))
    if spec.live:
        return LiveSource(spec, reconnect, log)
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
        self._cap = _open(spec.target)
        if self._cap is None:
            raise SourceError(f"{p}: cannot open as a video (not a video file, or a codec OpenCV lacks)")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 0 < fps < 1000 else 0.0

    def __iter__(self) -> Iterator[Frame]:
        """Frames with the container's own timestamps (right for variable-frame-rate files, which phones
        write); where the container gives none that moves forward, the last one plus a nominal frame."""
        i, last = 0, None
        while self._cap is not None:
            ok, img = self._cap.read()
            if not ok or img is None:
                return
            t = self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            if last is not None and not t > last:
                t = last + (1 / self.fps if self.fps else 1 / 30)
            elif last is None and not t >= 0:
                t = 0.0
            yield Frame(i, t, img)
            last = t
            i += 1

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


# --- what the live-source thread drives -----------------------------------------------------------

class Capture(Protocol):
    """One open session of a live device. Constructing it opens the device (or raises Unavailable);
    `read` gives (False, None) once the device stopped delivering, and never raises, so the reader
    thread can always reconnect; `close` releases the device and never raises either."""

    fps: float  # the device's nominal frame rate, 0 if unknown

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def close(self) -> None: ...


class VideoCaptureCapture:
    """A USB/V4L2 camera or a stream URL through cv2.VideoCapture."""

    def __init__(self, target: int | str) -> None:
        cap = _open(target)
        if cap is None:
            raise Unavailable("")  # OpenCV does not say why
        self._cap = cap
        self.fps = cap.get(cv2.CAP_PROP_FPS) or 0.0

    def read(self) -> tuple[bool, np.ndarray | None]:
        return self._cap.read()

    def close(self) -> None:
        self._cap.release()


def _venv_without_system_packages() -> bool:
    """True in a venv made without --system-site-packages, where apt's picamera2 cannot be seen."""
    cfg = Path(sys.prefix) / "pyvenv.cfg"
    try:
        return sys.prefix != sys.base_prefix and "include-system-site-packages = false" in cfg.read_text()
    except OSError:
        return False


def import_picamera2() -> Any:
    """The picamera2 module, imported only when a Camera Module is asked for (it exists on Raspberry Pi
    OS only). Not importable: a SourceError that says how to get it, since pip cannot (it needs apt's
    libcamera bindings)."""
    # picamera2 logs its own failures ("Camera __init__ sequence did not complete.") besides raising;
    # without a handler Python would print them to stderr next to our one-line messages.
    logging.getLogger(PICAMERA2).addHandler(logging.NullHandler())
    # libcamera's C++ INFO lines on every open would bury ours in the journal; errors stay.
    os.environ.setdefault("LIBCAMERA_LOG_LEVELS", "*:ERROR")
    try:
        import picamera2
    except ImportError as e:
        venv = " (this venv was made without it)" if _venv_without_system_packages() else ""
        raise SourceError(f"picamera2 cannot be imported ({e}): {PICAMERA2_INSTALL}{venv}") from None
    except Exception as e:  # noqa: BLE001 - e.g. ValueError "numpy.dtype size changed" from apt's simplejpeg
        raise SourceError(f"picamera2 is installed but fails to import ({type(e).__name__}: {e}); "
                          "a numpy 2 in the venv against apt's numpy-1 simplejpeg? see \"With a Camera Module\" in the README") from None
    return picamera2


def _reason(e: BaseException) -> str:
    """One line on why picamera2 could not open a camera, with the cause it chains (its RuntimeErrors
    wrap libcamera's own message)."""
    msg = f"{type(e).__name__}: {e}".strip()
    if e.__cause__ is not None:
        msg += f" ({e.__cause__})"
    return " ".join(msg.split())


class Picamera2Capture:
    """A Raspberry Pi Camera Module through picamera2 (libcamera): Picamera2(N), a video configuration
    of `size` in `fmt`, started; each read is capture_array() of the main stream. Uses only
    global_camera_info, create_video_configuration, configure, start, capture_array,
    cancel_all_and_flush (when there), stop and close."""

    def __init__(self, picamera2: Any, camera_num: int = 0, size: tuple[int, int] = PICAMERA2_SIZE,
                 fmt: str = PICAMERA2_FORMAT, timeout: float = PICAMERA2_READ_TIMEOUT) -> None:
        self.timeout = timeout
        self._cam: Any = None
        # Ask for the list first: a Picamera2() that fails leaks a file descriptor (its notification
        # pipe), which a kiosk retrying for an hour with no camera connected would pile up.
        try:
            listed = len(picamera2.Picamera2.global_camera_info())
        except Exception as e:  # noqa: BLE001 - libcamera itself failing: worth retrying
            raise Unavailable(_reason(e)) from None
        if camera_num >= listed:
            raise Unavailable("libcamera lists no cameras" if not listed else
                              f"libcamera lists {listed} camera{'s' if listed > 1 else ''}, numbered from 0")
        try:
            cam = picamera2.Picamera2(camera_num)
        except IndexError:  # Picamera2 indexes libcamera's camera list with camera_num
            raise Unavailable(f"libcamera lists no camera {camera_num}") from None
        except Exception as e:  # noqa: BLE001 - busy, or libcamera failing: all worth retrying
            raise Unavailable(_reason(e)) from None
        try:
            # The video configuration (not the preview one) asks libcamera for a steady 30 frames/s
            # and fast noise reduction, which is what a stream of frames for tracking wants.
            config = cam.create_video_configuration(main={"size": size, "format": fmt})
            cam.configure(config)
            cam.start()
        except Exception as e:  # noqa: BLE001
            self._cam = cam
            self.close()  # it stays acquired otherwise, and the next attempt would find it busy
            raise Unavailable(_reason(e)) from None
        self._cam = cam
        limits = (config.get("controls") or {}).get("FrameDurationLimits") if isinstance(config, dict) else None
        self.fps = 1e6 / limits[0] if limits and limits[0] else 0.0

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self._cam is None:
            return False, None
        try:
            # wait=seconds raises TimeoutError on picamera2 >= 0.3.20; older versions wait for ever.
            img = self._cam.capture_array("main", wait=self.timeout)
        except Exception:  # noqa: BLE001 - TimeoutError (camera hung), RuntimeError from libcamera
            return False, None
        return (True, img) if isinstance(img, np.ndarray) and img.size else (False, None)

    def close(self) -> None:
        cam, self._cam = self._cam, None
        if cam is None:
            return
        # A capture that timed out is still queued, and stop() would wait behind it: cancel it first
        # (picamera2 >= 0.3.20). close() stops the camera and releases it for the next open.
        for step in (getattr(cam, "cancel_all_and_flush", None), cam.stop, cam.close):
            if step is None:
                continue
            try:
                step()
            except Exception:  # noqa: BLE001 - a camera already gone may fail to stop; it is released anyway
                pass


# --- the newest-frame reader thread ---------------------------------------------------------------

class LiveSource:
    """A live source read on a background thread that keeps the newest frame only. `opener` makes a
    Capture (default: cv2.VideoCapture of the spec's target); it is called again to reconnect."""

    def __init__(self, spec: SourceSpec, reconnect: float, log: Callable[[str], None],
                 opener: Callable[[], Capture] | None = None) -> None:
        self.spec = spec
        self.reconnect = reconnect
        self.log = log
        self.fps = 0.0
        self.reconnects = 0
        self._opener: Callable[[], Capture] = opener or (lambda: VideoCaptureCapture(spec.target))
        self._start = time.monotonic()
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._error: str | None = None
        self._stop = threading.Event()
        cap = self._reopen(first=True)  # fail in the caller's thread when it never opens
        self.fps = cap.fps
        self._thread = threading.Thread(target=self._run, args=(cap,), name="dfer-source", daemon=True)
        self._thread.start()

    def _reopen(self, first: bool = False) -> Capture:
        """Open, retrying with backoff while less than `reconnect` seconds have passed."""
        deadline = time.monotonic() + self.reconnect
        attempt = 0
        while True:
            try:
                cap = self._opener()
            except Unavailable as e:
                why = str(e)
            except Exception as e:  # noqa: BLE001 - a driver's own exception: retried like any other failure
                why = f"{type(e).__name__}: {e}"
            else:
                if not first:
                    self.reconnects += 1
                    self.log(f"{self.spec.name}: reconnected")
                return cap
            delay = BACKOFF[min(attempt, len(BACKOFF) - 1)]
            attempt += 1
            if self._stop.is_set() or time.monotonic() + delay > deadline:
                if first:
                    last = f"last error: {why}; " if why else ""
                    hint = OPEN_HINT.get(self.spec.kind, DEFAULT_OPEN_HINT)
                    raise SourceError(f"{self.spec.name}: cannot open (tried for {self.reconnect:g} s; {last}{hint})")
                raise SourceError(f"{self.spec.name}: lost, and not back within {self.reconnect:g} s")
            detail = f" ({why})" if why else ""
            self.log(f"{self.spec.name}: not available{detail}; retrying in {delay:g} s (attempt {attempt})")
            self._stop.wait(delay)

    def _run(self, cap: Capture) -> None:
        """The reader thread. A read that fails in any way (a Capture that raises despite its contract
        included) goes through the reconnect path; anything that still escapes ends the run with an error
        the consumer sees, so the consumer can never wait for a thread that is gone."""
        i = 0
        try:
            while not self._stop.is_set():
                try:
                    ok, img = cap.read()
                    why = "stopped delivering frames"
                except Exception as e:  # noqa: BLE001 - a driver's own exception must not kill the thread
                    ok, img, why = False, None, f"read failed ({type(e).__name__}: {e})"
                if not ok or img is None:
                    _close_quietly(cap)
                    if self._stop.is_set():
                        return
                    self.log(f"{self.spec.name}: {why}; reconnecting")
                    cap = self._reopen()
                    continue
                with self._cond:
                    self._frame = Frame(i, time.monotonic() - self._start, img)
                    self._cond.notify_all()
                i += 1
        except SourceError as e:
            self._fail(str(e))
        except BaseException as e:  # noqa: BLE001 - reported to the consumer, not lost with the thread
            self._fail(f"{self.spec.name}: the reader stopped ({type(e).__name__}: {e})")
        finally:
            _close_quietly(cap)

    def _fail(self, message: str) -> None:
        with self._cond:
            self._error = message
            self._cond.notify_all()

    def request_stop(self) -> None:
        """Ask the reader to stop, without waiting (safe from a signal handler); iteration then ends."""
        self._stop.set()

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


def _close_quietly(cap: Capture) -> None:
    try:
        cap.close()
    except Exception:  # noqa: BLE001 - closing a device that already failed must not hide why
        pass
