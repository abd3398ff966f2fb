"""Bring your own model: a Keras 2 legacy .h5 shaped like the original DeepFER's dfer_model.h5 (inputs
Right_Eye, Left_Eye, Lips 96x96x1 and Features 13, raw-pixel features) goes through
`python -m convert export` and then runs unchanged in the runtime, giving Keras's probabilities.

Needs TensorFlow and tf_keras (the optional `convert` extra), the dlib landmark model and the shared photos;
skips without them. Exports are shared through module-scoped fixtures.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dfer_edge import geometry
from dfer_edge.extract import features_for
from dfer_edge.labels import LABELS
from dfer_edge.model import INPUT_NAMES
from tests.conftest import import_tensorflow, need
from tests.helpers import FER_VAL, PHOTOS, synthetic_landmarks

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

REPO = Path(__file__).resolve().parents[1]
ANGRY = PHOTOS / "angry.jpg"
SEED_NAMES = ("Right_Eye", "Left_Eye", "Lips", "Features")
NUMBERED = ("input_1", "input_2", "input_3", "input_4")
INPUT_MAP = "input_1=right_eye,input_2=left_eye,input_3=lips,input_4=features"
# A model whose output k means PERMUTED[k]; given to --labels with common aliases.
PERMUTED = ("surprise", "fear", "happiness", "anger", "neutral", "disgust", "sadness")
PERMUTED_ARG = "surprised,fearful,happy,angry,neutral,disgust,sad"
TIMEOUT = 300


def need_tf_keras():
    import_tensorflow()
    return pytest.importorskip("tf_keras", reason="tf_keras (the optional `convert` extra) is not installed")


def seed_like(names=SEED_NAMES, size: int = 96, crop_shape=None, n_features: int = 13, lam: bool = False,
              seed: int = 0):
    """A small tf_keras (Keras 2) functional model laid out like the seed's: one conv branch per crop,
    a dense branch for the 13 raw-pixel features, merged into a 7-way softmax; default layer names.
    Random but fixed weights, scaled so that the outputs on a real face are not one-hot: the seeds used
    below give angry.jpg a top probability of 0.33-0.43, at least 0.18 ahead of the next, so the int8
    argmax is stable. `lam` adds a Python-lambda preprocessing layer, which Keras 3 refuses to load
    from .h5 (so tf_keras must)."""
    tf_keras = need_tf_keras()
    L = tf_keras.layers
    tf_keras.utils.set_random_seed(seed)
    crop_shape = crop_shape or (size, size, 1)
    crops = [tf_keras.Input(crop_shape, name=n) for n in names[:3]]
    feats = tf_keras.Input((n_features,), name=names[3])
    branches = []
    for c in crops:
        x = L.Lambda(lambda t: t * 2.0 - 1.0)(c) if lam else c
        x = L.Conv2D(8, 6, strides=3, padding="same", activation="relu")(x)
        x = L.Conv2D(16, 6, strides=2, padding="same")(x)
        x = L.BatchNormalization()(x)
        x = L.Activation("relu")(x)
        x = L.MaxPooling2D(2)(x)
        branches.append(L.Flatten()(x))
    x = L.Concatenate()(branches)
    x = L.Dropout(0.3)(x)
    x = L.Dense(16, activation="relu")(x)
    x = L.Dense(7)(x)
    feat_dense = L.Dense(16, activation="relu")
    f = L.Dense(7)(feat_dense(feats))
    y = L.Dense(7, activation="softmax")(L.Concatenate()([x, f]))
    model = tf_keras.Model([*crops, feats], y)
    # Raw pixel distances run to ~100: keep the feature branch from saturating the softmax.
    w, b = feat_dense.get_weights()
    feat_dense.set_weights([w * 0.02, b])
    return model


def _main(*args: str) -> tuple[int, str, str]:
    """`python -m convert export ...` in-process (TensorFlow is loaded once): (exit status, stdout, stderr)."""
    from convert.__main__ import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["export", *map(str, args)])
    return code, out.getvalue(), err.getvalue()


def run_export(*args: str) -> str:
    """What a successful export printed."""
    code, out, err = _main(*args)
    assert code == 0, err
    return out


def export_error(*args: str) -> str:
    """The one-line error of a failing export (library code raises ConvertError; main prints it, exit 1)."""
    code, _, err = _main(*args)
    msg = err.strip().splitlines()[-1] if err.strip() else ""
    assert code == 1 and msg.startswith("error: "), (code, err)
    return msg


# --- the face the runtime sees in angry.jpg, extracted with dfer_edge's own steps -------------------

@pytest.fixture(scope="module")
def angry_face(session_landmarks):
    """(working image, landmarks of the largest face) exactly as Recognizer.predict finds them
    (session_landmarks: skips when the landmark model is absent)."""
    from dfer_edge.image import load_gray_for_width
    from dfer_edge.pipeline import Pipeline
    from dfer_edge.recognizer import RecognizerOptions

    need(ANGRY)
    opts = RecognizerOptions()
    assert opts.min_score == 0.1 and opts.upsample == 0 and opts.width == 512
    # The runtime's own steps 1-3 (denoising, flip-averaged landmarks and all), without a model.
    pipe = Pipeline(opts, score=False)
    work = pipe.prepare(*load_gray_for_width(ANGRY, opts.width))
    rects = pipe.detect(work, still=True)
    assert rects, "no face found in angry.jpg"
    return work.image, pipe.fit(work.image, rects[0])


def keras_inputs(angry_face, size: int, names=SEED_NAMES, mode: str = "seed-pixels") -> dict[str, np.ndarray]:
    from dfer_edge.extract import face_inputs

    image, pts = angry_face
    fi = face_inputs(image, pts, size, mode=mode)
    crops = [c.astype(np.float32)[None, :, :, None] / 255.0 for c in (fi.right_eye, fi.left_eye, fi.mouth)]
    return dict(zip(names, [*crops, fi.features[None].astype(np.float32)]))


def keras_probs(h5: Path, x: dict[str, np.ndarray]) -> np.ndarray:
    tf_keras = need_tf_keras()
    model = tf_keras.models.load_model(h5, compile=False)
    return model.predict([x[n] for n in model.input_names], verbose=0)[0].astype(np.float64)


def cli_predict(model: Path) -> dict[str, float]:
    # --no-flip-average: the reference is the Keras model on the one (unmirrored) view.
    p = subprocess.run([sys.executable, "-m", "dfer_edge", "predict", str(ANGRY), "--model", str(model), "--json",
                        "--no-flip-average"],
                       cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr
    faces = json.loads(p.stdout)[0]["faces"]
    assert faces, "the CLI found no face"
    return faces[0]["probabilities"]


# --- exports shared by the tests ---------------------------------------------------------------

@pytest.fixture(scope="module")
def seed_h5(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("seed") / "dfer_model.h5"
    seed_like().save(path)  # a .h5 suffix: the Keras 2 legacy HDF5 format
    return path


@pytest.fixture(scope="module")
def seed_exports(seed_h5, tmp_path_factory):
    """The seed-like .h5, float32 + int8 + int8-full, with parity printed on real FER2013 val faces."""
    need(FER_VAL)
    out = tmp_path_factory.mktemp("seed-out")
    log = run_export(seed_h5, "--out-dir", out, "--name", "seed", "--variants", "float32,int8,int8-full",
                     "--features", "seed-pixels", "--rep", FER_VAL, "--rep-count", 20,
                     "--parity-data", FER_VAL, "--parity-limit", 14)
    return out / "seed-float32.tflite", out / "seed-int8.tflite", log


@pytest.fixture(scope="module")
def numbered_h5(tmp_path_factory) -> Path:
    """90x90 crops, inputs input_1..input_4, a lambda layer (Keras 3 cannot load it: tf_keras does)."""
    path = tmp_path_factory.mktemp("numbered") / "numbered.h5"
    seed_like(NUMBERED, size=90, lam=True, seed=7).save(path)
    return path


@pytest.fixture(scope="module")
def numbered_exports(numbered_h5, tmp_path_factory):
    need(FER_VAL)
    out = tmp_path_factory.mktemp("numbered-out")
    log = run_export(numbered_h5, "--out-dir", out, "--name", "n", "--variants", "float32,int8",
                     "--features", "seed-pixels", "--inputs", INPUT_MAP, "--labels", PERMUTED_ARG,
                     "--rep", FER_VAL, "--rep-count", 20)
    return out / "n-float32.tflite", out / "n-int8.tflite", log


# --- the feature convention ---------------------------------------------------------------------

def test_seed_pixels_are_raw_working_image_distances():
    """Levelling is a rotation: distances on the levelled face equal those on the working image, so
    "seed-pixels" is the seed's raw pixel distances on its levelled face crop (no scaling)."""
    pts = synthetic_landmarks(250.0, 180.0, 90.0, angle_deg=17.0, jitter=0.03, seed=3)
    lev = geometry.level(pts)
    np.testing.assert_allclose(features_for(lev, "seed-pixels"), geometry.distances(pts), rtol=1e-6)
    np.testing.assert_allclose(features_for(lev, "iod"), geometry.distances(pts) / geometry.inter_ocular(pts),
                               rtol=1e-6)


