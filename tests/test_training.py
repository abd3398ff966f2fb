"""The training side end to end on real faces: FER+ targets, faces the raters did not see as an
expression, the calibration hold-out, wild augmentation, distillation, and crop regions and temperature
travelling from extraction through training and export into the runtime."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dfer_edge.labels import LABELS
from tests.helpers import FER_VAL, FERPLUS_VOTES as VOTES, fer_val_subset

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
WIDE = "eye_side=0.75,eye_raise=0.15,eye_inward=0.05,mouth_side=1.1,mouth_raise=0.12"


def blank_arrays(n: int, subject=None, names=None):
    """n blank faces named f0.jpg, f1.jpg, ... or `names` (for what depends only on names and subjects)."""
    import convert.data as D

    z = np.zeros((n, 96, 96), np.uint8)
    lm = np.zeros((n, 68, 2), np.float32)
    return D.Arrays(z, z, z, lm, np.zeros((n, 7), np.float32), np.zeros(n, int),
                    np.array(subject or [""] * n), np.array(names or [f"f{i}.jpg" for i in range(n)]))


def test_non_expression_faces_are_the_ones_raters_mostly_put_elsewhere():
    pytest.importorskip("cv2")
    import convert.data as D

    votes = np.array([[6, 1, 0, 0, 0, 0, 0], [2, 1, 0, 0, 0, 0, 0], [3, 0, 0, 0, 0, 0, 0], [np.nan] * 7])
    other = np.array([3.0, 7.0, 3.0, np.nan])
    assert D.non_expression(votes, other).tolist() == [False, True, False, False]


def test_holdout_is_by_name_and_never_a_subject():
    tf = pytest.importorskip("tensorflow", reason="convert/ needs TensorFlow (the optional `convert` extra)")
    del tf
    from convert.calibrate import holdout_mask

    a = blank_arrays(4000)
    m = holdout_mask(a, 0.1)
    assert 0.08 < m.mean() < 0.12
    assert (holdout_mask(a, 0.1) == m).all()  # the same faces every time
    b = blank_arrays(4000, subject=["AF01"] * 4000)
    assert not holdout_mask(b, 0.1).any()


def test_the_training_mirror_is_the_runtimes(fer_val_arrays, fer_val_faces):
    """A face flipped by training augmentation, and by convert.data.mirrored (calibration, teachers), is
    exactly what the runtime's flip averaging scores (dfer_edge.extract.mirrored): crops and features."""
    import convert.data as D
    from dfer_edge.extract import mirrored

    a, x = fer_val_arrays
    runtime = [mirrored(f) for f in fer_val_faces.faces]
    want = {"right_eye": np.stack([m.right_eye for m in runtime])[..., None] / np.float32(255),
            "left_eye": np.stack([m.left_eye for m in runtime])[..., None] / np.float32(255),
            "mouth": np.stack([m.mouth for m in runtime])[..., None] / np.float32(255),
            "features": np.stack([m.features for m in runtime])}
    whole = D.model_inputs(D.mirrored(a))
    only_flips = D.Augment(rotate_deg=0, scale=0, shift=0, brightness=0, contrast=0, landmark_jitter=0)
    batch = D.augmented_batch(a, np.arange(len(a)), np.random.default_rng(1), only_flips)
    # (x - mean) * 1 + mean: the photometric step leaves float rounding, hence atol 1e-6 for the batch.
    flipped = np.abs(batch["mouth"] - x["mouth"]).max(axis=(1, 2, 3)) > 1e-3
    assert 0 < flipped.sum() < len(a)  # some faces flipped, some not
    for k in ("right_eye", "left_eye", "mouth"):
        np.testing.assert_array_equal(whole[k], want[k], err_msg=k)
        np.testing.assert_allclose(batch[k][flipped], want[k][flipped], atol=1e-6, err_msg=k)
    # Features: training stores landmarks as float32, the runtime keeps float64; equal to float32 precision.
    np.testing.assert_allclose(whole["features"], want["features"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(batch["features"][flipped], want["features"][flipped], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(batch["mouth"][~flipped], x["mouth"][~flipped], atol=1e-6)


def test_wild_augmentation_keeps_inputs_valid(fer_val_arrays):
    import convert.data as D

    a, x = fer_val_arrays
    rng = np.random.default_rng(0)
    aug = D.Augment(erase=1.0, blur=1.0, lowres=1.0, gamma=0.5)
    b = D.augmented_batch(a, np.arange(len(a)), rng, aug)
    for k in ("right_eye", "left_eye", "mouth"):
        assert b[k].shape == x[k].shape and b[k].dtype == np.float32
        assert 0.0 <= b[k].min() and b[k].max() <= 1.0
        assert not np.allclose(b[k], x[k], atol=0.02)  # it did change the crops
    np.testing.assert_array_equal(b["features"].shape, x["features"].shape)


def test_extract_train_teach_export_and_run(tmp_path, capsys):
    pytest.importorskip("tensorflow", reason="convert/ needs TensorFlow (the optional `convert` extra)")
    if not VOTES.is_file() or not FER_VAL.is_dir():
        pytest.skip(f"shared data not present: {VOTES}, {FER_VAL}")
    from convert.__main__ import main
    from dfer_edge.detect import FaceDetector
    from dfer_edge.extract import ready_crop_inputs
    from dfer_edge.geometry import CropRegions
    from dfer_edge.image import load_gray
    from dfer_edge.landmarks import LandmarkModel
    from dfer_edge.model import ExpressionModel
    from dfer_edge.options import RecognizerOptions
    from dfer_edge.pipeline import Pipeline

    tree = fer_val_subset(tmp_path / "fer", 8)
    cache = tmp_path / "fer.npz"
    # The local equaliser (CLAHE) too, so that the run shows a model carrying its equaliser to the runtime.
    assert main(["extract", str(tree), "--crops", "--votes", str(VOTES), "--crop-regions", WIDE, "--equalize", "clahe",
                 "--out", str(cache)]) == 0
    z = np.load(cache)
    assert json.loads(str(z["crop_regions"]))["mouth_side"] == 1.1 and z["votes_other"].shape == (56,)
    assert str(z["equalize"]) == "clahe"

    run = tmp_path / "run"
    assert main(["train", "--train", str(cache), "--val", str(cache), "--labels", "ferplus-soft", "--wild-augment",
          "--epochs", "1", "--batch", "16", "--calibration-holdout", "0.3", "--out", str(run)]) == 0
    m = json.loads((run / "metrics.json").read_text())
    cal = m["calibration"]
    assert 0.3 <= cal["temperature"] <= 4.0 and cal["n"] > 5
    assert m["crop_regions"]["eye_inward"] == 0.05
    assert m["equalize"] == "clahe"
    assert "ferplus_official_flip_averaged" in m["val"]["fer"] and "ferplus_argmax7_flip_averaged" in m["val"]["fer"]
    assert m["val"]["fer"]["ferplus_official"]["n"] <= m["val"]["fer"]["ferplus_argmax7"]["n"]
    dropped = int(__import__("convert.data", fromlist=["x"]).non_expression(z["votes"], z["votes_other"]).sum())
    assert m["train_faces"] == 56 - dropped - cal["held_out"]  # non-expression faces and the hold-out left out
    assert 0 < cal["n"] <= cal["held_out"]  # fitted on the held-out faces with an official FER+ label

    teacher = tmp_path / "teacher.npz"
    assert main(["teach", "--model", str(run / "model.keras"), "--data", str(cache), "--out", str(teacher)]) == 0
    t = np.load(teacher)
    assert t["probabilities"].shape == (56, 7) and np.allclose(t["probabilities"].astype(np.float32).sum(1), 1.0, atol=3e-3)
    student = tmp_path / "student"
    capsys.readouterr()
    assert main(["train", "--train", str(cache), "--val", str(cache), "--labels", "ferplus-soft", "--teacher", str(teacher),
          "--distill", "0.5", "--epochs", "1", "--batch", "16", "--calibration-holdout", "0", "--out", str(student)]) == 0
    assert f"{56 - dropped} of {56 - dropped} faces get 0.5 of their target" in capsys.readouterr().out
    assert "calibration" not in json.loads((student / "metrics.json").read_text())

    out = tmp_path / "models"
    contract = json.loads((run / "contract.json").read_text())  # train writes what export needs
    assert contract["equalize"] == "clahe" and contract["calibration"]["temperature"] == cal["temperature"]
    capsys.readouterr()
    assert main(["export", str(run / "model.keras"), "--out-dir", str(out / "bare"), "--variants", "float32"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: model.keras is a model of this project's") and "--run RUN" in err and "\n" not in err
    assert not (out / "bare").exists() or not any((out / "bare").iterdir())
    assert main(["export", str(run / "model.keras"), "--out-dir", str(out), "--variants", "float32", "--run", str(run)]) == 0
    meta = json.loads((out / "dfer-float32.json").read_text())
    assert meta["calibration"]["temperature"] == cal["temperature"]
    from dfer_edge.contract import embedded_metadata

    inside = json.loads(embedded_metadata((out / "dfer-float32.tflite").read_bytes()))
    assert inside == meta  # the contract travels inside the model; the sidecar is its copy
    (out / "dfer-float32.json").unlink()  # a model copied alone keeps its settings
    model = ExpressionModel(out / "dfer-float32.tflite")
    assert model.temperature == cal["temperature"]
    assert model.info.regions == CropRegions(eye_side=0.75, eye_raise=0.15, eye_inward=0.05, mouth_side=1.1,
                                             mouth_raise=0.12)
    assert meta["equalize"] == "clahe" and model.info.equalize == "clahe"
    # The runtime cuts the crops the model was trained on: the same pixels as the training cache, with the
    # equaliser the model names.
    first = sorted((tree / LABELS[0]).glob("*.jpg"))[0]
    pipe = Pipeline(RecognizerOptions(model=out / "dfer-float32.tflite"))
    assert pipe.equalize == "clahe"
    _, face = pipe.run_crop(first)
    row = list(z["name"]).index(str(first))
    np.testing.assert_array_equal(face.inputs.mouth, z["mouth"][row])
    fi, _ = ready_crop_inputs(load_gray(first), FaceDetector(0), LandmarkModel(), 96, regions=model.info.regions)
    assert not np.array_equal(fi.mouth, z["mouth"][row])  # the seed's global equaliser cuts other pixels


def _fer_cache(tmp_path, per_class: int = 8):
    """A small real FER2013 cache (extracted as `make model` does, whole faces included)."""
    from convert.__main__ import main

    tree = fer_val_subset(tmp_path / "fer", per_class)
    cache = tmp_path / "fer.npz"
    assert main(["extract", str(tree), "--crops", "--votes", str(VOTES), "--out", str(cache)]) == 0
    return cache


def test_a_killed_run_resumes_from_its_last_epoch(tmp_path):
    """A training process killed mid-run (SIGKILL: no clean-up of any kind) leaves its last finished epoch
    on disk; `--resume RUN` continues from there with the options the run was started with, and the
    finished run has every epoch's history once."""
    import os
    import signal
    import subprocess
    import sys
    import time

    pytest.importorskip("tensorflow", reason="convert/ needs TensorFlow (the optional `convert` extra)")
    if not VOTES.is_file() or not FER_VAL.is_dir():
        pytest.skip(f"shared data not present: {VOTES}, {FER_VAL}")
    cache = _fer_cache(tmp_path)
    run = tmp_path / "run"
    epochs = 12
    cmd = [sys.executable, "-m", "convert", "train", "--train", str(cache), "--val", str(cache), "--labels",
           "ferplus-soft", "--epochs", str(epochs), "--batch", "16", "--calibration-holdout", "0", "--threads", "1",
           "--out", str(run)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    state = run / "state.json"
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            if state.exists() and json.loads(state.read_text())["epoch"] >= 1:
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    done = json.loads(state.read_text())["epoch"]
    assert 1 <= done < epochs and (run / "checkpoint.keras").exists() and not (run / "model.keras").exists()
    # Starting a new run in the same place is refused; resuming continues it.
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 1 and "--resume" in again.stderr and again.stderr.count("\n") == 1
    r = subprocess.run([sys.executable, "-m", "convert", "train", "--resume", str(run)], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"resuming {run} after epoch {done} of {epochs}" in r.stdout
    m = json.loads((run / "metrics.json").read_text())
    assert m["resumed_after_epochs"] == done
    assert len(m["history"]["loss"]) == epochs  # the epochs before the kill and after it, each once
    assert m["args"]["epochs"] == epochs and m["args"]["labels"] == "ferplus-soft"
    # A finished run is not trained again.
    r = subprocess.run([sys.executable, "-m", "convert", "train", "--resume", str(run)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0 and "finished already" in r.stdout
    bad = subprocess.run([sys.executable, "-m", "convert", "train", "--resume", str(tmp_path / "nothing")],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and bad.stderr.startswith("error: ") and bad.stderr.count("\n") == 1


def test_whole_face_teacher_trains_and_teaches(tmp_path):
    """Extraction stores the levelled whole face beside the crops; `--arch face` trains the teacher on it, and
    `convert teach` feeds each model what it eats (whole faces here, crops for a four-branch model)."""
    pytest.importorskip("tensorflow", reason="convert/ needs TensorFlow (the optional `convert` extra)")
    if not VOTES.is_file() or not FER_VAL.is_dir():
        pytest.skip(f"shared data not present: {VOTES}, {FER_VAL}")
    from convert.__main__ import main
    from convert.wholeface import FACE_SIZE

    cache = _fer_cache(tmp_path)
    z = np.load(cache)
    assert z["face"].shape == (56, FACE_SIZE, FACE_SIZE) and z["face"].dtype == np.uint8
    assert z["face"].std() > 20  # real faces, not padding
    assert z["votes_extra"].shape == (56, 3)
    run = tmp_path / "teacher"
    assert main(["train", "--arch", "face", "--train", str(cache), "--val", str(cache), "--labels", "ferplus-soft",
                 "--epochs", "1", "--batch", "16", "--calibration-holdout", "0.3", "--out", str(run)]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert m["args"]["arch"] == "face" and "ferplus_official" in m["val"]["fer"]
    assert "official" in m["calibration"]["against"]
    out = tmp_path / "soft.npz"
    assert main(["teach", "--model", str(run / "model.keras"), "--data", str(cache), "--out", str(out)]) == 0
    t = np.load(out)
    from convert.distill import face_key

    # Keyed by label folder and file name, so committed outputs work wherever the data lives.
    assert list(t["name"]) == [face_key(n) for n in z["name"]] and str(t["name"][0]).count("/") == 1
    assert np.allclose(t["probabilities"].astype(np.float32).sum(1), 1.0, atol=3e-3)


def test_tune_subjects_are_neither_trained_on_nor_held_out():
    from convert.splits import heldout_subjects, tune_subjects

    held, tune = heldout_subjects(), tune_subjects()
    assert len(held) == 12 and len(tune) == 8 and not held & tune
    assert sum(s.startswith("F") for s in tune) == 4


def test_capture_copies_can_take_the_teachers_answer_for_their_clean_photo(tmp_path):
    """--teacher-clean-copies: a degraded copy is taught what the teacher says of the clean photo it was made
    from (so the student learns to answer as if the photo were clean); without it, what it says of the copy."""
    from convert.distill import mix_teacher

    names = ["../data/kdef/fear/AF01AFS.jpg#capture0", "../data/kdef/fear/AF01AFS.jpg#capture1",
             "../data/kdef/fear/AF02AFS.jpg#capture0"]
    onehot = np.tile(np.eye(7, dtype=np.float32)[LABELS.index("fear")], (len(names), 1))
    arr = blank_arrays(len(names), ["AF01", "AF01", "AF02"], names).with_target(onehot)
    clean = np.eye(7, dtype=np.float32)[LABELS.index("surprise")]  # the teacher on the clean AF01 photo
    copy = np.eye(7, dtype=np.float32)[LABELS.index("neutral")]  # ... and on its degraded copies
    teacher = tmp_path / "t.npz"
    np.savez(teacher, name=np.array(["fear/AF01AFS.jpg", "fear/AF01AFS.jpg#capture0", "fear/AF01AFS.jpg#capture1",
                                     "fear/AF02AFS.jpg#capture0"]),
             probabilities=np.stack([clean, copy, copy, copy]).astype(np.float16))
    own, hit = mix_teacher(arr, [str(teacher)], 0.5)
    assert hit == 3 and np.allclose(own.target[0], 0.5 * onehot[0] + 0.5 * copy)
    fixed, hit = mix_teacher(arr, [str(teacher)], 0.5, clean_copies=True)
    assert hit == 3 and np.allclose(fixed.target[:2], 0.5 * onehot[0] + 0.5 * clean)
    assert np.allclose(fixed.target[2], 0.5 * onehot[0] + 0.5 * copy)  # its clean photo is not in the file


def test_make_model_trains_the_shipped_models_recipe(tmp_path):
    """`make model` must reproduce the shipped model: the options its `convert train` line passes are the ones
    recorded in models/dfer-training-metrics.json (paths aside), so a recipe change cannot leave the Makefile
    and the shipped model telling two different stories."""
    import argparse
    import shlex
    import subprocess
    from pathlib import Path

    from convert.train import add_train_args

    repo = Path(__file__).resolve().parent.parent
    printed = subprocess.run(["make", "-n", "model", f"RUN={tmp_path}/run", f"CACHE={tmp_path}/cache"], cwd=repo,
                             capture_output=True, text=True, check=True).stdout
    line = next(ln for ln in printed.splitlines() if "convert train --train" in ln)
    argv = shlex.split(line.split("convert train", 2)[2].split(";")[0])
    p = argparse.ArgumentParser()
    add_train_args(p)
    made = vars(p.parse_args(argv))
    shipped = json.loads((repo / "models" / "dfer-training-metrics.json").read_text())["args"]
    # Paths, and the thread count: a machine setting (runs side by side train on one thread each), not the recipe.
    ignore = {"train", "val", "out", "resume", "cmd", "func", "threads"}
    differ = {k: (made.get(k), v) for k, v in shipped.items() if k not in ignore and made.get(k) != v}
    assert not differ, f"make model's recipe differs from the shipped model's (make, shipped): {differ}"
    assert [Path(t).name for t in made["train"]] == [Path(t).name for t in shipped["train"]]
