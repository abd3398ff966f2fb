"""The TensorFlow side (convert/) against the runtime: exported .tflite files load in ExpressionModel,
inputs are bound by name, int8 quantisation is handled, and broken models fail with one-line errors.

The exports need TensorFlow (the optional `convert` extra): tests using them skip without it (their
fixtures call pytest.importorskip); the shipped-model and corrupt-file tests run regardless.
"""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from dfer_edge.errors import ModelError
from dfer_edge.labels import LABELS
from dfer_edge.model import INPUT_NAMES, ExpressionModel, default_model_path
from tests.helpers import model_with
from tests.conftest import CROP

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

# Distinct constant crops and distinct features: every input has its own value. The crop values are
# multiples of 1/8 so that the interpreter's float32 mean over 96x96 pixels is exact.
RIGHT, LEFT, MOUTH = 0.125, 0.5, 0.875
FEATURES = np.linspace(0.2, 1.4, 13).astype(np.float32)


def crop(v: float) -> np.ndarray:
    return np.full((CROP, CROP), v, dtype=np.float32)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def expected(tiny, right: float, left: float, mouth: float, features: np.ndarray) -> np.ndarray:
    """What the tiny model computes, in numpy (its outputs are declared in LABELS order)."""
    x = np.concatenate([[right, left, mouth], features]).astype(np.float64)
    return softmax(x @ tiny.kernel.astype(np.float64) + tiny.bias)


def run_probs(model: ExpressionModel, x: dict[str, np.ndarray]) -> np.ndarray:
    """ExpressionModel.run over a batch of float model inputs (N, S, S, 1) / (N, 13)."""
    return np.stack([model.run(x["right_eye"][i, :, :, 0], x["left_eye"][i, :, :, 0], x["mouth"][i, :, :, 0],
                               x["features"][i]) for i in range(len(x["features"]))])


# --- binding by name ----------------------------------------------------------------------------

def test_inputs_are_bound_by_name(tiny_float32):
    m = ExpressionModel(tiny_float32.path)
    got = m.run(crop(RIGHT), crop(LEFT), crop(MOUTH), FEATURES)
    np.testing.assert_allclose(got, expected(tiny_float32, RIGHT, LEFT, MOUTH, FEATURES), atol=1e-5)


@pytest.mark.parametrize("swap", ["right/left eye", "right eye/mouth", "left eye/mouth", "features reversed"])
def test_swapping_inputs_changes_the_answer(tiny_float32, swap):
    """So a model bound by position instead of by name could not pass the test above."""
    m = ExpressionModel(tiny_float32.path)
    r, l, mo, f = RIGHT, LEFT, MOUTH, FEATURES
    if swap == "right/left eye":
        r, l = l, r
    elif swap == "right eye/mouth":
        r, mo = mo, r
    elif swap == "left eye/mouth":
        l, mo = mo, l
    else:
        f = f[::-1].copy()
    got = m.run(crop(r), crop(l), crop(mo), f)
    np.testing.assert_allclose(got, expected(tiny_float32, r, l, mo, f), atol=1e-5)
    straight = expected(tiny_float32, RIGHT, LEFT, MOUTH, FEATURES)
    assert np.abs(got - straight).max() > 1e-2


def test_outputs_are_reordered_by_metadata_labels(tiny_float32, tmp_path):
    """A model declaring its outputs in another order still answers in LABELS order."""
    declared = LABELS[3:] + LABELS[:3]
    path = model_with(tiny_float32.path, tmp_path / "permuted.tflite", labels=list(declared))
    raw = expected(tiny_float32, RIGHT, LEFT, MOUTH, FEATURES)  # output k means declared[k]
    want = np.array([raw[declared.index(lab)] for lab in LABELS])
    got = ExpressionModel(path).run(crop(RIGHT), crop(LEFT), crop(MOUTH), FEATURES)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_export_writes_metadata_sidecar(tiny_float32):
    meta = json.loads(tiny_float32.path.with_suffix(".json").read_text())
    assert meta["labels"] == list(LABELS)
    assert meta["crop_size"] == CROP
    assert meta["features"] == "iod"
    assert meta["variant"] == "float32"
    assert meta["inputs"] == list(INPUT_NAMES)
    info = ExpressionModel(tiny_float32.path).info
    assert (info.crop_size, info.feature_mode, info.labels) == (CROP, "iod", LABELS)
    assert set(info.input_dtypes.values()) == {"float32"}


# --- the real network on real faces: float32 and int8 vs Keras ----------------------------------