# --- the seed's .h5: export, metadata, parity ---------------------------------------------------

def test_export_renames_inputs_and_writes_metadata(seed_exports):
    from dfer_edge.model import ExpressionModel

    f32, i8, log = seed_exports
    # int8 keeps the first convolutions in float, so its inputs are float; int8-full is integer-only.
    for path, dtype in ((f32, "float32"), (i8, "float32"), (i8.with_name("seed-int8-full.tflite"), "int8")):
        meta = json.loads(path.with_suffix(".json").read_text())
        assert meta["features"] == "seed-pixels"
        assert meta["labels"] == list(LABELS)
        assert meta["crop_size"] == 96
        assert meta["source_inputs"] == dict(zip(INPUT_NAMES, SEED_NAMES))
        m = ExpressionModel(path)
        assert m.info.feature_mode == "seed-pixels" and m.info.crop_size == 96
        assert m.info.input_dtypes == {n: dtype for n in INPUT_NAMES}
    assert "Right_Eye->right_eye" in log and "Lips->mouth" in log


def test_export_prints_parity_for_every_variant(seed_exports):
    _, _, log = seed_exports
    rows = {line.split("|")[1].strip(): line for line in log.splitlines() if line.startswith("| seed-")}
    assert set(rows) == {"seed-float32.tflite", "seed-int8.tflite", "seed-int8-full.tflite"}
    assert "14 faces" in log
    cells = [c.strip() for c in rows["seed-float32.tflite"].split("|")]
    assert cells[5] == "100.00%" and float(cells[6]) < 1e-3  # argmax agreement, max prob diff


