#!/usr/bin/env python3
"""Choose the denoising strength on KDEF's tune subjects, never on the held-out ones.

The runtime blurs a noisy frame before equalising it with sigma = noise * DENOISE_SIGMA_PER_NOISE
(dfer_edge/detect.py). This scores a model on the tune subjects of convert/kdef_split.json (left out of
training; `python -m convert kdef-split` links them) under the noisy capture conditions, once per divisor,
with everything else at the runtime's defaults, and prints the drop against clean for each. The model must
have been trained without the tune subjects (`convert train` leaves them out unless --keep-tune-subjects).

    .venv/bin/python benchmarks/denoise_sweep.py ~/.cache/dfer-edge/cache/kdef-split/tune --model M.tflite

Clean photos are never blurred (their noise is under DENOISE_AT), so the clean score is the same for
every divisor and is computed once.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dfer_edge import detect  # noqa: E402
from dfer_edge import evaluate as ev  # noqa: E402
from dfer_edge.degrade import condition  # noqa: E402
from dfer_edge.options import DEFAULTS  # noqa: E402
from dfer_edge.recognizer import Recognizer  # noqa: E402

NOISY = ("dim+noise6", "dim+noise3", "noise6", "shot", "dim+shot")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tune_dir", type=Path, help="image-folder tree of the tune subjects")
    ap.add_argument("--model", type=Path, default=None, help="model (default: the shipped one)")
    ap.add_argument("--divisors", default="6,9,12", help="comma list: sigma = noise / divisor")
    ap.add_argument("--conditions", default=",".join(NOISY))
    ap.add_argument("--json", type=Path, help="write the table here")
    a = ap.parse_args(argv)
    items = ev.scan(a.tune_dir).items
    rec = Recognizer(DEFAULTS.replace(model=a.model) if a.model else DEFAULTS)
    clean = ev.run(rec, items, False)
    base = ev.metrics(clean.true, clean.pred)["accuracy"]
    table = {"images": len(items), "clean": base, "drops": {}}
    print(f"tune subjects: {len(items)} photos, clean {100 * base:.2f}%")
    conds = [c for c in a.conditions.split(",") if c]
    print("divisor " + " ".join(f"{c:>11}" for c in conds) + "        mean")
    for d in (float(x) for x in a.divisors.split(",")):
        detect.DENOISE_SIGMA_PER_NOISE = 1.0 / d  # read at every call of denoise_sigma
        drops = []
        for c in conds:
            got = ev.run(rec, items, False, condition=condition(c))
            drops.append(ev.metrics(got.true, got.pred)["accuracy"] - base)
        table["drops"][f"{d:g}"] = dict(zip(conds, drops))
        print(f"{d:7g} " + " ".join(f"{100 * x:+11.2f}" for x in drops) + f" {100 * sum(drops) / len(drops):+11.2f}")
    if a.json:
        a.json.write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
