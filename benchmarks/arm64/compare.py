#!/usr/bin/env python3
"""Compare two `dfer-edge predict --json` outputs (x86 and emulated arm64) for the same images.

Same images in the same order, the same faces in the same order (largest first), the same labels,
boxes within 2 px and every probability within 1e-3. Prints one table row per face and an
`agreement:` line (faces compared, largest differences), and exits 1 on any mismatch. Standard library
only: it runs with the host's python3.

    python3 compare.py x86.json arm64.json [--box-px 2] [--prob 1e-3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def compare(x86: list, arm: list, box_px: float, prob: float) -> tuple[list[list[str]], list[str]]:
    rows, problems = [], []
    if len(x86) != len(arm):
        return rows, [f"{len(x86)} images on x86, {len(arm)} on arm64"]
    for a, b in zip(x86, arm):
        name = os.path.basename(a["path"])
        if os.path.basename(b["path"]) != name:
            problems.append(f"image order differs: {name} vs {os.path.basename(b['path'])}")
            continue
        if a.get("error") or b.get("error"):
            problems.append(f"{name}: error x86={a.get('error')!r} arm64={b.get('error')!r}")
            continue
        if len(a["faces"]) != len(b["faces"]):
            problems.append(f"{name}: {len(a['faces'])} faces on x86, {len(b['faces'])} on arm64")
        if not a["faces"] and not b["faces"]:
            rows.append([name, "-", "(no face)", "-", "-", "-", "ok"])
        for i, (fa, fb) in enumerate(zip(a["faces"], b["faces"])):
            dbox = max(abs(p - q) for p, q in zip(fa["box"], fb["box"]))
            dprob = max(abs(fa["probabilities"][k] - fb["probabilities"][k]) for k in fa["probabilities"])
            ok = fa["label"] == fb["label"] and dbox <= box_px and dprob <= prob \
                and fa["probabilities"].keys() == fb["probabilities"].keys()
            label = fa["label"] if fa["label"] == fb["label"] else f"{fa['label']} / {fb['label']}"
            rows.append([name, str(i), label, f"{fa['score']:.4f} / {fb['score']:.4f}", f"{dbox:g}",
                         f"{dprob:.1e}", "ok" if ok else "MISMATCH"])
            if not ok:
                problems.append(f"{name} face {i}: label {fa['label']}/{fb['label']}, box {fa['box']} vs "
                                f"{fb['box']}, largest probability difference {dprob:.2e}")
        # Faces that only one side found: a row each, so the table shows them too.
        for i in range(min(len(a["faces"]), len(b["faces"])), max(len(a["faces"]), len(b["faces"]))):
            side, face = ("x86 only", a["faces"][i]) if i < len(a["faces"]) else ("arm64 only", b["faces"][i])
            rows.append([name, str(i), f"{face['label']} ({side})", "-", "-", "-", "MISMATCH"])
    return rows, problems


def agreement(x86: list, arm: list) -> str:
    """One line for a report: how many faces were compared and the largest differences between them."""
    pairs = [(fa, fb) for a, b in zip(x86, arm) for fa, fb in zip(a.get("faces") or [], b.get("faces") or [])]
    if not pairs:
        return f"{len(x86)} images, no face on either side"
    dbox = max(max(abs(p - q) for p, q in zip(fa["box"], fb["box"])) for fa, fb in pairs)
    dprob = max(abs(fa["probabilities"][k] - fb["probabilities"].get(k, float("inf"))) for fa, fb in pairs
                for k in fa["probabilities"])
    same = "identical answers" if dbox == 0 and dprob == 0 else \
        f"largest differences {dbox:g} px (box), {dprob:.1e} (probability)"
    return f"{len(x86)} images, {len(pairs)} faces, {same}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("x86")
    ap.add_argument("arm64")
    ap.add_argument("--box-px", type=float, default=2)
    ap.add_argument("--prob", type=float, default=1e-3)
    args = ap.parse_args()
    with open(args.x86) as f:
        x86 = json.load(f)
    with open(args.arm64) as f:
        arm = json.load(f)
    rows, problems = compare(x86, arm, args.box_px, args.prob)
    head = ["image", "face", "label", "score x86 / arm64", "box max |d| px", "prob max |d|", "result"]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, ["-" * w for w in widths], *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    print(f"tolerances: boxes {args.box_px:g} px, probabilities {args.prob:g}")
    print(f"agreement: {agreement(x86, arm)}")
    for p in problems:
        print(f"mismatch: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