def test_float32_cli_matches_keras_on_a_real_photo(seed_exports, seed_h5, angry_face):
    f32, _, _ = seed_exports
    ref = keras_probs(seed_h5, keras_inputs(angry_face, 96))
    assert ref.max() < 0.999, "the test model saturates: the comparison would be meaningless"
    got = cli_predict(f32)
    assert list(got) == list(LABELS)
    np.testing.assert_allclose([got[lab] for lab in LABELS], ref, atol=1e-5)
    # The runtime used the model's declared convention: iod features would give another answer.
    iod = keras_probs(seed_h5, keras_inputs(angry_face, 96, mode="iod"))
    assert np.abs(iod - ref).max() > 1e-3


def test_int8_cli_agrees_with_keras_on_a_real_photo(seed_exports, seed_h5, angry_face):
    _, i8, _ = seed_exports
    ref = keras_probs(seed_h5, keras_inputs(angry_face, 96))
    got = cli_predict(i8)
    assert max(got, key=got.get) == LABELS[int(ref.argmax())]
    assert abs(sum(got.values()) - 1.0) < 1e-4


# --- input_1..4 via --inputs, 90x90 crops, tf_keras fallback, permuted --labels ---------------------

def test_numbered_inputs_90px_load_with_tf_keras(numbered_exports):
    from ai_edge_litert.interpreter import Interpreter

    from dfer_edge.model import ExpressionModel

    f32, i8, log = numbered_exports
    assert "loaded with tf_keras" in log and "input_3->mouth" in log
    for path in (f32, i8):
        sig = Interpreter(model_path=str(path)).get_signature_list()["serving_default"]
        assert sorted(sig["inputs"]) == sorted(INPUT_NAMES)
        info = ExpressionModel(path).info
        assert info.crop_size == 90 and info.labels == PERMUTED
        assert json.loads(path.with_suffix(".json").read_text())["crop_size"] == 90


