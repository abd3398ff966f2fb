"""`dfer-edge watch` on real video: a file made in the test from KDEF photos, and a live MJPEG stream
served over HTTP from the test (a real network source that can stop and come back)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from dfer_edge.labels import LABELS
from dfer_edge.pipeline import STAGES
from dfer_edge.sources import SourceError, open_source, parse_source
from dfer_edge.tracking import BoxModel, FaceTracker, anchor, drifted, ema, iou
from dfer_edge.watch import WatchOptions, run
from tests.helpers import KDEF, KDEF_SEQUENCE, kdef_frames, synthetic_landmarks, write_kdef_video

CLI = [sys.executable, "-m", "dfer_edge"]
HOLD = 30  # frames per expression: 7 x 30 = 210 frames


def cli(*args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, **kw)


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> tuple[Path, list[str]]:
    if not KDEF.is_dir():
        pytest.skip(f"shared test data not available: {KDEF}")
    path = tmp_path_factory.mktemp("video") / "kdef.mp4"
    return path, write_kdef_video(path, hold=HOLD)


@pytest.fixture(scope="module")
def recognizer():
    from dfer_edge.recognizer import Recognizer

    with Recognizer() as rec:
        yield rec


def labels_per_frame(recognizer, path: Path, detect_every: int, smooth: float = 0.0) -> tuple[list, FaceTracker]:
    src = open_source(str(path))
    tracker = FaceTracker(recognizer, detect_every=detect_every, smooth=smooth)
    out: list = []
    run(tracker, src, WatchOptions(), lambda r: out.append([f["label"] for f in r["faces"]]))
    src.close()
    return out, tracker


# --- pure parts ---------------------------------------------------------------------------------

def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)


def test_box_model_follows_a_moving_scaled_face():
    pts = synthetic_landmarks(200, 150, 60)
    box = (150.0, 110.0, 250.0, 230.0)
    model = BoxModel.from_detection(box, pts)
    assert model.place(pts) == pytest.approx(box)
    moved = synthetic_landmarks(230, 140, 90)  # shifted by (30, -10), 1.5x larger
    cx, cy, s = anchor(pts)
    placed = model.place(moved)
    assert (placed[2] - placed[0]) == pytest.approx(1.5 * (box[2] - box[0]))
    assert not drifted(placed, model, moved)
    assert drifted(box, model, moved)  # landmarks 1.5x the box they were fitted in: the face got away


def test_ema_raw_and_smoothed():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    assert ema(None, b, 0.1, 0.3) is b
    assert np.array_equal(ema(a, b, 0.1, 0.0), b)  # tau 0: raw
    half = ema(a, b, 0.3 * np.log(2), 0.3)  # one half-life
    assert half == pytest.approx([0.5, 0.5])


def test_parse_source():
    assert parse_source("0").kind == "camera" and parse_source("0").target == 0
    assert parse_source("/dev/video2").kind == "camera"
    assert parse_source("rtsp://cam.local/stream").kind == "stream"
    assert parse_source("clip.mp4").kind == "file"


# --- the video file -----------------------------------------------------------------------------

def test_tracking_agrees_with_per_frame_detection(video, recognizer):
    path, truth = video
    tracked, tr = labels_per_frame(recognizer, path, detect_every=10)
    every, full = labels_per_frame(recognizer, path, detect_every=1)
    assert len(tracked) == len(every) == len(truth)
    assert all(len(x) == 1 for x in every), "every frame shows one face"
    agree = np.mean([a == b for a, b in zip(tracked, every)])
    assert agree >= 0.95, f"tracking agrees with per-frame detection on {agree:.1%} of frames"
    assert full.detections == len(truth)
    assert tr.detections <= len(truth) // 10 + 2, f"{tr.detections} detections with --detect-every 10"
    assert tr.next_id == 1, "one face, one id for the whole video"


def test_a_tracked_box_is_placed_from_its_own_frame(recognizer):
    """Frame 2 is frame 1 moved 12 px right and 6 px down and is tracked, not detected: its box moves with
    the face (it used to be placed from frame 1's landmarks, a frame behind)."""
    if not KDEF.is_dir():
        pytest.skip(f"shared test data not available: {KDEF}")
    first = next(f for f, _ in kdef_frames(hold=1))
    moved = np.full_like(first, 128)
    moved[6:, 12:] = first[:-6, :-12]
    tracker = FaceTracker(recognizer, detect_every=10)
    (a,), detected = tracker.process(first, 0.0)
    (b,), tracked = tracker.process(moved, 0.033)
    assert detected and not tracked and a.id == b.id
    shift = np.array(b.box) - np.array(a.box)
    assert np.abs(shift - [12, 6, 12, 6]).max() <= 2.5, shift


def test_boxes_on_a_grey_frame_are_green(recognizer):
    """A grey camera (or a grey array from Python): the saved video's boxes keep their colour."""
    from dfer_edge.annotate import GREEN, draw

    if not KDEF.is_dir():
        pytest.skip(f"shared test data not available: {KDEF}")
    grey = cv2.cvtColor(next(f for f, _ in kdef_frames(hold=1)), cv2.COLOR_BGR2GRAY)
    faces, _ = FaceTracker(recognizer).process(grey, 0.0)
    assert faces
    out = draw(grey, faces, bars=True)
    assert out.shape == (*grey.shape, 3)
    x1, y1, x2, y2 = faces[0].box
    edge = out[y1 + 1:y2 - 1, x1]  # the box's left side
    assert (edge == GREEN).all(axis=1).mean() > 0.9


def test_labels_follow_the_expressions(video, recognizer):
    path, truth = video
    smoothed, _ = labels_per_frame(recognizer, path, detect_every=10, smooth=0.3)
    right = 0
    for k in range(len(KDEF_SEQUENCE)):
        seg = [x[0] for x in smoothed[k * HOLD:(k + 1) * HOLD] if x]
        right += Counter(seg).most_common(1)[0][0] == truth[k * HOLD]
    assert right >= 6, f"the majority label is right for {right} of 7 expressions"


def test_smoothing_reduces_label_changes(video, recognizer):
    path, _ = video
    raw, _ = labels_per_frame(recognizer, path, detect_every=10, smooth=0.0)
    smooth, _ = labels_per_frame(recognizer, path, detect_every=10, smooth=1.0)
    changes = lambda seq: sum(a != b for a, b in zip(seq, seq[1:]))  # noqa: E731
    assert changes(smooth) <= changes(raw)
    assert smooth[HOLD + 1] == raw[HOLD - 1], "a 1 s average still shows the previous expression just after a change"


def test_watch_cli_jsonl_summary_and_saved_video(video, tmp_path):
    path, truth = video
    out, summary = tmp_path / "annotated.mp4", tmp_path / "summary.json"
    r = cli("watch", str(path), "--jsonl", "--save", str(out), "--summary-json", str(summary))
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(lines) == len(truth)
    assert [x["frame"] for x in lines] == list(range(len(truth)))
    assert lines[30]["t"] == pytest.approx(1.0)  # 30 fps file: file time
    for x in lines:
        assert set(x) >= {"frame", "t", "faces"}
        (f,) = x["faces"]
        assert set(f) >= {"id", "box", "label", "score", "probabilities"}
        assert list(f["probabilities"]) == list(LABELS)
        assert sum(f["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
        assert f["id"] == 0
    assert "summary:" in r.stderr and "frames/s" in r.stderr
    s = json.loads(summary.read_text())
    assert s["frames"] == len(truth) and s["ended"] == "end" and s["detections"] <= len(truth) // 10 + 2
    assert list(s["stages_ms"]) == list(STAGES)
    cap = cv2.VideoCapture(str(out))
    n, ok = 0, True
    while ok:
        ok, img = cap.read()
        n += ok
        if n == 1:
            assert img.shape == (480, 640, 3)
    assert n == len(truth)


def test_watch_cli_limits(video):
    path, _ = video
    r = cli("watch", str(path), "--jsonl", "--max-frames", "12")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 12 and "(max-frames)" in r.stderr
    r = cli("watch", str(path), "--jsonl", "--duration", "2")
    ts = [json.loads(x)["t"] for x in r.stdout.splitlines()]
    assert r.returncode == 0 and max(ts) <= 2.0 and len(ts) == 61 and "(duration)" in r.stderr


def test_watch_max_faces_follows_the_largest(tmp_path):
    """Two people, one nearer: --max-faces 1 follows the nearer one only, on every frame."""
    if not KDEF.is_dir():
        pytest.skip(f"shared test data not available: {KDEF}")
    near = [f for f, _ in kdef_frames("AF01", hold=3, size=(480, 480))][:20]
    far = [cv2.resize(f, (288, 288)) for f, _ in kdef_frames("AM01", hold=3, size=(480, 480))][:20]
    path = tmp_path / "two.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (800, 480))
    for a, b in zip(near, far):
        frame = np.full((480, 800, 3), 128, np.uint8)
        frame[:, :480], frame[96:384, 500:788] = a, b
        writer.write(frame)
    writer.release()
    both = [json.loads(x)["faces"] for x in cli("watch", str(path), "--jsonl", "--detect-every", "5").stdout.splitlines()]
    one = [json.loads(x)["faces"] for x in cli("watch", str(path), "--jsonl", "--detect-every", "5",
                                               "--max-faces", "1").stdout.splitlines()]
    assert len(both) == len(one) == 20
    assert sum(len(f) == 2 for f in both) >= 18
    assert all(len(f) == 1 and f[0]["box"][2] <= 500 for f in one)  # the near face, on the left
    assert len({f[0]["id"] for f in one}) == 1


def test_watch_cli_human_output_prints_changes_only(video):
    path, _ = video
    r = cli("watch", str(path))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert 7 <= len(lines) < 40, lines  # one line per change of expression, not per frame
    assert "#0 neutral" in lines[0]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_watch_stops_cleanly_on_signal(stream_frames, tmp_path, sig):
    """Ctrl-C or a service manager's SIGTERM on a stream that never ends by itself: exit 0 with the summary,
    every processed frame written, and the saved video closed with every frame in it."""
    server = MJPEGServer(stream_frames, frames_per_client=100_000)
    summary, saved = tmp_path / "s.json", tmp_path / "out.mp4"
    p = subprocess.Popen([*CLI, "watch", server.url, "--jsonl", "--summary-json", str(summary), "--save", str(saved)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(5):  # the model is loaded and frames flow
            assert "frame" in json.loads(p.stdout.readline())
        p.send_signal(sig)
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
        server.close()
    assert p.returncode == 0, err
    s = json.loads(summary.read_text())
    assert s["ended"] == "interrupted" and s["frames"] >= 5
    assert 5 + len(out.splitlines()) == s["frames"]
    assert "summary:" in err and "Traceback" not in err
    cap = cv2.VideoCapture(str(saved))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == s["frames"], "the video holds every processed frame: it was closed, not cut off"


def test_container_timestamps_are_used_for_a_variable_frame_rate_file(tmp_path):
    """Phones write variable-frame-rate video: a frame's time is its own timestamp, not its index / fps."""
    av = pytest.importorskip("av", reason="PyAV (the dev extra) writes the variable-frame-rate test file")
    from fractions import Fraction

    path, ms = tmp_path / "vfr.mp4", [0, 33, 66, 400, 433, 1000, 1500, 1533]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=1000)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for i, t in enumerate(ms):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    src = open_source(str(path))
    try:
        times = [f.t for f in src]
    finally:
        src.close()
    assert times == pytest.approx([t / 1000 for t in ms], abs=1e-6)


# --- bad sources --------------------------------------------------------------------------------

def test_missing_video_file(tmp_path):
    r = cli("watch", str(tmp_path / "nope.mp4"))
    assert r.returncode == 1 and r.stderr.strip() == f"error: {tmp_path / 'nope.mp4'}: no such file"


def test_not_a_video(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is text, not a video\n" * 100)
    r = cli("watch", str(bad))
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "cannot open as a video" in r.stderr


def test_no_camera_is_one_line_and_does_not_hang():
    r = cli("watch", "9", "--reconnect", "1", timeout=60)
    assert r.returncode == 1
    errors = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    assert errors == ["error: camera 9: cannot open (tried for 1 s; is it connected and not in use by another program?)"]
    assert "Traceback" not in r.stderr


def test_video_corrupt_half_way_ends_cleanly(video, tmp_path):
    path, truth = video
    data = path.read_bytes()
    broken = tmp_path / "broken.mp4"
    # mp4v in .mp4 keeps its index (moov) at the end: cut the file and garble its middle instead.
    garbled = bytearray(data)
    mid = len(data) // 2
    garbled[mid:mid + 200_000] = os.urandom(200_000)
    broken.write_bytes(bytes(garbled))
    r = cli("watch", str(broken), "--jsonl", timeout=120)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    frames = [json.loads(x) for x in r.stdout.splitlines()]
    assert 0 < len(frames) <= len(truth)
    assert sum(1 for f in frames if f["faces"]) >= len(truth) // 3, "the intact frames still give results"


# --- a live stream that disappears --------------------------------------------------------------

class MJPEGServer:
    """multipart/x-mixed-replace JPEG frames over HTTP, like an IP camera. `frames_per_client`
    frames per connection, then the connection closes; `refuse` makes new connections fail."""

    def __init__(self, frames: list[np.ndarray], frames_per_client: int, fps: float = 30.0) -> None:
        jpgs = [cv2.imencode(".jpg", f)[1].tobytes() for f in frames]
        owner = self
        self.refuse = False
        self.clients = 0

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if owner.refuse:
                    self.send_error(503)
                    return
                owner.clients += 1
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    for i in range(frames_per_client):
                        j = jpgs[i % len(jpgs)]
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(j)
                                         + j + b"\r\n")
                        time.sleep(1 / fps)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *a) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/stream.mjpg"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def stream_frames():
    if not KDEF.is_dir():
        pytest.skip(f"shared test data not available: {KDEF}")
    return [f for f, _ in kdef_frames(hold=4)]


def test_stream_that_disappears_is_retried_then_given_up(stream_frames, tmp_path):
    server = MJPEGServer(stream_frames, frames_per_client=40)
    summary = tmp_path / "s.json"
    p = subprocess.Popen([*CLI, "watch", server.url, "--jsonl", "--reconnect", "3", "--summary-json", str(summary)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        json.loads(p.stdout.readline())  # frames arrive
        server.refuse = True  # the camera goes away for good once this connection ends
        out, err = p.communicate(timeout=120)
    finally:
        p.kill()
        server.close()
    assert p.returncode == 1, err
    assert "stopped delivering frames; reconnecting" in err
    assert err.strip().splitlines()[-1] == f"error: {server.url}: lost, and not back within 3 s"
    s = json.loads(summary.read_text())
    assert s["ended"] == "source-lost" and s["frames"] >= 1
    assert len(out.splitlines()) + 1 == s["frames"], "every processed frame was written before the exit"
    assert "Traceback" not in err


def test_stream_that_comes_back_is_reconnected(stream_frames, recognizer):
    server = MJPEGServer(stream_frames, frames_per_client=30)
    src = open_source(server.url, reconnect=10)
    try:
        tracker = FaceTracker(recognizer, detect_every=5)
        records: list = []
        s = run(tracker, src, WatchOptions(max_frames=45), records.append)
    finally:
        src.close()
        server.close()
    assert s.frames == 45 and s.ended == "max-frames"
    assert s.reconnects >= 1 and server.clients >= 2
    assert sum(1 for r in records if r["faces"]) >= 30


def test_live_source_that_never_opens_raises_quickly():
    t = time.monotonic()
    with pytest.raises(SourceError, match="cannot open"):
        open_source("http://127.0.0.1:9/none.mjpg", reconnect=0)
    assert time.monotonic() - t < 30


# --- a reader thread that fails in ways a driver should not -----------------------------------------

class FailingCapture:
    """The real stream, read through OpenCV, whose `read` raises after `after` frames: a camera driver that
    throws its own exception instead of returning (False, None)."""

    def __init__(self, url: str, after: int) -> None:
        from dfer_edge.sources import VideoCaptureCapture

        self._cap = VideoCaptureCapture(url)
        self.fps, self._left = self._cap.fps, after

    def read(self):
        self._left -= 1
        if self._left < 0:
            raise RuntimeError("driver fault")
        return self._cap.read()

    def close(self) -> None:
        self._cap.close()


def test_a_reader_exception_goes_through_reconnect(stream_frames, recognizer):
    from dfer_edge.sources import LiveSource

    server = MJPEGServer(stream_frames, frames_per_client=100_000)
    said: list[str] = []
    src = LiveSource(parse_source(server.url), 10, said.append, lambda: FailingCapture(server.url, 15))
    try:
        s = run(FaceTracker(recognizer, detect_every=5), src, WatchOptions(max_frames=40))
    finally:
        src.close()
        server.close()
    assert s.ended == "max-frames" and s.frames == 40 and s.reconnects >= 1
    assert any("read failed (RuntimeError: driver fault); reconnecting" in m for m in said), said


def test_a_dead_reader_thread_ends_the_run_instead_of_hanging(stream_frames, recognizer):
    """Whatever escapes the reader (here the log call itself fails) reaches the consumer as an error."""
    from dfer_edge.sources import LiveSource

    server = MJPEGServer(stream_frames, frames_per_client=100_000)

    def log(message: str) -> None:
        if "reconnecting" in message:
            raise OSError("stderr is gone")

    src = LiveSource(parse_source(server.url), 10, log, lambda: FailingCapture(server.url, 10))
    t = time.monotonic()
    try:
        s = run(FaceTracker(recognizer, detect_every=5), src, WatchOptions(max_frames=1000))
    finally:
        src.close()
        server.close()
    assert time.monotonic() - t < 60
    assert s.ended == "source-lost" and 1 <= s.frames <= 10
    assert s.error == f"{server.url}: the reader stopped (OSError: stderr is gone)"
