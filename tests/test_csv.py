"""`--csv` for `predict` and `watch`: a header, one row per face, the same numbers as the JSON records,
a row with empty face columns for no face, and for `predict` an `error` column. Real photos and a short
video made here from real KDEF frames."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from dfer_edge.labels import LABELS
from dfer_edge.results import FRAME_CSV_HEADER, RESULT_CSV_HEADER
from tests.helpers import KDEF, PHOTOS, kdef_frames, run_cli

ANGRY, GROUP, NON_FACE = PHOTOS / "angry.jpg", PHOTOS / "group.jpeg", PHOTOS / "non_face.jpg"
FACE_COLUMNS = ["x1", "y1", "x2", "y2", "label", "score", *LABELS, "iod_px", "yaw", "pitch", "roll", "looking"]
BLANK_FRAMES = 6  # frames without a face before the KDEF subject appears


cli = run_cli


def rows_of(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    return header, [dict(zip(header, r, strict=True)) for r in reader]


def same_face(row: dict[str, str], face: dict) -> None:
    """A CSV row carries exactly the JSON face: box, label, score, the seven probabilities, the head pose."""
    assert [int(row[k]) for k in ("x1", "y1", "x2", "y2")] == face["box"]
    assert row["label"] == face["label"] and float(row["score"]) == face["score"]
    assert [float(row[lab]) for lab in LABELS] == [face["probabilities"][lab] for lab in LABELS]
    assert float(row["iod_px"]) == face["iod_px"] > 0
    assert [float(row[k]) for k in ("yaw", "pitch", "roll")] == [face["pose"][k] for k in ("yaw", "pitch", "roll")]
    assert row["looking"] == str(int(face["looking"]))


# --- predict --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> list[Path]:
    for p in (ANGRY, GROUP, NON_FACE):
        if not p.is_file():
            pytest.skip(f"shared test data not available: {p}")
    missing = tmp_path_factory.mktemp("csv") / "missing, with comma.jpg"  # a name that needs quoting
    return [ANGRY, NON_FACE, missing, GROUP]


def test_predict_csv_rows_match_the_json(inputs):
    p = cli("predict", *inputs, "--csv", "--upsample", "1")
    j = cli("predict", *inputs, "--json", "--upsample", "1")
    assert p.returncode == j.returncode == 1  # the missing file
    assert p.stderr == j.stderr and len(p.stderr.splitlines()) == 1 and p.stderr.startswith(f"error: {inputs[2]}")
    header, rows = rows_of(p.stdout)
    assert header == ["path", "face", *FACE_COLUMNS, "error"] == list(RESULT_CSV_HEADER)
    records = json.loads(j.stdout)
    expected_rows = sum(max(1, len(r["faces"])) for r in records)
    assert len(rows) == expected_rows
    # Rows come in input order, one per face (largest first, as in the JSON).
    assert [r["path"] for r in rows] == [rec["path"] for rec in records for _ in range(max(1, len(rec["faces"])))]
    by_path = {rec["path"]: rec for rec in records}
    for path in (ANGRY, GROUP):
        mine = [r for r in rows if r["path"] == str(path)]
        assert len(mine) == len(by_path[str(path)]["faces"]) >= 1
        for i, (row, face) in enumerate(zip(mine, by_path[str(path)]["faces"])):
            assert row["face"] == str(i) and row["error"] == ""
            same_face(row, face)
            assert abs(sum(float(row[lab]) for lab in LABELS) - 1.0) <= 1e-3
    [no_face] = [r for r in rows if r["path"] == str(NON_FACE)]
    assert all(no_face[k] == "" for k in ["face", *FACE_COLUMNS, "error"])
    [bad] = [r for r in rows if r["path"] == str(inputs[2])]
    assert all(bad[k] == "" for k in ["face", *FACE_COLUMNS])
    assert bad["error"] == by_path[str(inputs[2])]["error"] and str(inputs[2]) in bad["error"]


@pytest.mark.parametrize("other", ["--json", "--jsonl"])
def test_predict_csv_excludes_json(other):
    p = cli("predict", ANGRY, "--csv", other)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.startswith("error:") and len(p.stderr.splitlines()) == 1


# --- watch ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def video(tmp_path_factory) -> tuple[Path, int]:
    """BLANK_FRAMES gray frames, then one KDEF subject through the seven expressions, 2 frames each."""
    if not KDEF.is_dir():
        pytest.skip(f"shared test data not available: {KDEF}")
    path = tmp_path_factory.mktemp("csv-video") / "short.mp4"
    frames = [f for f, _ in kdef_frames(hold=2)]
    rng = np.random.default_rng(0)
    blank = [np.clip(128 + rng.normal(0, 3, frames[0].shape), 0, 255).astype(np.uint8) for _ in range(BLANK_FRAMES)]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (frames[0].shape[1], frames[0].shape[0]))
    assert writer.isOpened()
    for f in blank + frames:
        writer.write(f)
    writer.release()
    return path, len(blank) + len(frames)


def test_watch_csv_rows_match_the_jsonl(video):
    path, n = video
    p = cli("watch", path, "--csv", "--detect-every", "3")
    j = cli("watch", path, "--jsonl", "--detect-every", "3")
    assert p.returncode == j.returncode == 0, p.stderr
    header, rows = rows_of(p.stdout)
    assert header == ["frame", "t", "detected", "id", *FACE_COLUMNS] == list(FRAME_CSV_HEADER)
    frames = [json.loads(line) for line in j.stdout.splitlines()]
    assert len(frames) == n
    assert len(rows) == sum(max(1, len(f["faces"])) for f in frames)
    assert sorted({int(r["frame"]) for r in rows}) == [f["frame"] for f in frames]  # every frame has a row
    it = iter(rows)
    for f in frames:
        for face in f["faces"] or [None]:
            row = next(it)
            assert int(row["frame"]) == f["frame"] and float(row["t"]) == f["t"]
            assert row["detected"] == str(int(f["detected"]))
            if face is None:
                assert all(row[k] == "" for k in ["id", *FACE_COLUMNS])
            else:
                assert int(row["id"]) == face["id"]
                same_face(row, face)
    assert not frames[0]["faces"]  # the blank start: empty face columns, checked above
    assert sum(bool(f["faces"]) for f in frames[BLANK_FRAMES:]) >= n - BLANK_FRAMES - 2


def test_watch_csv_excludes_jsonl(video):
    p = cli("watch", video[0], "--csv", "--jsonl")
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.startswith("error:") and len(p.stderr.splitlines()) == 1
