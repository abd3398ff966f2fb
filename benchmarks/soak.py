"""Soak: many frames through `dfer-edge watch`, watching its memory.

    .venv/bin/python benchmarks/soak.py --frames 10000 [--json soak.json]

Builds a 640x480 video of KDEF faces (../shared/data/kdef; the test video looped to --frames frames,
kept in a temporary folder), runs `dfer-edge watch VIDEO --jsonl` as its own process and samples that
process's resident memory (VmRSS) every --every frames while it runs. Warm-up is the first 10% of the
frames (at least 200): the growth reported is the peak RSS after warm-up over the RSS at the end of
warm-up. The issue's bound is < 5%.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers import kdef_frames  # noqa: E402


def write_looped_video(path: Path, frames: int) -> None:
    base = [f for f, _ in kdef_frames(hold=30)]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (640, 480))
    if not writer.isOpened():
        raise SystemExit(f"cannot write {path}")
    for i in range(frames):
        writer.write(base[i % len(base)])
    writer.release()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def soak(frames: int, every: int = 100, watch_args: list[str] | None = None) -> dict:
    with tempfile.TemporaryDirectory() as d:
        video = Path(d) / "soak.mp4"
        write_looped_video(video, frames)
        cmd = [sys.executable, "-m", "dfer_edge", "watch", str(video), "--jsonl", *(watch_args or [])]
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        samples: list[tuple[int, int]] = []
        n = faces = 0
        for line in p.stdout:
            rec = json.loads(line)
            n += 1
            faces += len(rec["faces"])
            if n % every == 0:
                samples.append((n, rss_kib(p.pid)))
        err = p.stderr.read()
        code = p.wait()
        seconds = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"watch exited {code}: {err.strip()}")
    warm = max(200, frames // 10)
    base = next((r for i, r in samples if i >= warm), samples[-1][1])
    after = [r for i, r in samples if i >= warm]
    peak = max(after) if after else base
    return {"frames": n, "faces": faces, "seconds": round(seconds, 1), "warmup_frames": warm,
            "rss_after_warmup_mib": round(base / 1024, 1), "peak_rss_after_warmup_mib": round(peak / 1024, 1),
            "growth_percent": round(100 * (peak - base) / base, 2), "command": " ".join(cmd[1:]),
            "samples": [{"frame": i, "rss_mib": round(r / 1024, 1)} for i, r in samples]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=10_000)
    ap.add_argument("--every", type=int, default=100, help="sample memory every N frames")
    ap.add_argument("--json", type=Path, help="write the result (with every sample) here")
    ap.add_argument("watch_args", nargs="*", help="further watch options after --")
    a = ap.parse_args()
    r = soak(a.frames, a.every, a.watch_args)
    if a.json:
        a.json.write_text(json.dumps(r, indent=1) + "\n")
    print(f"{r['frames']} frames ({r['faces']} faces) in {r['seconds']} s; RSS after {r['warmup_frames']} warm-up "
          f"frames {r['rss_after_warmup_mib']} MiB, peak after warm-up {r['peak_rss_after_warmup_mib']} MiB: "
          f"growth {r['growth_percent']}%")


if __name__ == "__main__":
    main()
