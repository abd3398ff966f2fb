"""The command line as users run it: `python -m dfer_edge ...` in a subprocess, on real photos, with the
shipped model and the real dlib landmark model. Nothing here depends on which expression is predicted."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from dfer_edge.errors import LandmarkModelError
from dfer_edge.labels import LABELS
from dfer_edge.landmarks import find_landmark_model
from dfer_edge.model import INTERPRETERS, default_model_path
from tests import helpers
from tests.helpers import PHOTOS

REPO = Path(__file__).resolve().parents[1]
GROUP = PHOTOS / "group.jpeg"
ANGRY = PHOTOS / "angry.jpg"
NON_FACE = PHOTOS / "non_face.jpg"
TIMEOUT = 300


@pytest.fixture(scope="module", autouse=True)
def _prerequisites():
    for p in (GROUP, ANGRY, NON_FACE):
        if not p.is_file():
            pytest.skip(f"shared test data not available: {p}")
    try:
        find_landmark_model()
    except LandmarkModelError as e:
        pytest.skip(f"dlib landmark model not available: {e}")


def run_cli(*args, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return helpers.run_cli(*args, cwd=cwd, timeout=TIMEOUT)


def image_size(path: Path) -> tuple[int, int]:
    img = cv2.imread(str(path))
    assert img is not None, path
    return img.shape[1], img.shape[0]


def check_face(face: dict, size: tuple[int, int]) -> None:
    """One face object of the JSON output is well formed and self-consistent."""
    assert set(face) == {"box", "label", "score", "probabilities", "iod_px", "pose", "looking"}
    assert isinstance(face["iod_px"], float) and 0 < face["iod_px"] < max(size)
    assert set(face["pose"]) == {"yaw", "pitch", "roll"} and all(-180 <= v <= 180 for v in face["pose"].values())
    assert isinstance(face["looking"], bool)
    box = face["box"]
    assert len(box) == 4 and all(type(v) is int for v in box)
    x1, y1, x2, y2 = box
    w, h = size
    assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
    probs = face["probabilities"]
    assert list(probs) == list(LABELS)
    values = np.array(list(probs.values()))
    assert (values >= 0).all() and (values <= 1).all()
    assert abs(values.sum() - 1.0) <= 1e-3
    assert face["label"] == LABELS[int(values.argmax())]
    assert face["score"] == values.max()


def check_result(r: dict, path: Path) -> None:
    assert set(r) == {"path", "error", "faces"}
    assert r["error"] is None
    size = image_size(path)
    for f in r["faces"]:
        check_face(f, size)


@pytest.fixture(scope="module")
def group_json():
    p = run_cli("predict", GROUP, "--upsample", "1", "--json")
    return p, json.loads(p.stdout)


# --- predict ------------------------------------------------------------------------------------

def test_predict_json_on_a_group_photo(group_json):
    p, out = group_json
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    assert isinstance(out, list) and len(out) == 1
    r = out[0]
    assert r["path"] == str(GROUP)
    check_result(r, GROUP)
    assert len(r["faces"]) >= 3


def test_predict_no_face():
    p = run_cli("predict", NON_FACE, "--json")
    assert p.returncode == 0, p.stderr
    [r] = json.loads(p.stdout)
    assert r == {"path": str(NON_FACE), "error": None, "faces": []}


def test_unreadable_inputs_are_reported_and_the_rest_still_run(tmp_path):
    truncated = tmp_path / "truncated.jpg"
    data = ANGRY.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    text = tmp_path / "notes.jpg"
    text.write_text("this is not an image\n")
    p = run_cli("predict", truncated, text, ANGRY, "--json")
    assert p.returncode == 1
    assert "Traceback" not in p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 2, p.stderr
    for line, bad in zip(lines, (truncated, text)):
        assert line.startswith(f"error: {bad}"), line
        assert "<bytes>" not in line
    out = json.loads(p.stdout)
    assert [r["path"] for r in out] == [str(truncated), str(text), str(ANGRY)]
    for r, bad in zip(out[:2], (truncated, text)):
        assert isinstance(r["error"], str) and str(bad) in r["error"]
        assert r["faces"] == []
    check_result(out[2], ANGRY)
    assert len(out[2]["faces"]) >= 1


def test_a_missing_file_is_an_input_error(tmp_path):
    missing = tmp_path / "missing.jpg"
    p = run_cli("predict", missing, ANGRY, "--jsonl")
    assert p.returncode == 1
    assert p.stderr.splitlines() == [p.stderr.strip()] and p.stderr.startswith(f"error: {missing}")
    first, second = (json.loads(line) for line in p.stdout.splitlines())
    assert first["path"] == str(missing) and first["error"]
    check_result(second, ANGRY)


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory) -> Path:
    """Two photos, a non-image file and a sub-folder with one more photo."""
    d = tmp_path_factory.mktemp("folder")
    shutil.copyfile(ANGRY, d / "b-angry.jpg")
    shutil.copyfile(NON_FACE, d / "a-nothing.jpg")
    (d / "readme.txt").write_text("not an image\n")
    (d / "sub").mkdir()
    shutil.copyfile(ANGRY, d / "sub" / "c-angry.jpg")
    return d


def test_jsonl_on_a_folder(photo_folder):
    p = run_cli("predict", photo_folder, "--jsonl")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    results = [json.loads(line) for line in lines]
    assert all(isinstance(r, dict) for r in results)
    expected = [photo_folder / "a-nothing.jpg", photo_folder / "b-angry.jpg", photo_folder / "sub" / "c-angry.jpg"]
    assert [r["path"] for r in results] == [str(x) for x in expected]
    for r, path in zip(results, expected):
        check_result(r, path)
    assert results[0]["faces"] == []
    assert len(results[1]["faces"]) >= 1
    assert results[1]["faces"] == results[2]["faces"]  # the same photo gives the same answer


def test_largest_keeps_the_largest_face(group_json):
    _, [full] = group_json
    p = run_cli("predict", GROUP, "--upsample", "1", "--json", "--largest")
    assert p.returncode == 0, p.stderr
    [r] = json.loads(p.stdout)
    check_result(r, GROUP)
    assert len(r["faces"]) == 1
    area = lambda f: (f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1])  # noqa: E731
    assert r["faces"][0] == full["faces"][0]
    assert area(r["faces"][0]) == max(area(f) for f in full["faces"])


def test_largest_on_no_face_gives_none():
    p = run_cli("predict", NON_FACE, "--jsonl", "--largest")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["faces"] == []


def test_table_output(photo_folder):
    p = run_cli("predict", photo_folder / "b-angry.jpg", photo_folder / "a-nothing.jpg")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert [c.strip() for c in lines[0].split("\t")] == ["path", "face", "label", "score", "box"]
    rows = [line.split("\t") for line in lines[1:]]
    faces = [r for r in rows if r[0] == str(photo_folder / "b-angry.jpg")]
    assert len(faces) >= 1
    path, index, label, score, box = faces[0]
    assert index == "0"
    assert label.strip() in LABELS
    assert 0.0 <= float(score) <= 1.0
    assert len([int(v) for v in box.split(",")]) == 4
    assert [str(photo_folder / "a-nothing.jpg"), "-", "(no face)"] in rows


def test_json_and_jsonl_together_is_a_usage_error():
    p = run_cli("predict", ANGRY, "--json", "--jsonl")
    assert p.returncode == 2
    assert p.stderr.startswith("error:") and len(p.stderr.splitlines()) == 1
    assert p.stdout == ""


# --- annotate -----------------------------------------------------------------------------------

def test_annotate_writes_one_image_per_input(tmp_path, photo_folder):
    out = tmp_path / "annotated"
    renamed = tmp_path / "b-angry.jpg"  # same name as the folder's copy: must not overwrite it
    shutil.copyfile(ANGRY, renamed)
    inputs = [photo_folder / "b-angry.jpg", photo_folder / "a-nothing.jpg", renamed]
    p = run_cli("predict", *inputs, "--annotate", out, "--jsonl")
    assert p.returncode == 0, p.stderr
    results = [json.loads(line) for line in p.stdout.splitlines()]
    written = sorted(x.name for x in out.iterdir())
    assert written == ["a-nothing.jpg", "b-angry-1.jpg", "b-angry.jpg"]
    for src, name in zip(inputs, ["b-angry.jpg", "a-nothing.jpg", "b-angry-1.jpg"]):
        img = cv2.imread(str(out / name))
        assert img is not None, name
        assert (img.shape[1], img.shape[0]) == image_size(src)
    # The face's box is drawn in green on the annotated copy.
    img = cv2.imread(str(out / "b-angry.jpg")).astype(int)
    x1, y1, x2, y2 = results[0]["faces"][0]["box"]
    edge = img[y2 - 1, x1 + 5:x2 - 5]  # the bottom edge of the box, away from the corners
    b, g, r = edge.mean(axis=0)
    assert g > 150 and b < 100 and r < 100


# --- set-up errors ------------------------------------------------------------------------------

def test_missing_model_file(tmp_path):
    missing = tmp_path / "nope.tflite"
    p = run_cli("predict", ANGRY, "--model", missing)
    assert p.returncode == 2
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and str(missing) in lines[0]
    assert "Traceback" not in p.stderr


def test_missing_landmark_file(tmp_path):
    missing = tmp_path / "nope.dat"
    p = run_cli("predict", ANGRY, "--landmarks", missing)
    assert p.returncode == 2
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and str(missing) in lines[0]
    assert "Traceback" not in p.stderr


def test_info():
    p = run_cli("info")
    assert p.returncode == 0, p.stderr
    rows = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in p.stdout.splitlines())
    assert rows["interpreter"].split()[0] in INTERPRETERS
    assert Path(rows["model"]) == default_model_path()
    assert Path(rows["landmarks"]) == find_landmark_model()
    assert rows["labels"] == ", ".join(LABELS)


def test_info_with_a_missing_model(tmp_path):
    missing = tmp_path / "nope.tflite"
    p = run_cli("info", "--model", missing)
    assert p.returncode == 2
    assert p.stderr.startswith("error:") and str(missing) in p.stderr and len(p.stderr.splitlines()) == 1
    assert "landmarks" in p.stdout  # the rest is still reported


# --- the runtime never loads TensorFlow ---------------------------------------------------------

NO_TF = """
import json, runpy, sys
import dfer_edge
faces = dfer_edge.Recognizer().predict(sys.argv[1])
code = None
sys.argv = ["dfer-edge", "predict", sys.argv[1], "--jsonl"]
try:
    runpy.run_module("dfer_edge", run_name="__main__")
