"""benchmarks/accuracy_vs_fer.py's scoring: fer's answers are scored by the same code and the same FER+ rules
as `dfer-edge evaluate` scores ours. fer itself needs its TensorFlow venv (about 2 GB) and is not run here;
these tests score answers made from the real labels and votes of real FER2013 val files."""

from __future__ import annotations

import numpy as np
import pytest

from dfer_edge.evaluate import scan
from dfer_edge.ferplus import labels_by_rule
from dfer_edge.labels import LABELS
from tests.helpers import load_benchmark, FER_VAL, FERPLUS_VOTES, fer_val_subset


@pytest.fixture(scope="module")
def acc():
    return load_benchmark("accuracy_vs_fer")


def test_answers_are_scored_against_all_three_label_sets(acc, tmp_path):
    if not FERPLUS_VOTES.is_file() or not FER_VAL.is_dir():
        pytest.skip(f"shared data not present: {FERPLUS_VOTES}, {FER_VAL}")
    items = scan(fer_val_subset(tmp_path / "val", 10)).items
    rules = labels_by_rule(FERPLUS_VOTES)
    # Answers that agree with the official FER+ label where there is one, else with the folder label; one
    # file has no answer at all (fer found nothing), which counts as wrong.
    preds = {}
    for path, lab in items[1:]:
        p = np.full(len(LABELS), 0.01)
        p[rules["official"].get(path.name, lab)] = 0.94
        preds[path.name] = p
    m = acc.fer_metrics(items, preds, FERPLUS_VOTES)
    names = [p.name for p, _ in items]
    official = [n for n in names if n in rules["official"]]
    assert m["ferplus"]["rule"] == "official" and m["ferplus"]["n"] == len(official)
    missed = int(names[0] in rules["official"])
    assert m["ferplus"]["accuracy"] == pytest.approx((len(official) - missed) / len(official), abs=1e-4)
    assert m["ferplus_argmax7"]["n"] >= m["ferplus"]["n"]
    assert m["n"] == len(items) and m["detection_rate"] == pytest.approx(1 - 1 / len(items), abs=1e-4)
    doc = {"date": "d", "git": "g", "data": "val", "images": len(items), "model": "m.tflite", "fer_version": "x",
           "ours": m, "fer": m}
    md = acc.markdown(doc)
    assert "FER+ majority, official rule" in md and "original FER2013 labels" in md and "**" not in md.split("|")[3]
