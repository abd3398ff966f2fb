"""Frame rate of `dfer-edge watch` on a 640x480 one-face video, with and without tracking.

    .venv/bin/python benchmarks/watch_fps.py [--every 1,5,10,20] [--detectors hog,blazeface] [--cpu 0] [--markdown benchmarks/WATCH.md]

The video is built from KDEF photos (../shared/data/kdef; seven expressions of one subject, moving,
60 frames each) and is not kept. Each setting runs `dfer-edge watch VIDEO --threads 1` pinned to one
core (taskset) and reads the summary the command writes with --summary-json, so the figure is the
command's own: processed frames / processing wall time, excluding model loading.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dfer_edge.bench import cpu_model  # noqa: E402
from dfer_edge.pipeline import STAGES  # noqa: E402
from tests.helpers import write_kdef_video  # noqa: E402  (the same video the tests use)


PI4_SLOWER = (5, 10)  # a Pi 4 core against this machine's, per benchmarks/PI_RUNBOOK.md


def run_watch(video: Path, every: int, cpu: int | None, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as d:
        summary = Path(d) / "summary.json"
        cmd = [sys.executable, "-m", "dfer_edge", "watch", str(video), "--threads", "1", "--detect-every", str(every),
               "--summary-json", str(summary), *extra]
        if cpu is not None and shutil.which("taskset"):
            cmd = ["taskset", "-c", str(cpu), *cmd]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"watch failed: {r.stderr.strip()}")
        return json.loads(summary.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--every", default="1,5,10,20", help="comma list of --detect-every values")
    ap.add_argument("--cpu", type=int, default=0, help="core to pin to (-1: no pinning)")
    ap.add_argument("--hold", type=int, default=60, help="frames per expression (7 expressions)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per setting; the median is reported")
    ap.add_argument("--detectors", default="hog,blazeface", help="comma list of --detector values")
    ap.add_argument("--markdown", type=Path, help="also write the table as Markdown here")
    ap.add_argument("extra", nargs="*", help="further watch options after --, e.g. -- --no-flip-average")
    a = ap.parse_args()
    cpu = None if a.cpu < 0 else a.cpu
    with tempfile.TemporaryDirectory() as d:
        video = Path(d) / "kdef-640x480.mp4"
        n = len(write_kdef_video(video, hold=a.hold))
        rows = []
        for det in a.detectors.split(","):
            for every in [int(x) for x in a.every.split(",")]:
                runs = sorted((run_watch(video, every, cpu, ["--detector", det, *a.extra]) for _ in range(a.repeat)),
                              key=lambda s: s["fps"])
                s = runs[len(runs) // 2]
                rows.append((det, every, s))
                print(f"{det} --detect-every {every:>3}: {s['fps']:7.1f} frames/s  ({s['detections']} detections, "
                      f"ms/frame: " + ", ".join(f"{k} {v:.2f}" for k, v in s["stages_ms"].items()) + ")", flush=True)
    base = next((s["fps"] for d, e, s in rows if e == 1), None)
    lines = [
        "# `dfer-edge watch` frame rate", "",
        f"Command: `.venv/bin/python benchmarks/watch_fps.py --every {a.every} --detectors {a.detectors}"
        + (f" --markdown {a.markdown}" if a.markdown else "") + "`  ",
        f"Video: 640x480, {n} frames, one KDEF face moving and changing expression. One thread"
        + (f", pinned to core {cpu}" if cpu is not None else "") + f"; median of {a.repeat} runs.  ",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.machine()}.",
        "", "| --detector | --detect-every | frames/s | vs HOG every frame | detections | read | " + " | ".join(STAGES)
        + f" | Pi 4 estimate, frames/s ({PI4_SLOWER[0]}-{PI4_SLOWER[1]}x slower) |",
        "|---|---:|---:|---:|---:|---:|" + "---:|" * len(STAGES) + "---:|",
    ]
    for det, every, s in rows:
        st = s["stages_ms"]
        ratio = f"{s['fps'] / base:.1f}x" if base else "-"
        frame_ms = s["read_ms"] + sum(st.values())
        pi = f"{1000 / (frame_ms * PI4_SLOWER[1]):.0f}-{1000 / (frame_ms * PI4_SLOWER[0]):.0f}"
        lines.append(f"| {det} | {every} | {s['fps']:.1f} | {ratio} | {s['detections']} | {s['read_ms']:.2f} | "
                     + " | ".join(f"{st[k]:.2f}" for k in STAGES) + f" | {pi} |")
    lines += ["", "Stage columns are mean ms per processed frame (detection averaged over all frames). The Pi 4 "
              "estimate divides by the sum of the stages and the read, times the 5-10x a Pi 4 core is slower "
              "than this one (benchmarks/PI_RUNBOOK.md has the rows to fill in on a real Pi)."]
    text = "\n".join(lines) + "\n"
    if a.markdown:
        a.markdown.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
