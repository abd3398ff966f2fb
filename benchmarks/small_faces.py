"""Small faces: recall by face size, false faces and time for each detector setting, in one table.

    .venv/bin/python benchmarks/small_faces.py [--scenes 200] [--markdown benchmarks/SMALL_FACES.md]

For every setting: `dfer-edge bench PHOTO --scenes N --json` (the single-face 640-px photo below,
end-to-end time; recall on N generated scenes of real KDEF faces at 32-160 px, seed 0; false faces on
40 face-free images), once with the machine's cores and once pinned to one core (`taskset -c 0
--threads 1`); and `dfer-edge predict` on the two group photos of ../shared/data/photos. The photo is
happy-baby.jpeg shrunk to 640 px wide (one face of ~240 px).
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
import time
from pathlib import Path

import cv2

from dfer_edge import Recognizer, scenes

REPO = Path(__file__).resolve().parents[1]
PHOTOS = REPO.parent / "shared" / "data" / "photos"
SETTINGS = [  # (name, extra options)
    ("hog (before)", ["--no-small-faces"]),
    ("hog + small faces (default for images)", []),
    ("hog --upsample 1", ["--upsample", "1", "--no-small-faces"]),
    ("blazeface", ["--detector", "blazeface", "--no-small-faces"]),
    ("blazeface + small faces", ["--detector", "blazeface"]),
]
GROUPS = {"group.jpeg": 4, "women-on-phones.jpg": 2}  # faces a person sees in them


def cli(*args: str, pin: bool = False) -> subprocess.CompletedProcess:
    pre = ["taskset", "-c", "0"] if pin and shutil.which("taskset") else []
    return subprocess.run([*pre, sys.executable, "-m", "dfer_edge", *args], capture_output=True, text=True, check=True)


def photo640(folder: Path) -> Path:
    img = cv2.imread(str(PHOTOS / "happy-baby.jpeg"))
    h, w = img.shape[:2]
    out = folder / "single-face-640.jpg"
    cv2.imwrite(str(out), cv2.resize(img, (640, round(h * 640 / w)), interpolation=cv2.INTER_AREA),
                [cv2.IMWRITE_JPEG_QUALITY, 92])
    return out


def bench(photo: Path, extra: list[str], scenes: int, pin: bool, folder: Path) -> dict:
    out = folder / "b.json"
    cli("bench", str(photo), "-n", "40", "--no-cold-start", "--scenes", str(scenes) if not pin else "0",
        "--json", str(out), *(["--threads", "1"] if pin else []), *extra, pin=pin)
    return json.loads(out.read_text())["runs"][0]


def found_in_groups(extra: list[str]) -> dict[str, int]:
    r = json.loads(cli("predict", *(str(PHOTOS / n) for n in GROUPS), "--json", *extra).stdout)
    return {Path(x["path"]).name: len(x["faces"]) for x in r}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=int, default=200)
    ap.add_argument("--large", type=int, default=60, help="scenes of 1600x1200 for the wide-photo rule")
    ap.add_argument("--markdown", type=Path)
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        photo = photo640(folder)
        for name, extra in SETTINGS:
            free = bench(photo, extra, a.scenes, False, folder)
            one = bench(photo, extra, 0, True, folder)
            rows.append((name, extra, free, one, found_in_groups(extra)))
            print(name, free["detection"], free["end_to_end"]["p50_ms"], one["end_to_end"]["p50_ms"], flush=True)
    base, base1 = rows[0][2]["end_to_end"]["p50_ms"], rows[0][3]["end_to_end"]["p50_ms"]
    bands = list(rows[0][2]["detection"]["bands"])
    lines = [
        "# Small faces: recall, false faces and time by detector setting", "",
        f"Command: `.venv/bin/python benchmarks/small_faces.py --scenes {a.scenes}`  ",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}. Scenes: {a.scenes} generated frames (640x480, 1-6 real KDEF faces of "
        "32-160 px on varied backgrounds, seed 0, `dfer_edge/scenes.py`), "
        f"{rows[0][2]['detection']['faces']} faces; false faces on 40 face-free images. Time: `dfer-edge bench` "
        "end to end (p50) on one 640-px single-face photo, with both cores and pinned to one (`taskset -c 0 "
        "--threads 1`); ratios against the first row in the same run.", "",
        "| setting | " + " | ".join(f"{b} px" for b in bands) + " | ≥ 36 px | ≥ 80 px | false / 20 images | "
        "group photos (4 + 2 faces) | ms, 2 cores | ms, 1 core |",
        "|---|" + "---:|" * (len(bands) + 6),
    ]
    for name, extra, free, one, groups in rows:
        d = free["detection"]
        t, t1 = free["end_to_end"]["p50_ms"], one["end_to_end"]["p50_ms"]
        lines.append(f"| {name} | " + " | ".join(f"{f}/{n}" for f, n in (d["bands"][b] for b in bands))
                     + f" | {100 * d['recall_36']:.1f}% | {100 * d['recall_80']:.1f}% | {d['false_per_20']:.2f} | "
                     + " + ".join(str(groups[g]) for g in GROUPS)
                     + f" | {t:.1f} ({t / base:.2f}x) | {t1:.1f} ({t1 / base1:.2f}x) |")
    lines += ["", f"Photos wider than 1200 px (target: faces of at least 3% of the width): {a.large} scenes of "
              "1600x1200 with 1-6 faces of 48-300 px (seed 3), `Recognizer.predict` in this process:", "",
              "| setting | ≥ 48 px (3%) | ≥ 80 px | false faces | ms per scene |", "|---|---:|---:|---:|---:|"]
    large = scenes.face_scenes(a.large, seed=3, size=(1600, 1200), sizes=(48, 300))
    for name, small in (("hog (before)", False), ("hog + small faces (default)", None)):
        rec = Recognizer(small_faces=small)
        t0 = time.perf_counter()
        r = scenes.measure(lambda img: [f.box for f in rec.predict(img)], large)
        ms = 1000 * (time.perf_counter() - t0) / len(large)
        lines.append(f"| {name} | {100 * r.recall(48):.1f}% | {100 * r.recall(80):.1f}% | {r.false_faces} | {ms:.0f} |")
    text = "\n".join(lines) + "\n"
    if a.markdown:
        a.markdown.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
