"""Are small faces in large photos scored as well as the same faces alone?

    .venv/bin/python benchmarks/small_face_accuracy.py [--limit N] [--markdown benchmarks/SMALL_FACE_ACCURACY.md]

Faces nobody here trained on: the straight views of the held-out KDEF subjects (convert/kdef_split.json).
Each is scored alone (its own photo, as `predict` reads a file), then pasted, shrunk so that its face
(jaw width, landmarks 0-16, as measured alone) is 40, 64 or 96 px wide, at a seeded position into a grey
1920x1440 and a grey 640x480 photo, which is saved as a JPEG (quality 95) and read as a file again. A
face counts as right when the largest face found has the KDEF label. Also reported: faces found, and the
median inter-ocular distance the results report (`iod_px`, original pixels).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
FRAMES = [(1920, 1440), (640, 480)]
WIDTHS = [40, 64, 96]
BACKGROUND = 128


def heldout_straight(kdef: Path = DATA / "kdef", split: str = "heldout") -> list[tuple[Path, str]]:
    """(photo, expression) of every straight view of the held-out subjects (or with split="tune", of the
    tune subjects, on which settings are chosen), in a fixed order."""
    import csv

    from dfer_edge.labels import canonical_label

    held = set(json.loads((REPO / "convert" / "kdef_split.json").read_text())[split])
    out = []
    with (kdef / "index.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["subject"] in held and row.get("angle") == "S":
                label = canonical_label(Path(row["path"]).parent.name)
                if label:
                    out.append((kdef / row["path"], label))
    return sorted(out)


def jaw_width(landmarks: np.ndarray) -> float:
    return float(np.hypot(*(landmarks[16] - landmarks[0])))


def pasted(photo: np.ndarray, jaw: float, width: int, frame: tuple[int, int],
           rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int, float]]:
    """The photo shrunk so that its face is `width` px wide, on a grey frame at a random whole position;
    and where: (x, y, scale)."""
    k = width / jaw
    small = cv2.resize(photo, (max(1, round(photo.shape[1] * k)), max(1, round(photo.shape[0] * k))),
                       interpolation=cv2.INTER_AREA)
    fw, fh = frame
    canvas = np.full((fh, fw, 3), BACKGROUND, np.uint8)
    h, w = small.shape[:2]
    x, y = int(rng.integers(0, fw - w + 1)), int(rng.integers(0, fh - h + 1))
    canvas[y:y + h, x:x + w] = small
    return canvas, (x, y, k)


def as_jpeg(img: np.ndarray) -> bytes:
    ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return enc.tobytes()


def measure(rec, faces: list[tuple[Path, str]], widths=WIDTHS, frames=FRAMES, seed: int = 0) -> dict:
    """Accuracy of the faces alone and pasted at each (frame, width); every condition on the same faces."""
    rng = np.random.default_rng(seed)
    rows: dict[str, dict] = {}

    def tally(key: str, face, label: str, seconds: float) -> None:
        r = rows.setdefault(key, {"n": 0, "found": 0, "right": 0, "iod_px": [], "seconds": 0.0})
        r["n"] += 1
        r["seconds"] += seconds
        if face is not None:
            r["found"] += 1
            r["right"] += face.label == label
            r["iod_px"].append(face.iod_px)

    for path, label in faces:
        photo = cv2.imread(str(path))
        t = time.perf_counter()
        alone = rec.predict_largest(path)
        tally("alone", alone, label, time.perf_counter() - t)
        if alone is None:
            continue
        jaw = jaw_width(alone.landmarks)
        for fw, fh in frames:
            for width in widths:
                data = as_jpeg(pasted(photo, jaw, width, (fw, fh), rng)[0])
                t = time.perf_counter()
                face = rec.predict_largest(data)
                tally(f"{width} px in {fw}x{fh}", face, label, time.perf_counter() - t)
    for r in rows.values():
        r["accuracy"] = r["right"] / r["n"] if r["n"] else 0.0
        r["iod_px"] = float(np.median(r["iod_px"])) if r["iod_px"] else None
        r["ms"] = 1000 * r.pop("seconds") / max(1, r["n"])
    return rows


def markdown(rows: dict, command: str, n: int) -> str:
    alone = rows["alone"]["accuracy"]
    lines = ["# Small faces in large photos: scored as well as alone?", "",
             f"Command: `{command}`  ",
             f"Machine: {platform.machine()}, Python {platform.python_version()}. Faces: {n} straight views of the "
             "12 held-out KDEF subjects (never trained on), each alone and pasted into grey photos (JPEG 95, read as "
             "files), face width = jaw width measured alone, seeded positions. Right = the largest face found has "
             "the KDEF label.", "",
             "| condition | faces found | expression right | vs alone | median iod_px | ms per photo |",
             "|---|---:|---:|---:|---:|---:|"]
    for key, r in rows.items():
        lines.append(f"| {key} | {r['found']}/{r['n']} | {100 * r['accuracy']:.1f}% | "
                     f"{100 * (r['accuracy'] - alone):+.1f} | {r['iod_px'] or 0:.0f} | {r['ms']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=0, help="only the first N faces (0: all)")
    ap.add_argument("--split", default="heldout", choices=("heldout", "tune"),
                    help="whose faces: the held-out subjects (measured) or the tune subjects (settings chosen on)")
    ap.add_argument("--markdown", type=Path, help="write the table here")
    ap.add_argument("--json", type=Path, help="write the numbers here")
    a = ap.parse_args(argv)
    from dfer_edge import Recognizer

    faces = heldout_straight(split=a.split)
    if not faces:
        print(f"error: no held-out KDEF straight views under {DATA / 'kdef'}", file=sys.stderr)
        return 2
    faces = faces[: a.limit] if a.limit else faces
    with Recognizer() as rec:
        rows = measure(rec, faces)
    command = "python benchmarks/small_face_accuracy.py" + (f" --limit {a.limit}" if a.limit else "") + \
        (f" --split {a.split}" if a.split != "heldout" else "") + \
        (f" --markdown {a.markdown}" if a.markdown else "")
    text = markdown(rows, command, len(faces))
    print(text)
    if a.markdown:
        a.markdown.write_text(text)
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
