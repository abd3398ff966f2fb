"""`--workers N`: several processes, each with its own recognizer, give the same bytes as one, in input
order, and one bad file does not cost the others their results. Also the progress bar: on stderr when
asked for, never in stdout. Real photos (KDEF, FER2013 val, the shared photos), the real pipeline."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dfer_edge.errors import DferError
from dfer_edge.labels import LABELS, canonical_label
from dfer_edge.workers import Workers, cpu_count, resolve
from tests.helpers import KDEF, PHOTOS, run_cli

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 600
PER_LABEL = 3  # KDEF photos per expression: 21 in all, enough for several chunks per worker


def cli(*args: object) -> subprocess.CompletedProcess:
    return run_cli(*args, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def kdef_tree(tmp_path_factory) -> Path:
    """<label>/<file> symlinks to the first PER_LABEL straight-view KDEF photos of each expression."""
    if not KDEF.is_dir():
        pytest.skip(f"shared test data not available: {KDEF}")
    root = tmp_path_factory.mktemp("kdef")
    for folder in sorted(p for p in KDEF.iterdir() if p.is_dir() and canonical_label(p.name)):
        (root / folder.name).mkdir()
        for f in sorted(folder.glob("*S.jpg"))[:PER_LABEL]:  # straight views: HOG finds them
            (root / folder.name / f.name).symlink_to(f)
    return root


@pytest.fixture(scope="module")
def batch(kdef_tree, tmp_path_factory) -> list[Path]:
    """The KDEF photos with, in the middle, a truncated JPEG and the shared group and no-face photos."""
    photos = sorted(kdef_tree.glob("*/*.jpg"))
    bad = tmp_path_factory.mktemp("bad") / "truncated.jpg"
    data = photos[0].read_bytes()
    bad.write_bytes(data[: len(data) // 3])
    extra = [p for p in (PHOTOS / "group.jpeg", PHOTOS / "non_face.jpg") if p.is_file()]
    half = len(photos) // 2
    return photos[:half] + [bad, *extra] + photos[half:]


@pytest.fixture(scope="module")
def predict_runs(batch) -> dict[int, subprocess.CompletedProcess]:
    return {w: cli("predict", *batch, "--json", "--workers", w) for w in (1, 2)}


# --- the pool itself ----------------------------------------------------------------------------

def test_worker_counts():
    assert resolve(0) == cpu_count() >= 1
    assert resolve(3) == 3
    assert resolve(4, items=2) == 2 and resolve(0, items=1) == 1
    with pytest.raises(DferError):
        resolve(-1)
    if hasattr(os, "sched_getaffinity"):
        assert cpu_count() == len(os.sched_getaffinity(0))


def _square(state: int, x: int) -> tuple[int, int]:
    return os.getpid(), state * x * x


def _broken_setup() -> int:
    raise DferError("no models here")


def test_pool_keeps_input_order_and_runs_in_other_processes():
    with Workers(2, int, (3,)) as pool:
        got = list(pool.map(_square, range(50), chunksize=3))
    assert [v for _, v in got] == [3 * x * x for x in range(50)]
    assert os.getpid() not in {pid for pid, _ in got}
    with Workers(1, int, (3,)) as pool:  # one worker: this process, no pool
        assert {pid for pid, _ in pool.map(_square, range(5))} == {os.getpid()}


def test_a_worker_that_cannot_set_up_fails_the_run_once():
    with pytest.raises(DferError, match="no models here"):
        with Workers(2, _broken_setup) as pool:
            list(pool.map(_square, range(10)))


# --- predict --------------------------------------------------------------------------------------

def test_predict_two_workers_give_the_same_bytes_as_one(predict_runs, batch):
    one, two = predict_runs[1], predict_runs[2]
    assert one.returncode == two.returncode == 1  # the truncated file
    assert two.stdout == one.stdout
    assert two.stderr == one.stderr
    out = json.loads(two.stdout)
    assert [r["path"] for r in out] == [str(p) for p in batch]  # input order


def test_one_bad_file_keeps_the_others_results(predict_runs, batch):
    p = predict_runs[2]
    [line] = p.stderr.splitlines()
    bad = next(x for x in batch if x.name == "truncated.jpg")
    assert line.startswith(f"error: {bad}") and "Traceback" not in p.stderr
    out = {r["path"]: r for r in json.loads(p.stdout)}
    assert out[str(bad)]["error"] and out[str(bad)]["faces"] == []
    good = [r for path, r in out.items() if path != str(bad)]
    assert all(r["error"] is None for r in good)
    kdef = [r for r in good if Path(r["path"]).name not in ("group.jpeg", "non_face.jpg")]
    assert sum(len(r["faces"]) >= 1 for r in kdef) >= len(kdef) - 1


def test_workers_0_uses_every_core_and_gives_the_same_results(predict_runs, batch):
    p = cli("predict", *batch, "--jsonl", "--workers", 0)
    assert p.returncode == 1
    assert [json.loads(line) for line in p.stdout.splitlines()] == json.loads(predict_runs[1].stdout)


# --- evaluate -------------------------------------------------------------------------------------

def test_evaluate_two_workers_give_the_same_json_as_one(kdef_tree, tmp_path):
    """Detection, the landmark stability of --condition and its per-condition pass all go through the
    workers; the JSON (metrics, confusion, reliability, conditions) is the same to the byte."""
    outs = {}
    for w in (1, 2):
        outs[w] = tmp_path / f"m{w}.json"
        p = cli("evaluate", kdef_tree, "--condition", "jpeg20", "--json", outs[w], "--workers", w)
        assert p.returncode == 0, p.stderr
        assert p.stderr == ""  # no progress bar when stderr is not a terminal
        assert "capture condition" in p.stdout
    assert outs[2].read_bytes() == outs[1].read_bytes()
    m = json.loads(outs[2].read_text())
    assert m["n"] == PER_LABEL * len(LABELS) and [r["condition"] for r in m["conditions"]] == ["clean", "jpeg20"]


# --- progress -------------------------------------------------------------------------------------

def test_progress_goes_to_stderr_never_to_stdout(batch, predict_runs):
    p = cli("predict", *batch, "--json", "--workers", 2, "--progress")
    assert p.stdout == predict_runs[1].stdout  # the JSON, exactly, bar or not
    n = len(batch)
    last = p.stderr.splitlines()[-1]
    assert last.startswith(f"predicting: {n}/{n} files, ") and " faces, " in last and "files/s" in last
    assert p.stderr.count("error:") == 1  # the truncated file, once
    quiet = cli("predict", *batch, "--csv", "--workers", 2, "--no-progress")
    shown = cli("predict", *batch, "--csv", "--workers", 2, "--progress")
    assert shown.stdout == quiet.stdout and "predicting" not in shown.stdout
    assert "predicting" in shown.stderr and "predicting" not in quiet.stderr


def test_evaluate_progress_on_request(kdef_tree):
    p = cli("evaluate", kdef_tree, "--progress", "--workers", 2)
    assert p.returncode == 0, p.stderr
    n = PER_LABEL * len(LABELS)
    assert p.stderr.splitlines()[-1].startswith(f"evaluating: {n}/{n} files")
    assert "evaluating" not in p.stdout and p.stdout.startswith("folder labels:")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pseudo-terminal test")
def test_bar_on_a_terminal_stays_out_of_piped_json(batch, predict_runs):
    """stderr a terminal, stdout a pipe: by default the live bar draws on the terminal and the JSON
    on stdout is unchanged."""
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "dfer_edge", "predict", *map(str, batch), "--json", "--workers", "2"],
                         cwd=REPO, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    stdout = p.stdout.read()
    p.wait(TIMEOUT)
    os.close(master)
    assert stdout.decode() == predict_runs[1].stdout
    text = seen.decode(errors="replace")
    assert "predicting" in text and f"{len(batch)}/{len(batch)}" in text and "files/s" in text
    assert "error: " in text and "truncated.jpg" in text  # printed above the bar


# --- convert extract goes through the same pool ---------------------------------------------------

def test_extract_with_two_workers_matches_one(kdef_tree, tmp_path):
    from convert.extract import extract
    from convert.readers import Sample

    samples = [Sample(str(p), LABELS.index(canonical_label(p.parent.name))) for p in sorted(kdef_tree.glob("*/*.jpg"))]
    samples.insert(4, Sample(str(tmp_path / "missing.jpg"), 0))
    counts = {w: extract(samples, tmp_path / f"x{w}.npz", crops=False, workers=w, small_faces=False, progress=False)
              for w in (1, 2)}
    assert counts[1] == counts[2] and counts[2]["error"] == 1 and counts[2]["ok"] >= len(samples) - 4
    a, b = np.load(tmp_path / "x1.npz"), np.load(tmp_path / "x2.npz")
    assert set(a.files) == set(b.files)
    for k in a.files:
        assert np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f"), k  # votes: NaN without FER+
