"""`dfer-edge bench`: how long each step of the runtime pipeline takes on this machine.

Per run (one combination of model x interpreter x threads x width x upsample) a Recognizer is built
once; then, after warm-up, every iteration goes over every image twice:

* staged: Recognizer.predict's own pipeline (pipeline.Pipeline.run), made `timed`, so every step's
  seconds are summed under its stage name while it runs exactly as in predict;
* end to end: Recognizer.predict on the encoded bytes, untimed inside.

Stage samples are one per image per iteration (landmarks, crops_features and inference cover every
face of the image). Cold start is measured in a fresh interpreter process (dfer_edge/coldstart.py). Nothing here asserts a
speed: the numbers are for people and for the benchmarks/ notes.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from . import coldstart
from .errors import DferError, ModelError
from .model import SHIPPED_VARIANTS as VARIANTS  # --model NAME -> models/dfer-NAME.tflite
from .options import DEFAULTS, RecognizerOptions
from .pipeline import STAGES, StageTimes
# Short column headings for the table, in STAGES order.
STAGE_HEADINGS = ("decode", "prep", "detect", "lmk", "crops", "infer")
PERCENTILES = (50, 90, 99)
COLD_START_TIMEOUT = 300  # s


class BenchError(DferError):
    """Bad bench arguments (missing image or model, bad matrix value)."""


# --- pure helpers ---------------------------------------------------------------------------------

def percentiles(samples_s: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99 (numpy's linear interpolation) and the mean of durations in seconds, in ms."""
    a = np.asarray(samples_s, dtype=np.float64)
    if a.size == 0:
        raise ValueError("no samples")
    p = np.percentile(a, PERCENTILES) * 1000.0
    out = {f"p{q}_ms": float(v) for q, v in zip(PERCENTILES, p)}
    out["mean_ms"] = float(a.mean() * 1000.0)
    return out


def rate(count: float, total_s: float) -> float:
    """Items per second; 0 when nothing was timed."""
    return float(count / total_s) if total_s > 0 else 0.0


