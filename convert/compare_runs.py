"""Runs measured by convert/eval_run.sh, side by side: `python convert/compare_runs.py RUN [RUN ...]`.

One row per measure the model issue names (FER2013 val under the official FER+ rule, the argmax of 7 votes and
the original labels; macro-F1; ECE; temperature; held-out KDEF with its weakest class; the tune subjects) and
the drop under every capture condition on the held-out (ho) and tune (tu) subjects. Plain json, no TensorFlow.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def measures(run: Path) -> dict[str, float | None]:
    e = run / "eval"
    f, h, t = (json.loads((e / n).read_text()) for n in ("fer-val.json", "kdef-heldout.json", "kdef-tune.json"))
    row = {"official": f["ferplus"]["accuracy"], "argmax7": f["ferplus_argmax7"]["accuracy"], "orig": f["accuracy"],
           "F1 off": f["ferplus"]["macro_f1"], "ECE fer+": f["ferplus"]["ece"], "T": f.get("temperature"),
           "KDEF ho": h["accuracy"], "fear ho": h["per_class"]["fear"]["recall"],
           "min class ho": min(v["recall"] for v in h["per_class"].values()), "ECE kdef": h["ece"],
           "tune": t["accuracy"], "ECE tune": t["ece"]}
    for prefix, block in (("ho", h), ("tu", t)):
        for c in block.get("conditions", []):
            if c["condition"] != "clean":
                row[f"{prefix} {c['condition']}"] = c["drop"]
    return row


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: compare_runs.py RUN [RUN ...]", file=sys.stderr)
        return 2
    try:
        rows = {Path(r).name: measures(Path(r)) for r in argv}
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    keys = list(next(iter(rows.values())))
    print("measure".ljust(16) + "".join(n.rjust(9) for n in rows))
    for k in keys:
        cells = (rows[n].get(k) for n in rows)
        print(k.ljust(16) + "".join(f"{v:9.4f}" if isinstance(v, float) else str(v).rjust(9) for v in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
