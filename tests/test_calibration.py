"""Calibration: temperature scaling, the expected calibration error, and the sidecar's temperature and
crop regions as the runtime applies them (real shipped model, real interpreter)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from dfer_edge.calibration import expected_calibration_error, reliability, temper
from dfer_edge.errors import ModelError
from dfer_edge.geometry import DEFAULT_REGIONS, CropRegions
from dfer_edge.model import ExpressionModel, default_model_path
from tests.helpers import model_with


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_temper_is_softmax_of_scaled_logits():
    z = np.random.default_rng(0).normal(0, 2, (50, 7))
    for t in (0.5, 1.0, 1.7, 4.0):
        np.testing.assert_allclose(temper(softmax(z), t), softmax(z / t), atol=1e-9)


def test_temper_keeps_the_ranking_and_softens_with_t():
    p = softmax(np.random.default_rng(1).normal(0, 2, (20, 7)))
    soft, sharp = temper(p, 2.0), temper(p, 0.5)
    assert (soft.argmax(1) == p.argmax(1)).all() and (sharp.argmax(1) == p.argmax(1)).all()
    assert (soft.max(1) <= p.max(1) + 1e-12).all() and (sharp.max(1) >= p.max(1) - 1e-12).all()
    np.testing.assert_allclose(soft.sum(1), 1.0)


def test_ece_of_a_known_gap():
    # Every answer said with 0.9 confidence, 60% of them right: ECE is the gap, 0.3.
    conf = np.full(100, 0.9)
    correct = np.arange(100) < 60
    assert expected_calibration_error(conf, correct) == pytest.approx(0.3)
    (b,) = reliability(conf, correct)
    assert (b["n"], b["confidence"], b["accuracy"]) == (100, 0.9, 0.6)


def test_ece_of_calibrated_scores_is_small():
    rng = np.random.default_rng(2)
    conf = rng.uniform(1 / 7, 1.0, 200_000)
    correct = rng.random(conf.size) < conf  # right exactly as often as the score says
    assert expected_calibration_error(conf, correct) < 0.01
    assert expected_calibration_error(conf, np.ones_like(correct)) > 0.3  # always right: underconfident


def test_best_temperature_recovers_a_known_temperature():
    pytest.importorskip("tensorflow", reason="convert/ needs TensorFlow (the optional `convert` extra)")
    from convert.calibrate import best_temperature

    rng = np.random.default_rng(3)
    z = rng.normal(0, 2.5, (20_000, 7))
    y = np.array([rng.choice(7, p=q) for q in softmax(z)])  # labels drawn from softmax(z)
    overconfident = softmax(2.0 * z)  # a model twice as sure as it should be
    assert best_temperature(overconfident, y) == pytest.approx(2.0, abs=0.08)


def test_two_kinds_of_face_weigh_the_same_whatever_their_size():
    """Wild faces want sharpening, posed ones softening: the joint temperature lies between the two, and a
    set ten times larger does not pull it to its own."""
    pytest.importorskip("tensorflow", reason="convert/ needs TensorFlow (the optional `convert` extra)")
    from convert.calibrate import best_temperature

    rng = np.random.default_rng(4)

    def drawn(n: int, sureness: float):
        z = rng.normal(0, 2.0, (n, 7))
        y = np.array([rng.choice(7, p=q) for q in softmax(z)])
        return softmax(sureness * z), y

    wild, posed = drawn(20_000, 0.5), drawn(2_000, 2.0)  # wants T 0.5, wants T 2
    t_wild, t_posed = best_temperature(*wild), best_temperature(*posed)
    assert t_wild == pytest.approx(0.5, abs=0.05) and t_posed == pytest.approx(2.0, abs=0.15)
    t = best_temperature(*wild, [posed])
    assert t_wild + 0.2 < t < t_posed - 0.2
    assert best_temperature(*posed, [wild]) == t  # the order of the sets does not matter


# --- the model's contract (inside the .tflite, sidecar a copy) --------------------------------------

def copy_model(folder, drop: tuple[str, ...] = (), **meta_changes):
    """The shipped default model, copied into `folder` with its contract changed (inside and sidecar)."""
    src = default_model_path()
    return model_with(src, folder / src.name, drop, **meta_changes)


def test_recognizer_applies_the_contract_temperature(tmp_path, fer_val_faces):
    from dfer_edge.recognizer import Recognizer

    plain = Recognizer(model=copy_model(tmp_path / "plain", calibration={"temperature": 1.0, "fitted_on": "none"}))
    hot = Recognizer(model=copy_model(tmp_path / "hot", calibration={"temperature": 2.5, "fitted_on": "a test"}))
    assert (plain.model.temperature, hot.model.temperature) == (1.0, 2.5)
    for face in fer_val_faces.faces[::9]:
        p, q = plain.probabilities(face), hot.probabilities(face)
        np.testing.assert_allclose(q, temper(p, 2.5), atol=1e-9)
        assert q.argmax() == p.argmax() and q.max() < p.max()


@pytest.mark.parametrize("bad", [0, -1, "hot", True, 100.0, [1.0]])
def test_bad_temperature_is_a_model_error(tmp_path, bad):
    with pytest.raises(ModelError, match="calibration temperature"):
        ExpressionModel(copy_model(tmp_path, calibration={"temperature": bad, "fitted_on": "a test"}))


def test_a_temperature_must_say_what_it_was_fitted_on(tmp_path):
    with pytest.raises(ModelError, match="calibration without fitted_on"):
        ExpressionModel(copy_model(tmp_path, calibration={"temperature": 0.7}))


def test_crop_regions_come_from_the_contract(tmp_path, fer_val_faces):
    wide = {"eye_side": 0.75, "eye_inward": 0.05, "mouth_side": 1.1, "mouth_raise": 0.12}
    m = ExpressionModel(copy_model(tmp_path, crop_regions=wide))
    assert m.info.regions == CropRegions(**wide) != DEFAULT_REGIONS
    shipped = json.loads(default_model_path().with_suffix(".json").read_text())
    assert ExpressionModel(default_model_path()).info.regions == CropRegions.from_dict(shipped["crop_regions"])
    # {} is the first models' regions, said explicitly; a contract without the field is refused.
    assert ExpressionModel(copy_model(tmp_path / "first", crop_regions={})).info.regions == DEFAULT_REGIONS
    with pytest.raises(ModelError, match="no crop_regions in its metadata"):
        ExpressionModel(copy_model(tmp_path / "old", drop=("crop_regions",)))


@pytest.mark.parametrize("bad", [{"eye_width": 1.0}, {"mouth_side": -0.5}, {"eye_side": "big"}, ["x"]])
def test_bad_crop_regions_are_a_model_error(tmp_path, bad):
    with pytest.raises(ModelError, match="crop_regions"):
        ExpressionModel(copy_model(tmp_path, crop_regions=bad))


# --- `dfer-edge evaluate` ------------------------------------------------------------------------

def test_evaluate_reports_both_label_sets_with_calibration(tmp_path):
    import subprocess
    import sys

    from dfer_edge.labels import LABELS
    from dfer_edge.ferplus import labels_by_rule
    from tests.helpers import FER_VAL, FERPLUS_VOTES as votes, fer_val_subset

    if not votes.is_file() or not FER_VAL.is_dir():
        pytest.skip(f"shared data not present: {votes}, {FER_VAL}")
    tree = fer_val_subset(tmp_path / "val", 5)
    out = tmp_path / "m.json"
    r = subprocess.run([sys.executable, "-m", "dfer_edge", "evaluate", str(tree), "--crops", "--votes", str(votes),
                        "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "folder labels: images 35" in r.stdout and "FER+ majority, official rule" in r.stdout
    assert "FER+ argmax of the 7 expression votes" in r.stdout
    assert r.stdout.count("ECE") == 3 and r.stdout.count("macro-F1") == 3
    m = json.loads(out.read_text())
    rules = labels_by_rule(votes)
    for key, rule in (("ferplus", "official"), ("ferplus_argmax7", "argmax7")):
        n_fp = sum(f.name in rules[rule] for lab in LABELS for f in (tree / lab).iterdir())
        assert m[key]["rule"] == rule and m[key]["n"] == n_fp and set(m[key]["per_class"]) == set(LABELS)
    # The official rule leaves out the faces without a clear majority: never more faces than argmax-of-7.
    assert m["ferplus"]["n"] <= m["ferplus_argmax7"]["n"]
    for block in (m, m["ferplus"], m["ferplus_argmax7"]):
        assert 0.0 <= block["ece"] <= 1.0 and block["ece_bins"] == 15
        assert sum(b["n"] for b in block["reliability"]) == block["n"]  # every crop has a face
        # The ECE is what the reliability bins say it is.
        assert block["ece"] == pytest.approx(sum(b["n"] * abs(b["confidence"] - b["accuracy"])
                                                 for b in block["reliability"]) / block["n"], abs=2e-4)