def max_rss_mib(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident set size in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(who).ru_maxrss
    return float(rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024)


def parse_int_list(text: str | None, name: str, lo: int, hi: int | None = None) -> list[int]:
    """'1,2,4' -> [1, 2, 4], each within [lo, hi]; duplicates dropped, order kept."""
    if text is None:
        return []
    out: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            v = int(part)
        except ValueError:
            raise BenchError(f"{name}: {part!r} is not an integer (expected a comma list such as 1,2,4)") from None
        if v < lo or (hi is not None and v > hi):
            rng = f">= {lo}" if hi is None else f"in {lo}..{hi}"
            raise BenchError(f"{name}: {v} is out of range (expected {rng})")
        if v not in out:
            out.append(v)
    if not out:
        raise BenchError(f"{name}: empty list")
    return out


def split_list(values: Iterable[str] | str | None) -> list[str]:
    """Repeated and/or comma-separated option values -> one flat list, duplicates dropped."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    out: list[str] = []
    for v in values:
        for part in str(v).split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return out


def resolve_models(specs: Iterable[str] | str | None, folder: Path | None = None) -> tuple[list[Path], list[str]]:
    """--model values -> (existing model files, warnings). A variant name (SHIPPED_VARIANTS: int8,
    int8-full, dynamic, float16, float32) means dfer-NAME.tflite next to the shipped model (or in `folder`:
    an install may carry only some variants) and is skipped with a warning if absent; a path that does not
    exist is an error. No value: the shipped model."""
    from .model import default_model_path, model_path

    names = split_list(specs)
    if not names:
        return [default_model_path()], []
    paths: list[Path] = []
    warnings: list[str] = []
    for n in names:
        if n in VARIANTS:
            p = model_path(n) if folder is None else folder / f"dfer-{n}.tflite"
            if not p.is_file():
                warnings.append(f"model variant {n}: {p} not found, skipped")
                continue
        else:
            p = Path(n)
            if not p.is_file():
                raise BenchError(f"model file {p} not found (a path to a .tflite, or one of {', '.join(VARIANTS)})")
        if all(p.resolve() != q.resolve() for q in paths):
            paths.append(p)
    if not paths:
        raise BenchError("none of the requested models exists; " + "; ".join(warnings))
    return paths, warnings


def resolve_interpreters(specs: Iterable[str] | str | None) -> tuple[list[str], list[str]]:
    """--interpreter values -> (importable interpreter names, warnings). 'auto' stays 'auto' (the
    Recognizer's choice); a known but absent interpreter is skipped with a warning."""
    from .model import INTERPRETERS, load_interpreter_class

    names = split_list(specs) or ["auto"]
    ok: list[str] = []
    warnings: list[str] = []
    for n in names:
        if n != "auto" and n not in INTERPRETERS:
            raise BenchError(f"unknown interpreter {n!r}; expected auto, {', '.join(INTERPRETERS)}")
        try:
            load_interpreter_class(n)
        except ModelError:
            if n == "auto":
                raise
            warnings.append(f"interpreter {n} is not installed (pip install {INTERPRETERS[n][1]}), skipped")
            continue
        ok.append(n)
    if not ok:
        raise BenchError("none of the requested interpreters is installed; " + "; ".join(warnings))
    return ok, warnings


def default_images() -> list[Path]:
    """The repository's samples/astronaut.jpg, found next to the package; empty if not there."""
    p = Path(__file__).resolve().parent.parent / "samples" / "astronaut.jpg"
    return [p] if p.is_file() else []


# --- configuration --------------------------------------------------------------------------------

def matrix(models: Sequence[Path | str], interpreters: Sequence[str], threads: Sequence[int | None],
           widths: Sequence[int], upsamples: Sequence[int], base: RecognizerOptions = DEFAULTS) -> list[RecognizerOptions]:
    """Every combination, model-major (so runs of one model sit together in the table); the settings
    that are not part of the matrix come from `base`."""
    lm = str(base.landmarks) if base.landmarks else None
    return [base.replace(model=str(m), interpreter=i, threads=t, width=w, upsample=u, landmarks=lm)
            for m in models for i in interpreters for t in (threads or [None])
            for w in widths for u in upsamples]


@dataclass(frozen=True)
class BenchImage:
    name: str
    data: bytes


def read_images(paths: Sequence[str | os.PathLike]) -> list[BenchImage]:
    """Read and check every image up front: a missing or undecodable file is a BenchError."""
    from .image import load_gray, read_bytes

    if not paths:
        raise BenchError("no images given and the sample samples/astronaut.jpg is not available; pass image paths")
    out = []
    for p in paths:
        try:
            data = read_bytes(p)
            load_gray(data, str(p))
        except DferError as e:
            raise BenchError(str(e)) from None
        out.append(BenchImage(str(p), data))
    return out


# --- measuring ------------------------------------------------------------------------------------

def _staged(pipe, times: StageTimes, data: bytes) -> tuple[list[float], list]:
    """One pass of predict's pipeline with every stage timed -> (seconds per stage, faces' inputs)."""
    times.reset()
    _, found = pipe.run(data)
    return [times.seconds[s] for s in STAGES], [f.inputs for f in found]


def _model_call(rec, inputs) -> float:
    """One call of the expression model on one face's inputs (what the ≤ 0.5 ms inference budget is
    about): the inference stage makes two per face when flip averaging is on."""
    t0 = time.perf_counter()
    rec.model(inputs)
    return time.perf_counter() - t0


def _end_to_end(rec, data: bytes) -> tuple[float, int]:
    t0 = time.perf_counter()
    faces = rec.predict(data)
    return time.perf_counter() - t0, len(faces)


def cold_start(options: RecognizerOptions, image: str | os.PathLike) -> dict[str, Any]:
    """Launch a fresh interpreter that imports dfer_edge, builds a Recognizer with `options` and
    predicts `image` (a path: reading the file is part of a cold start); see coldstart.py.

    total_s runs from just before the launch to the child's first result, so interpreter start-up
    is included and the child's exit is not; process_s is the wall time of the whole subprocess.run.
    Raises BenchError with the child's last stderr line if it fails."""
    env = dict(os.environ)
    env.pop("DFER_VERBOSE", None)
    pkg_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    arg = json.dumps({"options": options.to_dict(), "image": str(image)})
    launched = time.time()
    p0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, coldstart.__file__, arg], capture_output=True, text=True,
                              env=env, timeout=COLD_START_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise BenchError(f"cold-start process did not finish within {COLD_START_TIMEOUT} s") from None
    process_s = time.perf_counter() - p0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(coldstart.PREFIX)]
    if proc.returncode != 0 or not lines:
        err = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        raise BenchError(f"cold-start process failed (exit {proc.returncode}): {err[-1] if err else 'no output'}")
    return coldstart.timings(json.loads(lines[-1][len(coldstart.PREFIX):]), launched, process_s)


