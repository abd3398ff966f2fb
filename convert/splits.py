"""Subject splits as image-folder trees of symlinks, so the runtime's `evaluate` can score them."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from dfer_edge.labels import canonical_label

SPLIT_FILE = Path(__file__).with_name("kdef_split.json")


def heldout_subjects() -> set[str]:
    """The test subjects: measured, never trained or tuned on."""
    return set(json.loads(SPLIT_FILE.read_text())["heldout"])


def tune_subjects() -> set[str]:
    """The validation subjects: left out of training, so settings are chosen on unseen faces that are not
    the test subjects."""
    return set(json.loads(SPLIT_FILE.read_text()).get("tune", []))


def kdef_split(kdef: str | Path, out: str | Path) -> dict[str, int]:
    """<out>/heldout/<label>/..., <out>/tune/<label>/... and <out>/train/<label>/... linking to the KDEF
    images, plus <out>/heldout-straight and <out>/heldout-half-profile for the held-out subjects by view."""
    kdef, out = Path(kdef).resolve(), Path(out)
    held, tune = heldout_subjects(), tune_subjects()
    counts = {"heldout": 0, "tune": 0, "train": 0, "heldout-straight": 0, "heldout-half-profile": 0}
    with (kdef / "index.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            lab = canonical_label(row["label"])
            if lab is None:
                continue
            sides = ["heldout" if row["subject"] in held else "tune" if row["subject"] in tune else "train"]
            if sides[0] == "heldout":
                sides.append("heldout-straight" if row.get("angle") == "S" else "heldout-half-profile")
            for side in sides:
                dest = out / side / lab / Path(row["path"]).name
                dest.parent.mkdir(parents=True, exist_ok=True)
                if dest.is_symlink() or dest.exists():
                    dest.unlink()
                os.symlink(kdef / row["path"], dest)
                counts[side] += 1
    return counts
