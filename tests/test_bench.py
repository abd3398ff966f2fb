"""`dfer-edge bench`: the report's structure and the command's behaviour, never its speed (speed goals
are measured by benchmarks, not asserted). Iterations are kept to 1-2 so the whole file runs in seconds;
the cold-start subprocess is exercised once, by the CLI test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dfer_edge import bench
from dfer_edge.errors import LandmarkModelError
from dfer_edge.landmarks import find_landmark_model
from dfer_edge.model import INTERPRETERS, default_model_path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "astronaut.jpg"
SHARED_PHOTOS = Path(__file__).resolve().parents[2] / "shared/data/photos"
GROUP = SHARED_PHOTOS / "group.jpeg"
TIMEOUT = 300
PCT = ("p50_ms", "p90_ms", "p99_ms")


def need_landmarks() -> None:
    try:
        find_landmark_model()
    except LandmarkModelError as e:
        pytest.skip(f"dlib landmark model not available: {e}")


def need_file(p: Path) -> Path:
    if not p.is_file():
        pytest.skip(f"test image not available: {p}")
    return p


def run_cli(*args, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DFER_VERBOSE"}
    return subprocess.run([sys.executable, "-m", "dfer_edge", "bench", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)


def check_percentiles(d: dict) -> None:
    for k in PCT:
        assert isinstance(d[k], float) and d[k] > 0, (k, d)
    assert d["p50_ms"] <= d["p90_ms"] <= d["p99_ms"]


def check_run(run: dict, images: list[Path]) -> None:
    """One entry of report["runs"] as documented."""
    assert {"config", "stages", "end_to_end", "cold_start_s", "peak_rss_mib", "model_size_kib",
            "interpreter", "faces"} <= set(run)
    assert list(run["stages"]) == list(bench.STAGES)
    assert set(bench.STAGES) == {"decode", "preprocess", "detect", "landmarks", "crops_features", "inference"}
    for s in bench.STAGES:
        check_percentiles(run["stages"][s])
    e2e = run["end_to_end"]
    check_percentiles(e2e)
    check_percentiles(run["model_call"])  # one model call on one face (every image here has a face)
    assert e2e["images_per_s"] > 0 and e2e["faces_per_s"] > 0
    assert run["faces"] >= 1
    assert run["peak_rss_mib"] > 0 and run["model_size_kib"] > 0
    assert run["interpreter"]["name"] in INTERPRETERS and run["interpreter"]["version"]
    assert run["config"]["images"] == [str(p) for p in images]


def check_machine(m: dict) -> None:
    assert m["cpu"] and m["python"] and m["platform"]


# --- the bench function on real photos --------------------------------------------------------------

@pytest.fixture(scope="module")
def two_threads_report() -> tuple[dict, list[Path]]:
    need_landmarks()
    images = [need_file(SAMPLE)]
    configs = bench.matrix([default_model_path()], ["auto"], [1, 2], [512], [0])
    return bench.run_bench(images, configs, iterations=2, warmup=1, measure_cold_start=False), images


def test_report_structure(two_threads_report):
    report, images = two_threads_report
    assert set(report) == {"runs", "machine"}
    check_machine(report["machine"])
    for run in report["runs"]:
        check_run(run, images)
        assert run["cold_start_s"] is None  # disabled
    json.dumps(report)  # the --json document is plain JSON


def test_config_echoes_the_matrix(two_threads_report):
    report, _ = two_threads_report
    assert [r["config"]["threads"] for r in report["runs"]] == [1, 2]
    for r in report["runs"]:
        c = r["config"]
        assert (c["width"], c["upsample"], c["iterations"], c["warmup"]) == (512, 0, 2, 1)
        assert Path(c["model"]) == default_model_path()


def test_table_has_a_row_per_run(two_threads_report):
    report, _ = two_threads_report
    lines = bench.format_table(report).splitlines()
    assert lines[0].split()[:7] == ["model", "interp", "det", "thr", "width", "ups", "faces"]
    assert [ln.split()[2:4] for ln in lines[1:3]] == [["hog+small", "1"], ["hog+small", "2"]]


def test_group_photo_two_images_two_widths():
    need_landmarks()
    images = [need_file(SAMPLE), need_file(GROUP)]
    configs = bench.matrix([default_model_path()], ["auto"], [1], [320, 512], [0])
    report = bench.run_bench(images, configs, iterations=1, warmup=0, measure_cold_start=False)
    assert [r["config"]["width"] for r in report["runs"]] == [320, 512]
    for run in report["runs"]:
        check_run(run, images)
        assert set(run["faces_per_image"]) == {str(p) for p in images}
        assert run["faces"] == sum(run["faces_per_image"].values())


# --- the command ----------------------------------------------------------------------------------

def test_cli_writes_the_documented_json(tmp_path):
    """The one test that pays for the cold-start process."""
    need_landmarks()
    need_file(SAMPLE)
    out = tmp_path / "out.json"
    r = run_cli("--threads", "1", "--iterations", "2", "--warmup", "0", "--json", out)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    report = json.loads(out.read_text())
    check_machine(report["machine"])
    assert len(report["runs"]) == 1
    run = report["runs"][0]
    check_run(run, [SAMPLE])
    assert run["config"]["threads"] == 1 and run["config"]["iterations"] == 2
    assert run["cold_start_s"] > 0
    cold = run["cold_start"]
    assert cold["faces"] == run["faces_per_image"][str(SAMPLE)]
    assert cold["peak_rss_mib"] > 0
    assert 0 < cold["total_s"] <= cold["process_s"]
    # The screen table: a heading and one row for the one run.
    lines = r.stdout.splitlines()
    assert lines[0].startswith("model") and lines[1].startswith("dfer-int8")


@pytest.mark.parametrize("args, words", [
    (["missing.jpg"], ["missing.jpg", "no such file"]),
    (["samples/astronaut.jpg", "--model", "missing.tflite"], ["missing.tflite", "not found"]),
    (["samples/astronaut.jpg", "--threads", "1,x"], ["--threads"]),
    (["README.md"], ["README.md", "not a readable image"]),
])
def test_cli_bad_input_is_one_line_and_exit_2(args, words):
    r = run_cli(*args, "--iterations", "1", "--warmup", "0", "--no-cold-start")
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert all(w in lines[0] for w in words), lines[0]


# --- pure parts -----------------------------------------------------------------------------------

def test_percentiles_in_ms():
    p = bench.percentiles([0.004, 0.001, 0.002, 0.003, 0.005])
    assert p["p50_ms"] == pytest.approx(3.0)
    assert p["p90_ms"] == pytest.approx(4.6)
    assert p["p99_ms"] == pytest.approx(4.96)
    assert p["mean_ms"] == pytest.approx(3.0)
    with pytest.raises(ValueError):
        bench.percentiles([])


def test_rate():
    assert bench.rate(10, 2.0) == 5.0
    assert bench.rate(3, 0.0) == 0.0


def test_parse_int_list():
    assert bench.parse_int_list("1,2,4", "--threads", 1) == [1, 2, 4]
    assert bench.parse_int_list(" 2, 2 ,1,", "--threads", 1) == [2, 1]
    for bad in ("0", "x", ",", "5"):
        with pytest.raises(bench.BenchError):
            bench.parse_int_list(bad, "--upsample", 1, 3)


def test_matrix_is_the_product():
    configs = bench.matrix(["a.tflite", "b.tflite"], ["litert"], [1, 2, 4], [320, 512], [0, 1])
    assert len(configs) == 2 * 3 * 2 * 2
    assert len(set(configs)) == len(configs)
    assert bench.matrix(["a.tflite"], ["auto"], [], [512], [0])[0].threads is None


def test_resolve_models():
    assert bench.resolve_models(None) == ([default_model_path()], [])
    paths, warnings = bench.resolve_models(["int8", str(default_model_path())])
    assert paths == [default_model_path()] and warnings == []  # the same file once
    shipped, warnings = bench.resolve_models(list(bench.VARIANTS))
    assert warnings == [] and len(shipped) == len(bench.VARIANTS)  # every variant ships


def test_resolve_models_skips_a_variant_an_install_lacks(tmp_path):
    int8 = tmp_path / "dfer-int8.tflite"
    int8.write_bytes(default_model_path().read_bytes())  # an install that carries the int8 model only
    paths, warnings = bench.resolve_models("int8,float16", tmp_path)
    assert paths == [int8]
    assert warnings == [f"model variant float16: {tmp_path / 'dfer-float16.tflite'} not found, skipped"]
    with pytest.raises(bench.BenchError, match="none of the requested models exists"):
        bench.resolve_models(["float16"], tmp_path)
    with pytest.raises(bench.BenchError, match="not found"):
        bench.resolve_models(["no/such/model.tflite"])


def test_resolve_interpreters():
    names, warnings = bench.resolve_interpreters("litert,tflite-runtime")
    try:
        import tflite_runtime.interpreter  # noqa: F401
        assert names == ["litert", "tflite-runtime"] and warnings == []
    except ImportError:
        assert names == ["litert"] and len(warnings) == 1 and "tflite-runtime" in warnings[0]
    with pytest.raises(bench.BenchError, match="unknown interpreter"):
        bench.resolve_interpreters(["nope"])


def test_read_images_errors(tmp_path):
    with pytest.raises(bench.BenchError, match="no such file"):
        bench.read_images([tmp_path / "missing.jpg"])
    with pytest.raises(bench.BenchError, match="no images"):
        bench.read_images([])


def test_default_image_is_the_sample():
    assert bench.default_images() == ([SAMPLE] if SAMPLE.is_file() else [])