def run_one(config: RecognizerOptions, images: Sequence[BenchImage], iterations: int = 30, warmup: int = 3,
            measure_cold_start: bool = True, image_paths: Sequence[str | os.PathLike] | None = None,
            progress: Callable[[int], None] | None = None, scenes: int = 0) -> dict[str, Any]:
    """Benchmark one configuration. `progress(1)` is called after every (warm-up) iteration. With
    `scenes`, also the detection recall on that many generated scenes (dfer_edge/scenes.py)."""
    from .recognizer import Recognizer

    if iterations < 1:
        raise BenchError("iterations must be >= 1")
    if warmup < 0:
        raise BenchError("warmup must be >= 0")
    if not images:
        raise BenchError("no images to benchmark")
    rec = Recognizer(config)
    times = StageTimes()
    pipe = rec.pipeline.timed(times)
    try:
        model_path = Path(rec.model.path)
        interp = {"name": rec.model.interpreter_name, "version": rec.model.interpreter_version}
        for _ in range(warmup):
            for im in images:
                _staged(pipe, times, im.data)
                _end_to_end(rec, im.data)
            if progress:
                progress(1)
        stage_samples: list[list[float]] = [[] for _ in STAGES]
        e2e: list[float] = []
        model_calls: list[float] = []
        faces_per_pass = [0] * len(images)
        e2e_faces = 0
        for _ in range(iterations):
            for k, im in enumerate(images):
                seconds, inputs = _staged(pipe, times, im.data)
                for s, t in zip(stage_samples, seconds):
                    s.append(t)
                faces_per_pass[k] = len(inputs)
                if inputs:
                    model_calls.append(_model_call(rec, inputs[0]))
                t, n_e2e = _end_to_end(rec, im.data)
                e2e.append(t)
                e2e_faces += n_e2e
            if progress:
                progress(1)
        detection = None
        if scenes:
            from .scenes import detection_summary

            try:
                detection = detection_summary(rec.predict, scenes).to_dict()
            except FileNotFoundError as e:
                raise BenchError(f"--scenes needs the shared data: {e}") from None
    finally:
        rec.close()
    del rec, pipe
    total_s = float(sum(e2e))
    end_to_end = percentiles(e2e)
    end_to_end.update(images_per_s=rate(len(e2e), total_s), faces_per_s=rate(e2e_faces, total_s))
    cold = None
    if measure_cold_start:
        cold = cold_start(config, image_paths[0]) if image_paths else None
    cfg = config.to_dict()
    cfg.update(model_name=model_path.stem, images=[im.name for im in images],
               iterations=iterations, warmup=warmup)
    return {
        "config": cfg,
        "stages": {name: percentiles(s) for name, s in zip(STAGES, stage_samples)},
        "end_to_end": end_to_end,
        "model_call": percentiles(model_calls) if model_calls else None,
        "cold_start_s": cold["total_s"] if cold else None,
        "cold_start": cold,
        "peak_rss_mib": max_rss_mib(),  # this process's high-water mark so far (it only grows)
        "model_size_kib": model_path.stat().st_size / 1024,
        "interpreter": interp,
        "faces": int(sum(faces_per_pass)),
        "faces_per_image": {im.name: n for im, n in zip(images, faces_per_pass)},
        "detection": detection,
    }


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name") and ":" in line:
                    return line.split(":", 1)[1].strip()
                if line.startswith("Model") and ":" in line:  # Raspberry Pi: the board, if no model name
                    board = line.split(":", 1)[1].strip()
                    return board
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_info() -> dict[str, Any]:
    return {"cpu": cpu_model(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform()}


def run_bench(image_paths: Sequence[str | os.PathLike], configs: Sequence[RecognizerOptions], iterations: int = 30,
              warmup: int = 3, measure_cold_start: bool = True,
              progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Every configuration on the same images -> {"runs": [...], "machine": {...}} (the --json document)."""
    images = read_images(image_paths)
    runs = [run_one(c, images, iterations, warmup, measure_cold_start, image_paths, progress) for c in configs]
    return {"runs": runs, "machine": machine_info()}


# --- reporting ------------------------------------------------------------------------------------

def _threads_text(t: int | None) -> str:
    return "dflt" if t is None else str(t)


def format_table(report: dict[str, Any]) -> str:
    """One row per run: config, end-to-end percentiles, per-stage medians, faces/s, cold start, RSS."""
    head = (["model", "interp", "det", "thr", "width", "ups", "faces", "e2e p50", "p90", "p99"]
            + list(STAGE_HEADINGS) + ["model", "faces/s", "cold s", "RSS MiB"])
    with_recall = any(r.get("detection") for r in report["runs"])
    if with_recall:
        head += ["R36", "R80", "fp/20"]
    rows = []
    for r in report["runs"]:
        c, e = r["config"], r["end_to_end"]
        cold = "-" if r.get("cold_start_s") is None else f"{r['cold_start_s']:.2f}"
        d = r.get("detection")
        det = c.get("detector", "hog") + ("+small" if c.get("small_faces") is not False else "")
        rows.append([c["model_name"], r["interpreter"]["name"], det, _threads_text(c["threads"]),
                     f"{c['width']}" + (f"/{c['detect_width']}" if c.get("detect_width") else ""),
                     str(c["upsample"]), str(r["faces"]), f"{e['p50_ms']:.1f}", f"{e['p90_ms']:.1f}", f"{e['p99_ms']:.1f}"]
                    + [f"{r['stages'][s]['p50_ms']:.2f}" for s in STAGES]
                    + ["-" if not r.get("model_call") else f"{r['model_call']['p50_ms']:.2f}"]
                    + [f"{e['faces_per_s']:.1f}", cold, f"{r['peak_rss_mib']:.0f}"]
                    + ([f"{100 * d['recall_36']:.1f}", f"{100 * d['recall_80']:.1f}", f"{d['false_per_20']:.2f}"]
                       if d else ["-"] * 3 if with_recall else []))
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head)]
    left = 3  # model, interpreter and detector names are left-aligned, numbers right-aligned

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    out = [line(head)] + [line(row) for row in rows]
    m = report["machine"]
    notes = [f"machine: {m['cpu']} ({m.get('cpus', '?')} CPUs), Python {m['python']}, {m['platform']}"]
    if report["runs"]:
        c0 = report["runs"][0]["config"]
        notes.append(f"images: {', '.join(c0['images'])}; {c0['iterations']} iterations after "
                     f"{c0['warmup']} warm-up; faces: found per pass over the images")
        for r in report["runs"]:
            notes_model = f"{r['config']['model_name']}: {r['config']['model']} ({r['model_size_kib']:.0f} KiB)"
            if notes_model not in notes:
                notes.append(notes_model)
        interps = sorted({f"{r['interpreter']['name']} {r['interpreter']['version']}" for r in report["runs"]})
        notes.append("interpreter: " + ", ".join(interps))
    notes.append("times in ms; stage columns are medians per image; model: one model call on one face "
                 "(infer makes two per face with flip averaging); faces/s from end to end; "
                 "RSS is this process's peak so far; cold start includes interpreter start-up"
                 + ("; R36/R80: % of faces at least 36/80 px wide found in the generated scenes, fp/20: false "
                    "faces per 20 face-free images (dfer_edge/scenes.py, seed 0)" if with_recall else ""))
    return "\n".join(out + [""] + notes)
