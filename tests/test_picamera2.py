"""`dfer-edge watch picamera2`: the Raspberry Pi Camera Module source, without a Raspberry Pi.

picamera2 needs libcamera and a Camera Module, so it cannot run here. `StandInPicamera2` stands in for
`picamera2.Picamera2`: only the methods dfer-edge calls, with picamera2's behaviour where it matters
(IndexError for a camera number libcamera does not list, a video configuration that defaults to
XBGR8888 1280x720 until told otherwise, capture_array() returning a fresh (h, w, 3) array in the
configured size and byte order, paced at the frame rate, TimeoutError from capture_array(wait=seconds)
when the camera hangs). It serves real frames: crops of samples/astronaut.jpg, scaled to the configured
size as the ISP would. Everything after it runs for real: the LiveSource thread, the tracker, the
recognizer and the CLI.

How it gets in: in-process tests put a module named `picamera2` holding the stand-in into sys.modules
(monkeypatch); CLI tests put a two-line `picamera2.py` that imports it on PYTHONPATH. Either way
dfer-edge reaches it through its own `import picamera2`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
import types
from collections import deque
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from dfer_edge.sources import (PICAMERA2_FORMAT, PICAMERA2_SIZE, LiveSource, Picamera2Capture, SourceError,
                               open_source, parse_source)
from dfer_edge.tracking import FaceTracker
from dfer_edge.watch import WatchOptions, run

REPO = Path(__file__).resolve().parents[1]
ASTRONAUT = REPO / "samples" / "astronaut.jpg"
CLI = [sys.executable, "-m", "dfer_edge"]


def real_frames() -> list[np.ndarray]:
    """4:3 windows of the 512x512 astronaut photo sliding down over her face and back, 8 px a frame: a
    real face that moves as a person in front of a kiosk does. BGR, 512x384; the stand-in scales them
    to the configured size."""
    img = cv2.imread(str(ASTRONAUT))
    assert img is not None and img.shape[:2] == (512, 512), f"cannot read {ASTRONAUT}"
    offsets = list(range(0, 64, 8)) + list(range(64, 0, -8))
    return [img[y:y + 384] for y in offsets]


class StandInPicamera2:
    """A stand-in for picamera2.Picamera2 (see the module docstring). Class attributes script a test:
    `frames` to serve in a loop, `cameras` how many libcamera lists (global_camera_info), `failures` raised one per open
    attempt at the stage named ("init" or "start"), `hang_after` captures before the next camera
    opened hangs (once: the camera after it works). Every instance is kept in `instances` with the calls made to it."""

    frames: list[np.ndarray] = []
    cameras = 1
    failures: list[tuple[str, BaseException]] = []
    hang_after: int | None = None
    fps = 30.0
    instances: list[StandInPicamera2] = []
    lock = threading.Lock()

    @classmethod
    def reset(cls) -> None:
        cls.frames, cls.cameras, cls.failures, cls.hang_after, cls.instances = [], 1, [], None, []

    def __init__(self, camera_num: int = 0) -> None:
        with self.lock:
            failure = self.failures.pop(0) if self.failures else None
        if failure and failure[0] == "init":
            raise failure[1]
        cameras = list(range(self.cameras))
        self.camera_num = cameras[camera_num]  # IndexError, as Picamera2's global_camera_info()[camera_num]
        self.start_failure = failure[1] if failure else None
        self.hang_after, StandInPicamera2.hang_after = StandInPicamera2.hang_after, None
        self.calls: list[str] = []
        self.config: dict[str, Any] | None = None
        self.config_kind: str | None = None
        self.started = False
        self.closed = False
        self.captured = 0
        self.returned: deque[np.ndarray] = deque(maxlen=4)
        self._next = 0.0
        self.instances.append(self)

    @classmethod
    def global_camera_info(cls) -> list[dict[str, Any]]:
        return [{"Model": "stand-in", "Id": f"/base/stand-in@{i}", "Num": i} for i in range(cls.cameras)]

    def _create(self, kind: str, main: dict | None, default: dict) -> dict[str, Any]:
        self.calls.append(f"create_{kind}_configuration")
        stream = dict(default, **(main or {}))
        return {"use_case": kind, "main": stream, "controls": {"FrameDurationLimits": (33333, 33333)}}

    def create_video_configuration(self, main: dict | None = None, **_: Any) -> dict[str, Any]:
        return self._create("video", main, {"format": "XBGR8888", "size": (1280, 720), "preserve_ar": True})

    def create_preview_configuration(self, main: dict | None = None, **_: Any) -> dict[str, Any]:
        return self._create("preview", main, {"format": "XBGR8888", "size": (640, 480), "preserve_ar": True})

    def configure(self, config: dict[str, Any]) -> None:
        self.calls.append("configure")
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        self.config, self.config_kind = config, config["use_case"]

    def start(self) -> None:
        self.calls.append("start")
        if self.config is None:
            raise RuntimeError("Camera has not been configured")
        if self.start_failure is not None:
            raise self.start_failure
        self.started = True

    def capture_array(self, name: str = "main", wait: float | None = None) -> np.ndarray:
        if not self.started or self.closed:
            raise RuntimeError("Camera not started")
        if self.hang_after is not None and self.captured >= self.hang_after:
            time.sleep(wait if type(wait) in (int, float) else 0.0)
            raise TimeoutError  # what picamera2's capture_array(wait=seconds) raises when no frame came
        delay = self._next - time.monotonic()  # a camera delivers at its frame rate, not faster
        if delay > 0:
            time.sleep(delay)
        self._next = time.monotonic() + 1.0 / self.fps
        main = self.config["main"]
        img = cv2.resize(self.frames[self.captured % len(self.frames)], tuple(main["size"]), interpolation=cv2.INTER_AREA)
        if main["format"] == "BGR888":  # picamera2 naming: [R, G, B] in memory
            img = img[:, :, ::-1]
        elif main["format"] == "XBGR8888":  # [R, G, B, 255]
            img = np.dstack([img[:, :, ::-1], np.full(img.shape[:2], 255, np.uint8)])
        elif main["format"] != "RGB888":  # "RGB888": [B, G, R] in memory, OpenCV's order
            raise RuntimeError(f"stand-in does not serve {main['format']}")
        img = np.ascontiguousarray(img)  # picamera2 hands out a copy of the camera buffer
        self.captured += 1
        self.returned.append(img)
        return img

    def cancel_all_and_flush(self) -> None:
        self.calls.append("cancel_all_and_flush")

    def stop(self) -> None:
        self.calls.append("stop")
        self.started = False

    def close(self) -> None:
        self.calls.append("close")
        self.started = False  # Picamera2.close() stops the camera itself
        self.closed = True


@pytest.fixture
def standin(monkeypatch) -> type[StandInPicamera2]:
    StandInPicamera2.reset()
    StandInPicamera2.frames = real_frames()
    module = types.ModuleType("picamera2")
    module.Picamera2 = StandInPicamera2
    monkeypatch.setitem(sys.modules, "picamera2", module)
    yield StandInPicamera2
    StandInPicamera2.reset()


@pytest.fixture(scope="module")
def recognizer():
    from dfer_edge.recognizer import Recognizer

    with Recognizer() as rec:
        yield rec


def shim(tmp_path: Path, setup: str = "") -> dict[str, str]:
    """An environment whose `import picamera2` finds the stand-in (CLI tests run in a subprocess)."""
    (tmp_path / "picamera2.py").write_text(
        "from tests.test_picamera2 import StandInPicamera2 as Picamera2, real_frames\n"
        f"Picamera2.frames = real_frames()\n{setup}\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}


def cli(*args: str, timeout: float = 300, **kw: Any) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO, **kw)


# --- the source name ----------------------------------------------------------------------------

def test_parse_picamera2_spellings():
    assert parse_source("picamera2") == parse_source(" picamera2:0 ")
    spec = parse_source("picamera2:1")
    assert (spec.kind, spec.target, spec.name, spec.live) == ("picamera2", 1, "picamera2 camera 1", True)
    assert parse_source("picamera2.mp4").kind == "file"  # a file that merely starts with the word
    for bad in ("picamera2:x", "picamera2:-1", "picamera2:0.5"):
        with pytest.raises(SourceError, match="must be a whole number"):
            parse_source(bad)


def test_picamera2_is_imported_only_when_asked_for(tmp_path):
    """Other sources never import picamera2 (it is slow to import and exists only on a Pi)."""
    env = shim(tmp_path)
    code = ("import sys; import dfer_edge.cli, dfer_edge.watch; from dfer_edge.sources import open_source, parse_source; "
            "parse_source('picamera2'); print('picamera2' in sys.modules, end=' '); "
            "open_source('picamera2', reconnect=0).close(); print('picamera2' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "True"]


# --- frames through the real pipeline -----------------------------------------------------------

def test_watch_finds_faces_in_camera_module_frames(standin, recognizer):
    src = open_source("picamera2", reconnect=5)
    try:
        assert isinstance(src, LiveSource) and src.fps == pytest.approx(30.0, rel=0.01)
        first = next(iter(src))
        (cam,) = standin.instances
        assert first.image.shape == (480, 640, 3) and first.image.dtype == np.uint8
        assert any(first.image is a for a in cam.returned), "the pipeline gets picamera2's array itself, no copy"
        # RGB888 is BGR in memory: the frame is the photo's own BGR pixels, scaled, not channel-swapped.
        # (Frame.index counts the session's captures, so it names the photo the stand-in served.)
        served = standin.frames[first.index % len(standin.frames)]
        assert np.array_equal(first.image, cv2.resize(served, PICAMERA2_SIZE, interpolation=cv2.INTER_AREA))
        records: list[dict] = []
        s = run(FaceTracker(recognizer, detect_every=5), src, WatchOptions(max_frames=30), records.append)
    finally:
        src.close()
    assert s.frames == 30 and s.ended == "max-frames" and s.error is None and s.reconnects == 0
    with_face = [r for r in records if r["faces"]]
    assert len(with_face) >= 27, f"a face in {len(with_face)} of 30 camera frames"
    for r in with_face:
        x1, y1, x2, y2 = r["faces"][0]["box"]
        assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 480 and x2 - x1 >= 50, r["faces"][0]["box"]
    labels = [r["faces"][0]["label"] for r in with_face]
    assert labels.count("happiness") >= 0.8 * len(labels), f"she smiles: {labels}"
    assert cam.closed and not cam.started


def test_configuration_asked_of_picamera2(standin):
    standin.cameras = 2
    src = open_source("picamera2:1", reconnect=0)
    try:
        (cam,) = standin.instances
        assert cam.camera_num == 1
        assert cam.calls[:3] == ["create_video_configuration", "configure", "start"]
        assert cam.config_kind == "video"
        assert cam.config["main"]["size"] == PICAMERA2_SIZE == (640, 480)
        assert cam.config["main"]["format"] == PICAMERA2_FORMAT == "RGB888"
        assert next(iter(src)).image.shape == (480, 640, 3)
    finally:
        src.close()
    # Another size is one argument away (the adapter is usable alone, e.g. from Python).
    cap = Picamera2Capture(sys.modules["picamera2"], 0, size=(320, 240))
    try:
        ok, img = cap.read()
        assert ok and img.shape == (240, 320, 3) and standin.instances[-1].config["main"]["size"] == (320, 240)
    finally:
        cap.close()


# --- failures -----------------------------------------------------------------------------------

def test_cli_without_picamera2_is_one_line_and_exit_1():
    if importlib.util.find_spec("picamera2") is not None:
        pytest.skip("picamera2 is installed here; the message for its absence cannot be seen")
    r = cli("watch", "picamera2", timeout=120)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: picamera2 cannot be imported (No module named 'picamera2')")
    assert "sudo apt install python3-picamera2" in line and "--system-site-packages" in line


def test_picamera2_that_fails_to_import_is_one_line(tmp_path, monkeypatch):
    """picamera2 from apt under a venv's numpy 2 dies in its import with a ValueError from simplejpeg."""
    (tmp_path / "picamera2.py").write_text(
        "raise ValueError('numpy.dtype size changed, may indicate binary incompatibility. Expected 96 from C header, got 88 from PyObject')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "picamera2", raising=False)
    with pytest.raises(SourceError) as e:
        open_source("picamera2")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("picamera2 is installed but fails to import (ValueError: numpy.dtype size changed")
    monkeypatch.setitem(sys.modules, "picamera2", None)  # Python's own "this module is not there"
    with pytest.raises(SourceError, match=r"sudo apt install python3-picamera2.*--system-site-packages"):
        open_source("picamera2")


def test_bad_camera_number_and_absent_camera_through_the_cli(tmp_path):
    r = cli("watch", "picamera2:one", timeout=120)
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        "error: picamera2:one: the camera number after `picamera2:` must be a whole number, e.g. picamera2:0"]
    env = shim(tmp_path, "Picamera2.cameras = 1")
    t = time.monotonic()
    r = cli("watch", "picamera2:1", "--reconnect", "1", env=env, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    errors = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    assert errors == ["error: picamera2 camera 1: cannot open (tried for 1 s; last error: libcamera lists 1 camera, numbered from 0; "
                      "is the Camera Module connected (rpicam-hello --list-cameras) and not in use by another program?)"]
    assert "warning: picamera2 camera 1: not available (libcamera lists 1 camera, numbered from 0); retrying in 0.5 s (attempt 1)" in r.stderr
    assert time.monotonic() - t < 60


def test_camera_that_hangs_then_comes_back_is_reconnected(standin, recognizer):
    """The camera stops delivering after 15 frames (capture_array times out), the next two opens fail
    (busy at Picamera2(), then at start()), the third works: watch carries on, faces and all."""
    standin.hang_after = 15
    busy = RuntimeError("Camera __init__ sequence did not complete.")
    busy.__cause__ = RuntimeError("Failed to acquire camera: Device or resource busy")
    log: list[str] = []
    src = open_source("picamera2", reconnect=10, log=log.append)
    standin.failures = [("init", busy), ("start", RuntimeError("Failed to start camera: Broken pipe"))]
    try:
        records: list[dict] = []
        s = run(FaceTracker(recognizer, detect_every=5), src, WatchOptions(max_frames=40), records.append)
    finally:
        src.close()
    assert s.frames == 40 and s.ended == "max-frames" and s.error is None
    assert s.reconnects == 1 == src.reconnects
    assert log[0] == "picamera2 camera 0: stopped delivering frames; reconnecting"
    assert log[1] == ("picamera2 camera 0: not available (RuntimeError: Camera __init__ sequence did not complete. "
                      "(Failed to acquire camera: Device or resource busy)); retrying in 0.5 s (attempt 1)")
    assert log[2] == "picamera2 camera 0: not available (RuntimeError: Failed to start camera: Broken pipe); retrying in 1 s (attempt 2)"
    assert log[3] == "picamera2 camera 0: reconnected" and len(log) == 4
    hung, failed_start, back = standin.instances  # the failed Picamera2() left no instance
    assert hung.calls[-3:] == ["cancel_all_and_flush", "stop", "close"], "the hung capture is cancelled before stopping"
    assert failed_start.closed, "a camera that failed to start is released, or the next open would find it busy"
    assert back.closed and back.captured >= 40 - 15
    after = [r for r in records if r["frame"] >= 15]
    assert len(after) >= 20 and sum(1 for r in after if r["faces"]) >= len(after) - 3, "faces again after the reconnect"


def test_camera_lost_for_good_ends_the_run_with_the_error(standin, recognizer):
    standin.hang_after = 5
    log: list[str] = []
    src = open_source("picamera2", reconnect=1, log=log.append)
    standin.cameras = 0  # gone: libcamera lists nothing any more
    try:
        s = run(FaceTracker(recognizer, detect_every=5), src, WatchOptions(max_frames=100))
    finally:
        src.close()
    assert s.ended == "source-lost" and s.frames >= 1
    assert s.error == "picamera2 camera 0: lost, and not back within 1 s"
    assert "picamera2 camera 0: not available (libcamera lists no cameras); retrying in 0.5 s (attempt 1)" in log
    assert len(standin.instances) == 1, "no Picamera2() is tried for a camera libcamera does not list"
    assert standin.instances[0].closed


def test_close_stops_the_thread_and_releases_the_camera(standin):
    src = open_source("picamera2", reconnect=5)
    frames = iter(src)
    got = [next(frames) for _ in range(5)]
    assert [f.index for f in got] == sorted({f.index for f in got}), "newest frames, in order"
    t = time.monotonic()
    src.close()
    assert time.monotonic() - t < 3
    assert not src._thread.is_alive()
    (cam,) = standin.instances
    assert cam.closed and not cam.started and cam.calls[-2:] == ["stop", "close"]
    n = cam.captured
    time.sleep(0.2)
    assert cam.captured == n, "nothing reads the camera after close"


def test_cli_watch_picamera2_jsonl(tmp_path):
    """The whole command as a kiosk runs it, with the stand-in where picamera2 would be."""
    env = shim(tmp_path)
    summary = tmp_path / "s.json"
    r = cli("watch", "picamera2", "--jsonl", "--max-frames", "20", "--summary-json", str(summary), env=env)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(lines) == 20
    assert sum(1 for x in lines if x["faces"]) >= 18
    s = json.loads(summary.read_text())
    assert s["frames"] == 20 and s["ended"] == "max-frames" and s["error"] is None
    assert "Traceback" not in r.stderr and "warning" not in r.stderr