def test_permuted_labels_map_into_label_order(numbered_exports, numbered_h5, angry_face):
    """Output k of the model means PERMUTED[k]; the runtime reports every label under its own name."""
    from dfer_edge import Recognizer, RecognizerOptions

    f32, i8, _ = numbered_exports
    ref = keras_probs(numbered_h5, keras_inputs(angry_face, 90, NUMBERED))
    assert ref.max() < 0.999
    want = {PERMUTED[k]: ref[k] for k in range(len(PERMUTED))}
    with Recognizer(RecognizerOptions(model=f32, flip_average=False)) as rec:
        got = rec.predict(ANGRY)[0].probabilities
    assert list(got) == list(LABELS)
    np.testing.assert_allclose([got[lab] for lab in LABELS], [want[lab] for lab in LABELS], atol=1e-5)
    with Recognizer(RecognizerOptions(model=i8, flip_average=False)) as rec:
        assert rec.predict(ANGRY)[0].label == PERMUTED[int(ref.argmax())]


def test_keras3_file_with_seed_names(tmp_path):
    """A .keras (Keras 3) file is accepted too; its seed-named inputs are renamed the same way."""
    import_tensorflow()
    from dfer_edge.model import ExpressionModel
    from tests.conftest import CROP, build_tiny, tiny_weights

    src = tmp_path / "tiny.keras"
    build_tiny(SEED_NAMES).save(src)
    run_export(src, "--out-dir", tmp_path, "--name", "k", "--variants", "float32", "--features", "iod")
    m = ExpressionModel(tmp_path / "k-float32.tflite")
    feats = np.linspace(0.2, 1.4, 13).astype(np.float32)
    got = m.run(np.full((CROP, CROP), 0.125, np.float32), np.full((CROP, CROP), 0.5, np.float32),
                np.full((CROP, CROP), 0.875, np.float32), feats)
    w, b = tiny_weights()
    z = np.concatenate([[0.125, 0.5, 0.875], feats]) @ w.astype(np.float64) + b
    want = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    np.testing.assert_allclose(got, want, atol=1e-5)


# --- clear one-line errors ------------------------------------------------------------------------

def test_wrong_input_names_are_refused(tmp_path):
    path = tmp_path / "wrong.h5"
    seed_like(("Eyes1", "Eyes2", "Mouth", "Feat")).save(path)
    msg = export_error(path, "--out-dir", tmp_path, "--features", "seed-pixels", "--variants", "float32")
    for name in ("Eyes1", "Eyes2", "Feat", *INPUT_NAMES, *SEED_NAMES, "--inputs"):
        assert name in msg
    assert not list(tmp_path.glob("*.tflite"))


@pytest.mark.parametrize("case", ["rgb crops", "12 features", "crop sizes differ"])
def test_wrong_input_shapes_are_refused(tmp_path, case):
    if case == "rgb crops":
        model, want = seed_like(crop_shape=(96, 96, 3)), "(None, N, N, 1)"
    elif case == "12 features":
        model, want = seed_like(n_features=12), "(None, 13)"
    else:
        tf_keras = need_tf_keras()
        crops = [tf_keras.Input((s, s, 1), name=n) for n, s in zip(SEED_NAMES[:3], (96, 96, 90))]
        feats = tf_keras.Input((13,), name="Features")
        pooled = [tf_keras.layers.GlobalAveragePooling2D()(c) for c in crops]
        y = tf_keras.layers.Dense(7, activation="softmax")(tf_keras.layers.Concatenate()([*pooled, feats]))
        model, want = tf_keras.Model([*crops, feats], y), "same N"
    path = tmp_path / "bad.h5"
    model.save(path)
    msg = export_error(path, "--out-dir", tmp_path, "--features", "seed-pixels", "--variants", "float32")
    assert want in msg


def test_feature_convention_must_be_stated_for_foreign_models(seed_h5, tmp_path):
    msg = export_error(seed_h5, "--out-dir", tmp_path, "--variants", "float32")
    assert "--features seed-pixels" in msg and "--features iod" in msg


def test_bad_labels_and_input_map_are_refused(seed_h5, numbered_h5, tmp_path):
    msg = export_error(seed_h5, "--out-dir", tmp_path, "--features", "seed-pixels", "--labels", "happy,sad")
    assert all(lab in msg for lab in LABELS)
    msg = export_error(numbered_h5, "--out-dir", tmp_path, "--features", "seed-pixels", "--inputs",
                       "input_1=right_eye,input_2=right_eye,input_3=mouth,input_4=features")
    assert "right_eye" in msg