except SystemExit as e:
    code = e.code
tf = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
print(json.dumps({"faces": len(faces), "code": code, "tf": tf}))
"""


def test_runtime_never_imports_tensorflow():
    p = subprocess.run([sys.executable, "-c", NO_TF, str(ANGRY)], cwd=REPO, capture_output=True, text=True,
                       timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr
    cli_line, report = p.stdout.splitlines()[-2:]
    r = json.loads(report)
    assert r["faces"] >= 1
    assert r["code"] == 0 and len(json.loads(cli_line)["faces"]) >= 1
    assert r["tf"] == []


@pytest.mark.parametrize("fmt", ["--jsonl", "--csv", None])
def test_a_reader_that_stops_early_ends_predict_quietly(tmp_path, fmt):
    """`predict many | head -1`: the pipe closing is how such a run ends, exit 0 and nothing on stderr
    (Click's own handling said exit 1, the code for an unreadable input)."""
    for i in range(40):
        (tmp_path / f"face{i:02d}.jpg").symlink_to(ANGRY)
    cmd = [sys.executable, "-m", "dfer_edge", "predict", str(tmp_path), *([fmt] if fmt else [])]
    p = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = p.stdout.readline()
    p.stdout.close()  # what `head -1` does after its line
    err = p.stderr.read().decode()
    assert p.wait(timeout=TIMEOUT) == 0, err
    assert first and err == ""


def test_detect_width_finds_the_same_faces_in_original_pixels():
    """--detect-width 320 scans a smaller copy; its boxes still come back in the photo's own pixels, on the
    faces the full-width scan finds (within the coarser scan's jitter)."""
    full = json.loads(run_cli("predict", GROUP, "--json").stdout)[0]["faces"]
    small = json.loads(run_cli("predict", GROUP, "--json", "--detect-width", "320").stdout)[0]["faces"]
    assert small and len(small) <= len(full)
    def iou(a, b):
        iw, ih = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
        inter = max(0, iw) * max(0, ih)
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    for f in small:  # HOG's box sizes come in steps, coarser on the smaller copy: overlap, not equality
        assert max(iou(f["box"], g["box"]) for g in full) >= 0.5, (f["box"], [g["box"] for g in full])
    r = run_cli("predict", GROUP, "--detect-width", "10")
    assert r.returncode == 2 and "--detect-width" in r.stderr and "Traceback" not in r.stderr  # a usage error
