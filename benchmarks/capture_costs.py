"""What each capture remedy of issue 17 costs in time, on a single-face photo and on a `watch` frame.

    .venv/bin/python benchmarks/capture_costs.py [-n 40] [--markdown benchmarks/CAPTURE.md]

Images (made here, never kept): a 640x426 single-face photo (../shared/data/photos/happy-baby.jpeg) and a
640x480 frame of the tests' KDEF video, each clean and as a dim, noisy camera delivers it (degrade.py's
"dim+noise6"). Each remedy is one `dfer-edge bench` configuration (dfer_edge.bench.run_one: per-stage
medians and end to end, one thread), all run in one process, in alternating order over --rounds, so
that this VM's drift (+-30%) falls on every configuration alike; the median round is reported.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dfer_edge import degrade  # noqa: E402
from dfer_edge.bench import cpu_model, read_images, run_one  # noqa: E402
from dfer_edge.options import DEFAULTS  # noqa: E402
from tests.helpers import PHOTOS, kdef_frames  # noqa: E402

BASE = DEFAULTS.replace(threads=1, small_faces=False)
CONFIGS = {
    "no remedy (seed: equalizeHist, no denoising, one landmark fit)": BASE.replace(denoise=False, flip_landmarks=False),
    "--denoise, --no-flip-landmarks": BASE.replace(flip_landmarks=False),
    "--denoise --flip-landmarks (the defaults)": BASE,
    "defaults with --equalize clahe": BASE.replace(equalize="clahe"),
}
STAGES = ("preprocess", "detect", "landmarks", "crops_features", "inference")


def images(folder: Path) -> dict[str, Path]:
    photo = cv2.imread(str(PHOTOS / "happy-baby.jpeg"), cv2.IMREAD_GRAYSCALE)
    photo = cv2.resize(photo, (640, round(photo.shape[0] * 640 / photo.shape[1])), interpolation=cv2.INTER_AREA)
    frame = cv2.cvtColor(next(iter(kdef_frames(hold=1)))[0], cv2.COLOR_BGR2GRAY)
    dark = degrade.CONDITIONS["dim+noise6"]
    out = {}
    for name, img in (("photo 640x426", photo), ("watch frame 640x480", frame)):
        for cond, x in (("clean", img), ("dim+noise6", dark(img, 1))):
            p = folder / f"{name.split()[0]}-{cond}.png"
            cv2.imwrite(str(p), x)
            out[f"{name}, {cond}"] = p
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--iterations", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--markdown", type=Path)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        imgs = images(Path(d))
        rows: dict[tuple[str, str], list[dict]] = {}
        for r in range(a.rounds):
            order = list(CONFIGS.items())
            order = order if r % 2 == 0 else order[::-1]
            for img_name, path in imgs.items():
                bench_img = read_images([path])
                for cfg_name, cfg in order:
                    res = run_one(cfg, bench_img, a.iterations, 3, False)
                    rows.setdefault((img_name, cfg_name), []).append(res)
                    print(f"round {r + 1}: {img_name:<30} {cfg_name:<45} {res['end_to_end']['p50_ms']:.2f} ms",
                          file=sys.stderr)
    lines = ["| image | remedy | faces | preprocess | detect | landmarks | crops | inference | end to end (ms) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (img_name, cfg_name), runs in rows.items():
        med = lambda f: statistics.median(f(x) for x in runs)  # noqa: E731
        cells = [f"{med(lambda x: x['stages'][s]['p50_ms']):.2f}" for s in STAGES]
        lines.append(f"| {img_name} | {cfg_name} | {runs[0]['faces']} | " + " | ".join(cells)
                     + f" | {med(lambda x: x['end_to_end']['p50_ms']):.2f} |")
    text = "\n".join([
        "# What the capture remedies cost (issue 17)", "",
        f"`.venv/bin/python benchmarks/capture_costs.py -n {a.iterations} --rounds {a.rounds}` on {cpu_model()}, one "
        "interpreter thread, small-face look off; medians per image in ms, the median of the rounds. "
        "Landmark smoothing in `watch` (`--smooth-landmarks`) is an exponential average of 68 points per face "
        "per frame: a few microseconds, not shown.", "", *lines, ""])
    print(text)
    if a.markdown:
        a.markdown.write_text(text)


if __name__ == "__main__":
    main()
