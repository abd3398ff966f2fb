"""Cold start, measured from inside a fresh process: run this file as a script, by path, so that
importing dfer_edge is part of what it times (`python -m` would import the package first).

    python .../dfer_edge/coldstart.py '{"options": {...RecognizerOptions...}, "image": "photo.jpg"}'

It prints one line, PREFIX + JSON: wall-clock stamps (start, imported, loaded, first_result), the
number of faces and the peak resident memory. `dfer-edge bench` and benchmarks/compare_fer.py both
launch it and turn the stamps into durations with `timings`. Standard library only at module level,
so that compare_fer.py (which runs without our dependencies) can load it by path.
"""

from __future__ import annotations

import json
import resource
import sys
import time

PREFIX = "DFER-BENCH "


def peak_rss_mib() -> float:
    """This process's own high-water mark (VmHWM). ru_maxrss can carry the parent's over fork+exec, so
    it is only the fallback where /proc is missing."""
    try:
        with open("/proc/self/status") as f:
            hwm = [line for line in f if line.startswith("VmHWM:")][0]
        return int(hwm.split()[1]) / 1024
    except (OSError, IndexError, ValueError):
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def timings(stamps: dict, launched: float, process_s: float) -> dict:
    """The child's stamps -> durations. total_s runs from the launch (the parent's clock) to the first
    result; if the wall clock stepped in between, the launch-to-exit time stands in."""
    total = stamps["first_result"] - launched
    if not 0 < total <= process_s:
        total = process_s
    return {"total_s": total, "process_s": process_s,
            "interpreter_start_s": max(0.0, stamps["start"] - launched),
            "import_s": stamps["imported"] - stamps["start"], "load_s": stamps["loaded"] - stamps["imported"],
            "first_predict_s": stamps["first_result"] - stamps["loaded"],
            "peak_rss_mib": float(stamps["peak_rss_mib"]), "faces": int(stamps["faces"])}


def child(arg: str, started: float) -> None:
    cfg = json.loads(arg)
    from dfer_edge import Recognizer, RecognizerOptions

    imported = time.time()
    rec = Recognizer(RecognizerOptions(**cfg["options"]))
    loaded = time.time()
    faces = rec.predict(cfg["image"])
    first = time.time()
    print(PREFIX + json.dumps({"start": started, "imported": imported, "loaded": loaded, "first_result": first,
                               "faces": len(faces), "peak_rss_mib": peak_rss_mib()}))


if __name__ == "__main__":
    _started = time.time()
    sys.path.pop(0)  # this file's folder: its module names (image, model, ...) must not shadow others
    child(sys.argv[1], _started)
