"""Does a refactor keep behaviour to the last digit? Record what users see from one source tree, then
compare two recordings file by file.

    python benchmarks/corridor_check.py --before REF          # REF in a temporary worktree vs this tree
    python benchmarks/corridor_check.py record OUT [--tree DIR]
    python benchmarks/corridor_check.py compare A B

A recording is what the CLI prints, not what its internals hold, so it survives any reshuffle inside:
`predict --json` on samples/ and ../shared/data/photos/ (defaults, --upsample 1, --detect-width 320
--no-flip-average, --largest), `evaluate --json` on FER2013 val (--crops, FER+ votes) and on the held-out
KDEF subjects, `python -m convert extract` of 300 FER2013 val crops and 300 KDEF photos (every array of
the cache), and `watch --jsonl` on a KDEF video with tracking. Both trees run with this interpreter
(the venv's packages), each tree's own code and models on PYTHONPATH. Exit 0 when every file is equal.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("DFER_DATA", ROOT.parent / "shared" / "data"))


def jobs(out: Path, tree: Path, video: Path) -> list[tuple[str, list[str], str]]:
    """(output file, argv after the interpreter, how the output is produced: stdout | file)."""
    photos = [str(tree / "samples"), str(DATA / "photos")]
    fer_val, votes = str(DATA / "fer2013" / "val"), str(DATA / "fer2013" / "ferplus_votes.csv")
    split = out / "kdef-split"
    cli = ["-m", "dfer_edge"]
    return [
        ("predict-default.json", cli + ["predict", *photos, "--json"], "stdout"),
        ("predict-upsample1.json", cli + ["predict", *photos, "--json", "--upsample", "1"], "stdout"),
        ("predict-detect-width.json", cli + ["predict", *photos, "--json", "--detect-width", "320",
                                             "--no-flip-average"], "stdout"),
        ("predict-largest.json", cli + ["predict", *photos, "--json", "--largest"], "stdout"),
        ("evaluate-fer-val.json", cli + ["evaluate", fer_val, "--crops", "--votes", votes, "--json",
                                         str(out / "evaluate-fer-val.json")], "file"),
        ("kdef-split.json", ["-m", "convert", "kdef-split", str(DATA / "kdef"), "--out", str(split)], "stdout"),
        ("evaluate-kdef-heldout.json", cli + ["evaluate", str(split / "heldout"), "--json",
                                              str(out / "evaluate-kdef-heldout.json")], "file"),
        ("extract-fer-val.npz", ["-m", "convert", "extract", fer_val, "--crops", "--votes", votes, "--limit", "300",
                                 "--out", str(out / "extract-fer-val.npz")], "file"),
        ("extract-kdef.npz", ["-m", "convert", "extract", str(DATA / "kdef"), "--limit", "300",
                              "--out", str(out / "extract-kdef.npz")], "file"),
        ("watch.jsonl", cli + ["watch", str(video), "--jsonl", "--detect-every", "5", "--smooth", "0.3"], "stdout"),
    ]


def _neutral(text: str, tree: Path) -> str:
    """Paths into the tree (its models folder, as linked or as installed) written the same for both trees."""
    for models in (tree / "dfer_edge" / "models", tree / "models"):
        text = text.replace(str(models), "<models>")
    return text.replace(str(tree), "<tree>")


def record(out: Path, tree: Path, video: Path) -> None:
    """Run every job with `tree`'s code and write its output under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    for name, argv, how in jobs(out, tree, video):
        proc = subprocess.run([sys.executable, *argv], cwd=tree, env=env, capture_output=True, text=True)
        if proc.returncode not in (0, 1):  # 1: some input unreadable, which is behaviour too
            raise SystemExit(f"{tree}: {' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        if how == "stdout":
            (out / name).write_text(_neutral(proc.stdout, tree))
        elif name.endswith(".json"):  # the model's path names the tree
            p = out / name
            p.write_text(_neutral(p.read_text(), tree))
        print(f"{tree.name}: {name}", file=sys.stderr)


def _npz_diff(a: Path, b: Path) -> list[str]:
    """Every array equal, to the bit. Caches whose faces differ (a face found on one side only) are
    compared on the faces both hold, and the others are named."""
    x, y = np.load(a), np.load(b)
    out = [f"keys differ: {sorted(set(x.files) ^ set(y.files))}"] if set(x.files) != set(y.files) else []
    ix = iy = None
    if "name" in x.files and "name" in y.files and list(x["name"]) != list(y["name"]):
        nx, ny = list(x["name"]), list(y["name"])
        only_a, only_b = sorted(map(str, set(nx) - set(ny))), sorted(map(str, set(ny) - set(nx)))
        out.append(f"faces only in {a.parent.name}: {only_a}; only in {b.parent.name}: {only_b}")
        common = [n for n in nx if n in set(ny)]
        ix, iy = [nx.index(n) for n in common], [ny.index(n) for n in common]
    for k in sorted(set(x.files) & set(y.files)):
        u, v = x[k], y[k]
        if ix is not None and u.ndim and len(u) == len(x["name"]):
            u, v = u[ix], v[iy]
        if u.shape != v.shape:
            out.append(f"{k}: shape {u.shape} vs {v.shape}")
        elif not np.array_equal(u, v):
            where = np.argwhere(u != v) if u.dtype.kind != "f" else np.argwhere(~((u == v) | (np.isnan(u) & np.isnan(v))))
            if len(where):
                out.append(f"{k}: {len(where)} element(s) differ, first at {tuple(int(i) for i in where[0])}")
    return out


def compare(a: Path, b: Path) -> list[str]:
    """Every file of recording `a` against `b`: an empty list when all are identical."""
    problems = []
    for f in sorted(p.name for p in a.iterdir() if p.is_file()):
        g = b / f
        if not g.is_file():
            problems.append(f"{f}: missing from {b}")
        elif f.endswith(".npz"):
            problems += [f"{f}: {d}" for d in _npz_diff(a / f, g)]
        elif (a / f).read_bytes() != g.read_bytes():
            la, lb = (a / f).read_text().splitlines(), g.read_text().splitlines()
            first = next((i for i, (u, v) in enumerate(zip(la, lb)) if u != v), min(len(la), len(lb)))
            problems.append(f"{f}: differs from line {first + 1} ({len(la)} vs {len(lb)} lines)")
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", help="git revision to compare this tree with")
    p.add_argument("--keep", help="keep the recordings in this folder (default: a temporary one)")
    sub = p.add_subparsers(dest="cmd")
    r = sub.add_parser("record")
    r.add_argument("out")
    r.add_argument("--tree", default=str(ROOT))
    r.add_argument("--video", help="the KDEF video (default: written next to the recording)")
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    a = p.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    from tests.helpers import write_kdef_video

    if a.cmd == "record":
        out = Path(a.out)
        video = Path(a.video) if a.video else out / "kdef.mp4"
        if not video.is_file():
            out.mkdir(parents=True, exist_ok=True)
            write_kdef_video(video)
        record(out, Path(a.tree).resolve(), video)
        return 0
    if a.cmd == "compare":
        problems = compare(Path(a.a), Path(a.b))
    elif a.before:
        work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="corridor-"))
        work.mkdir(parents=True, exist_ok=True)
        before_tree = work / "before-tree"
        if not before_tree.exists():
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(before_tree), a.before],
                           check=True, capture_output=True)
            # The editable install maps dfer_edge.models to this checkout's models/: point the old
            # tree's package at its own models instead.
            (before_tree / "dfer_edge" / "models").symlink_to("../models")
        video = work / "kdef.mp4"
        if not video.is_file():
            write_kdef_video(video)
        with ThreadPoolExecutor(2) as pool:  # the two trees side by side, one core each
            done = [pool.submit(record, work / name, tree, video)
                    for name, tree in (("before", before_tree), ("after", ROOT))]
            for f in done:
                f.result()
        problems = compare(work / "before", work / "after")
        if not a.keep:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before_tree)], check=False)
        print(f"recordings in {work}", file=sys.stderr)
    else:
        p.error("give --before REF, or a command")
    for line in problems:
        print(line)
    print("identical" if not problems else f"{len(problems)} difference(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