def test_float32_export_matches_keras(real_exports, fer_val_arrays, fer_val_faces):
    _, x = fer_val_arrays
    m = ExpressionModel(real_exports.float32, threads=1)
    np.testing.assert_allclose(run_probs(m, x), real_exports.keras_probs, atol=1e-4)
    # The runtime's model call on the inputs its extraction makes (uint8 crops, features from float64
    # landmarks; before the pipeline's flip averaging and temperature) gives the same answer.
    runtime = np.stack([m(f) for f in fer_val_faces.faces])
    np.testing.assert_allclose(runtime, real_exports.keras_probs, atol=1e-4)


@pytest.mark.parametrize("variant", ["int8", "int8_full"])
def test_int8_export_is_close_to_keras(real_exports, fer_val_arrays, variant):
    _, x = fer_val_arrays
    ref = real_exports.keras_probs
    got = run_probs(ExpressionModel(getattr(real_exports, variant), threads=1), x)
    assert np.abs(got - ref).max() < 0.1
    assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.8


def test_int8_full_export_has_int8_inputs_and_is_dequantised(real_exports, fer_val_faces):
    m = ExpressionModel(real_exports.int8_full, threads=1)
    assert m.info.input_dtypes == {n: "int8" for n in INPUT_NAMES}
    assert m.info.metadata["variant"] == "int8-full"
    for f in fer_val_faces.faces[:10]:
        p = m(f)
        assert p.shape == (len(LABELS),)
        assert (p >= 0).all() and abs(p.sum() - 1.0) < 1e-6


def test_int8_export_keeps_only_the_first_convolutions_in_float(real_exports):
    """The default int8 recipe: float inputs feed three float convolutions; every other op is int8, and
    the batch is fixed at one, so no run-time shape ops split the graph."""
    m = ExpressionModel(real_exports.int8, threads=1)
    assert m.info.input_dtypes == {n: "float32" for n in INPUT_NAMES}
    assert m.info.metadata["variant"] == "int8"
    it = m._interp
    dtype = {t["index"]: np.dtype(t["dtype"]) for t in it.get_tensor_details()}
    ops = it._get_ops_details()
    convs = [op for op in ops if op["op_name"] == "CONV_2D"]
    float_convs = [op for op in convs if dtype[op["outputs"][0]] == np.float32]
    inputs = {int(d["index"]) for d in it.get_input_details()}
    assert len(float_convs) == 3 and all(op["inputs"][0] in inputs for op in float_convs)
    assert all(dtype[op["outputs"][0]] == np.int8 for op in convs if op not in float_convs)
    fcs = [op for op in ops if op["op_name"] == "FULLY_CONNECTED"]
    assert fcs and all(dtype[op["outputs"][0]] == np.int8 for op in fcs)
    assert not [op for op in ops if op["op_name"] in ("SHAPE", "PACK", "STRIDED_SLICE")]


def test_shipped_int8_model_runs_on_real_faces(fer_val_faces):
    m = ExpressionModel(None, threads=1)
    assert m.path == default_model_path()
    p = np.stack([m(f) for f in fer_val_faces.faces])
    assert p.shape == (len(fer_val_faces.faces), len(LABELS))
    assert (p >= 0).all()
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-6)


def test_shipped_int8_agrees_with_shipped_float32(fer_val_faces):
    float_path = default_model_path().with_name("dfer-float32.tflite")
    if not float_path.is_file():
        pytest.skip(f"no float32 model shipped next to the int8 one ({float_path})")
    p8 = np.stack([ExpressionModel(None, threads=1)(f) for f in fer_val_faces.faces])
    p32 = np.stack([ExpressionModel(float_path, threads=1)(f) for f in fer_val_faces.faces])
    assert (p8.argmax(1) == p32.argmax(1)).mean() >= 0.9


# --- loading errors -----------------------------------------------------------------------------

def test_wrong_input_names_are_refused(wrongly_named_model):
    with pytest.raises(ModelError) as e:
        ExpressionModel(wrongly_named_model)
    msg = str(e.value)
    assert "\n" not in msg
    assert str(wrongly_named_model) in msg
    for name in INPUT_NAMES:
        assert name in msg


def test_corrupt_model_file_is_refused(tmp_path):
    path = tmp_path / "corrupt.tflite"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ModelError) as e:
        ExpressionModel(path)
    msg = str(e.value)
    assert "\n" not in msg
    assert str(path) in msg


def test_metadata_labels_must_be_the_seven(tiny_float32, tmp_path):
    path = model_with(tiny_float32.path, tmp_path / "six.tflite", labels=list(LABELS[:6]))
    with pytest.raises(ModelError) as e:
        ExpressionModel(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and "not a permutation" in msg


