"""Landmark smoothing in `watch` under a dim, noisy camera: per-frame accuracy and crop jitter.

    .venv/bin/python benchmarks/capture_video.py [--subjects 6] [--taus 0,0.1,0.2,0.4] [--markdown FILE]

Frames: the tests' KDEF video (tests/helpers.kdef_frames: one held-out subject's seven expressions, the
face drifting a few pixels per frame), every frame degraded by a capture condition with fresh noise per
frame (seeded), as a cheap camera delivers video. Each --smooth-landmarks time constant runs a FaceTracker
(--detect-every 10, probability smoothing 0.3 s, as `watch` does by default) over the same frames. Reported:
the share of frames whose label is the expression shown (the first 10 frames of every expression are
left out: the probability average needs them to follow a change), and how far the cut landmarks move
between frames, in inter-ocular distances.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dfer_edge import degrade  # noqa: E402
from dfer_edge.geometry import point_error  # noqa: E402
from dfer_edge.options import DEFAULTS  # noqa: E402
from dfer_edge.recognizer import Recognizer  # noqa: E402
from dfer_edge.tracking import FaceTracker  # noqa: E402
from tests.helpers import kdef_frames  # noqa: E402

FPS = 15.0
HOLD = 30  # frames per expression
SETTLE = 10  # frames after each change not scored


def run(rec: Recognizer, frames: list, tau: float) -> tuple[int, int, list[float]]:
    tracker = FaceTracker(rec, detect_every=10, smooth=0.3, smooth_landmarks=tau)
    right = total = 0
    moves, last = [], None
    for i, (img, label) in enumerate(frames):
        faces, _ = tracker.process(img, i / FPS)
        if not tracker.tracks:
            last = None
            continue
        pts = tracker.tracks[0].cut_points
        if last is not None:
            moves.append(point_error(pts, last))
        last = pts.copy()
        if i % HOLD >= SETTLE:
            total += 1
            right += int(bool(faces) and faces[0].label == label)
    return right, total, moves


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subjects", type=int, default=6, help="held-out KDEF subjects (convert/kdef_split.json)")
    ap.add_argument("--taus", default="0,0.1,0.2,0.4", help="comma list of --smooth-landmarks values (s)")
    ap.add_argument("--conditions", default="clean,dim+noise6,blur2")
    ap.add_argument("--model", default=None)
    ap.add_argument("--markdown", type=Path)
    a = ap.parse_args()
    held = json.loads((REPO / "convert" / "kdef_split.json").read_text())["heldout"]
    subjects = [f"A{s}" for s in held[::2][: a.subjects]]  # women and men alternate in the list
    rec = Recognizer(DEFAULTS.replace(threads=1, small_faces=False, model=a.model))
    taus = [float(t) for t in a.taus.split(",")]
    lines = ["| condition | --smooth-landmarks (s) | frames right | landmark move per frame (IOD) |", "|---|---|---|---|"]
    for cname in a.conditions.split(","):
        cond = degrade.condition(cname)
        frames = []
        for s in subjects:
            for k, (img, label) in enumerate(kdef_frames(s, hold=HOLD)):
                gray = img[:, :, 0]
                frames.append((cond(gray, degrade.seed_for(f"{s}-{k}")), label))
        for tau in taus:
            right, total, moves = run(rec, frames, tau)
            line = f"| {cname} | {tau:g} | {100 * right / total:.1f}% ({right}/{total}) | {np.median(moves):.4f} |"
            lines.append(line)
            print(line, file=sys.stderr, flush=True)
    text = "\n".join([f"`.venv/bin/python benchmarks/capture_video.py --subjects {a.subjects} --taus {a.taus} "
                      f"--conditions {a.conditions}` ({len(subjects)} held-out subjects, {HOLD} frames per expression "
                      f"at {FPS:g} frames/s, detection every 10 frames, probability smoothing 0.3 s)", "", *lines, ""])
    print(text)
    if a.markdown:
        a.markdown.write_text(text)


if __name__ == "__main__":
    main()
