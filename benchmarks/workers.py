"""Throughput of `dfer-edge predict --workers N` on real photos: one process against several.

    .venv/bin/python benchmarks/workers.py [--images 400] [--workers 1,2] [--rounds 2] [--markdown benchmarks/WORKERS.md]

The photos are an evenly spaced subset of KDEF (../shared/data/kdef, 2,348 photos of 337x457 in
<label>/ folders), linked into a temporary folder. Every setting runs the command as users run it,
`dfer-edge predict FOLDER --jsonl --workers N --no-progress`, in a subprocess; the runs of one round
alternate their order (1, 2, then 2, 1 in the next round), so a machine whose speed drifts during the
run (this VM drifts by up to 30%, and other jobs may share it) drifts against both equally. Two
figures per run: end to end (process start to exit, so model loading in every worker counts) and
steady (from the first result line on stdout to the last, which is what a long batch sees). Every run's
output is checked to be the same as the first run's, byte for byte.

Two configurations: the defaults (HOG plus the second look for small faces, whose BlazeFace pass runs
on a second thread, so one worker already uses part of a second core) and `--no-small-faces` (one
thread per worker: the clean test of process scaling).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dfer_edge.bench import cpu_model  # noqa: E402
from dfer_edge.workers import Workers, cpu_count  # noqa: E402
from tests.helpers import KDEF  # noqa: E402

PI4_SLOWER = (5, 10)  # a Pi 4 core against this machine's, per benchmarks/PI_RUNBOOK.md
PI4_CORES = 4
# name: (extra arguments, pinned). Pinned: each run may use only as many cores as it has workers (the
# first N of this process's), so a single worker cannot spread BlazeFace's thread onto the second core
# and the speed-up is what N cores give over one.
CONFIGS = {"defaults (small faces on)": ([], False), "--no-small-faces": (["--no-small-faces"], False),
           "defaults, one core per worker": ([], True)}


def photo_folder(dest: Path, count: int) -> int:
    """`count` evenly spaced KDEF photos, symlinked into dest/<label>/ (names are unique in KDEF)."""
    photos = sorted(KDEF.glob("*/*.jpg"))
    if not photos:
        raise SystemExit(f"no KDEF photos under {KDEF}")
    step = max(1, len(photos) // count)
    chosen = photos[::step][:count]
    for p in chosen:
        (dest / p.parent.name).mkdir(exist_ok=True)
        (dest / p.parent.name / p.name).symlink_to(p)
    return len(chosen)


def run_predict(folder: Path, workers: int, extra: list[str], nice: int = 0, pinned: bool = False) -> dict:
    """One `predict` run; its timings from this side of the pipe, and its stdout. `nice` (negative needs
    root) is the run's scheduling priority, which its worker processes inherit; `pinned`: the run (and
    its workers, which inherit it) may use only `workers` cores."""
    cmd = [sys.executable, "-m", "dfer_edge", "predict", str(folder), "--jsonl", "--workers", str(workers),
           "--no-progress", *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    cores = sorted(os.sched_getaffinity(0))[:workers]

    def prepare() -> None:
        if nice:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
        if pinned:
            os.sched_setaffinity(0, cores)

    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                         preexec_fn=prepare if nice or pinned else None)
    lines, stamps = [], []
    for line in p.stdout:
        stamps.append(time.perf_counter())
        lines.append(line)
    err = p.stderr.read()
    if p.wait() != 0:
        raise SystemExit(f"predict --workers {workers} failed ({p.returncode}): {err.strip()}")
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    n = len(lines)
    return {"workers": workers, "images": n, "wall_s": wall, "end_to_end": n / wall,
            "steady": (n - 1) / (stamps[-1] - stamps[0]) if n > 1 and stamps[-1] > stamps[0] else float("nan"),
            "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "output": "".join(lines)}


SPIN = 3_000_000  # loop steps per control task, ~0.2 s on a free core here


def _spin(_: object, n: int) -> int:
    x = 0
    for i in range(n):
        x += i * i
    return x


def control(workers: int, tasks: int = 20) -> float:
    """Pure-Python busy work through the same pool: tasks per second with `workers` processes. Its
    speed-up from 1 to 2 processes is how many cores this run could actually get; on a shared machine
    (other sessions' jobs, scheduled fairly per session) it can be well under 2, whatever the pool does."""
    t0 = time.perf_counter()
    with Workers(workers, int) as pool:
        list(pool.map(_spin, [SPIN] * tasks, chunksize=1))
    return tasks / (time.perf_counter() - t0)


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=400, help="KDEF photos to use (evenly spaced)")
    ap.add_argument("--workers", default="1,2", help="the two worker counts to compare, e.g. 1,2")
    ap.add_argument("--rounds", type=int, default=2, help="rounds per configuration (each runs both, alternating)")
    ap.add_argument("--only", choices=list(CONFIGS), action="append", help="run only this configuration")
    ap.add_argument("--nice", type=int, default=0,
                    help="run the commands at this priority (negative needs root); it only orders them against "
                         "this session's other processes, since Linux shares the CPU fairly between sessions")
    ap.add_argument("--markdown", type=Path, help="also write the report as Markdown here")
    a = ap.parse_args()
    base, more = (int(x) for x in a.workers.split(","))
    load_before = uptime()
    rows, checks = [], []
    with tempfile.TemporaryDirectory() as d:
        n = photo_folder(Path(d), a.images)
        for name, (extra, pinned) in CONFIGS.items():
            if a.only and name not in a.only:
                continue
            runs: dict[int, list[dict]] = {base: [], more: []}
            spins: dict[int, list[float]] = {base: [], more: []}
            reference = None
            for r in range(a.rounds):
                for w in ((base, more) if r % 2 == 0 else (more, base)):
                    spins[w].append(control(w))
                    res = run_predict(Path(d), w, extra, a.nice, pinned)
                    reference = reference if reference is not None else res["output"]
                    checks.append(res["output"] == reference)
                    runs[w].append(res)
                    print(f"{name}: --workers {w}: {res['end_to_end']:.1f} images/s end to end, "
                          f"{res['steady']:.1f} steady, {res['wall_s']:.1f} s, cpu {res['cpu_s']:.1f} s", file=sys.stderr)
            rows.append((name, runs, spins))
    load_after = uptime()

    def mean(rs: list[dict], key: str) -> float:
        return statistics.fmean(x[key] for x in rs)

    out = ["# `predict --workers`: throughput, one process against several", "",
           f"Command: `.venv/bin/python benchmarks/workers.py --images {a.images} --workers {a.workers} "
           f"--rounds {a.rounds}{''.join(f' --only {o!r}' for o in a.only or [])}{f' --nice {a.nice}' if a.nice else ''}"
           f"{' --markdown ' + str(a.markdown) if a.markdown else ''}`  ",
           f"Photos: {n} KDEF photos (337x457, evenly spaced over the 2,348), `predict FOLDER --jsonl --no-progress`.  ",
           f"Machine: {cpu_model()}, {os.cpu_count()} cores ({cpu_count()} usable), Python "
           f"{platform.python_version()}, {platform.system()} {platform.machine()}.  ",
           f"Load before: `{load_before}`  ", f"Load after: `{load_after}`  ",
           *([f"Priority: nice {a.nice} (within this session only)  "] if a.nice else []), "",
           f"| configuration | --workers | images/s end to end | images/s steady | speed-up end to end | "
           f"speed-up steady | CPU s per image | control speed-up (cores to be had) | steady runs |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, runs, spins in rows:
        b_e, b_s, b_c = mean(runs[base], "end_to_end"), mean(runs[base], "steady"), statistics.fmean(spins[base])
        for w in (base, more):
            e, s = mean(runs[w], "end_to_end"), mean(runs[w], "steady")
            out.append(f"| {name} | {w} | {e:.1f} | {s:.1f} | {e / b_e:.2f}x | {s / b_s:.2f}x | "
                       f"{mean(runs[w], 'cpu_s') / n:.3f} | {statistics.fmean(spins[w]) / b_c:.2f}x | "
                       + ", ".join(f"{x['steady']:.1f}" for x in runs[w]) + " |")
    out += ["", f"Outputs identical across all runs: {'yes' if all(checks) else 'NO'} ({len(checks)} runs).", "",
            "Speed-up is the mean images/s with the second worker count over the mean with the first, both "
            "measured within this one invocation (the runs column lists each run's steady rate, in the order "
            "they ran per worker count). End to end includes starting Python, loading the models in the "
            "parent (to check the set-up and print its warnings once) and again in every worker. The control "
            "column is pure-Python busy work through the same pool, run just before each predict run: the "
            "speed-up the machine itself allowed at that moment (2.00x on two free cores)."]
    for name, runs, spins in rows:
        got = statistics.fmean(spins[more]) / statistics.fmean(spins[base])
        speed = mean(runs[more], "steady") / mean(runs[base], "steady")
        cpu_one, cpu_more = mean(runs[base], "cpu_s") / n, mean(runs[more], "cpu_s") / n
        busy = {w: mean(runs[w], "cpu_s") / mean(runs[w], "wall_s") for w in (base, more)}
        free = "were free" if got >= 0.9 * more else "were not all free (other jobs): this speed-up understates"
        verdict = (f"{speed:.2f}x steady; the control got {got:.2f}x, so the {more} cores {free}. "
                   f"Cores kept busy (CPU s / wall s, start-up included): {busy[base]:.2f} with {base} worker(s), "
                   f"{busy[more]:.2f} with {more}. CPU per image {cpu_one:.3f} s and {cpu_more:.3f} s "
                   f"({100 * (cpu_more / cpu_one - 1):+.0f}%: the models loaded again per worker, results sent back)")
        out += ["", f"- {name}: {verdict}."]
    out += ["", "With the defaults one worker is more than one busy core: BlazeFace's small-face look runs on a "
            "second thread beside HOG, so a second worker can only add what that thread leaves idle; "
            "`--no-small-faces` is one thread per worker, the plain case of process scaling. \"One core per "
            "worker\" pins each run to as many cores as it has workers: the speed-up that N cores give over "
            "one with the defaults, BlazeFace's thread sharing its worker's core."]
    # From CPU seconds per image, not from images/s: the CPU an image costs does not depend on how much
    # of the machine other jobs leave, the rate does. Four workers keep four cores busy, each image
    # costing the CPU it costs with several workers here (its own models per worker included).
    pi = []
    lo, hi = PI4_SLOWER
    for name, runs, _ in rows:
        one = mean(runs[base], "cpu_s") / n
        several = mean(runs[more], "cpu_s") / n
        pi.append(f"| {name} | {1 / (one * hi):.1f}-{1 / (one * lo):.1f} | "
                  f"{PI4_CORES / (several * hi):.1f}-{PI4_CORES / (several * lo):.1f} |")
    out += ["", f"Pi 4 estimate ({PI4_CORES} cores, each {lo}-{hi}x slower than one here), images/s, from the CPU "
            "seconds per image above (one worker: one core's worth; with the defaults BlazeFace's second thread "
            "can add to that on a free core):",
            "", f"| configuration | --workers 1 | --workers {PI4_CORES} (or 0) |", "|---|---:|---:|", *pi]
    text = "\n".join(out) + "\n"
    print(text)
    if a.markdown:
        a.markdown.write_text(text)


if __name__ == "__main__":
    main()
