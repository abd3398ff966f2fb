"""Session-wide fixtures for the expensive things: real faces extracted once from FER2013 val, and
TFLite models converted once (each TensorFlow conversion costs seconds).

TensorFlow is the optional `convert` extra: fixtures that need it skip without it, and it is only
imported inside them, so the runtime tests never load it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from dfer_edge.labels import LABELS
from tests.helpers import FER_VAL

pytest_plugins = ["tests.require_data"]  # DFER_REQUIRE_DATA=1: missing shared data fails, not skips

CROP = 96
N_FEATURES = 13
FACES_PER_LABEL = 9  # 7 labels x 9 = 63 real faces


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared test data not available: {path}")
    return path


def import_tensorflow():
    return pytest.importorskip("tensorflow", reason="TensorFlow (the optional `convert` extra) is not installed")


# --- real extracted faces -----------------------------------------------------------------------

@dataclass
class RealFaces:
    faces: list  # dfer_edge.extract.FaceInputs, as the runtime extracts them
    labels: np.ndarray  # index into LABELS: the FER2013 folder each face came from
    paths: list[Path]


@pytest.fixture(scope="session")
def session_landmarks():
    from dfer_edge.errors import LandmarkModelError
    from dfer_edge.landmarks import LandmarkModel

    try:
        return LandmarkModel()
    except LandmarkModelError as e:
        pytest.skip(f"dlib landmark model not available: {e}")


@pytest.fixture(scope="session")
def fer_val_faces(session_landmarks) -> RealFaces:
    """The first FACES_PER_LABEL images of every FER2013 val folder, through the runtime's own
    ready-crop extraction (HOG without upsampling, dlib landmarks, levelled crops, iod features)."""
    from dfer_edge.detect import FaceDetector
    from dfer_edge.extract import ready_crop_inputs
    from dfer_edge.image import load_gray

    need(FER_VAL)
    det = FaceDetector(0)
    faces, labels, paths = [], [], []
    for i, lab in enumerate(LABELS):
        files = sorted((FER_VAL / lab).glob("*.jpg"))[:FACES_PER_LABEL]
        if not files:
            pytest.skip(f"shared data incomplete: no FER2013 val images for {lab} in {FER_VAL}")
        for p in files:
            fi, _ = ready_crop_inputs(load_gray(p), det, session_landmarks, CROP)
            faces.append(fi)
            labels.append(i)
            paths.append(p)
    return RealFaces(faces, np.array(labels), paths)


@pytest.fixture(scope="session")
def fer_val_arrays(fer_val_faces):
    """The same faces as a training-side convert.data.Arrays (landmarks stored as float32, as the
    extraction cache stores them) and the float model inputs convert.data.model_inputs makes of it."""
    import convert.data as D

    f = fer_val_faces.faces
    n = len(f)
    a = D.Arrays(np.stack([x.right_eye for x in f]), np.stack([x.left_eye for x in f]), np.stack([x.mouth for x in f]),
                 np.stack([x.landmarks for x in f]).astype(np.float32),
                 np.eye(len(LABELS), dtype=np.float32)[fer_val_faces.labels], fer_val_faces.labels,
                 np.array([""] * n), np.array([str(p) for p in fer_val_faces.paths]))
    return a, D.model_inputs(a)


# --- tiny models with a known function ----------------------------------------------------------

@dataclass
class TinyModel:
    path: Path  # float32 .tflite (with its .json sidecar)
    kernel: np.ndarray  # (16, 7): [mean right_eye, mean left_eye, mean mouth, 13 features] -> logits
    bias: np.ndarray  # (7,)


def tiny_weights() -> tuple[np.ndarray, np.ndarray]:
    """Each input drives its own logit with its own weight: right_eye -> logit 0, left_eye -> 1,
    mouth -> 2, feature k -> logit 3 + k % 4 with weight 0.1 (k + 1). Any binding mix-up changes
    the output."""
    w = np.zeros((3 + N_FEATURES, len(LABELS)), dtype=np.float32)
    w[0, 0], w[1, 1], w[2, 2] = 3.0, -2.0, 1.5
    for k in range(N_FEATURES):
        w[3 + k, 3 + k % 4] = 0.1 * (k + 1)
    b = np.linspace(-0.3, 0.3, len(LABELS)).astype(np.float32)
    return w, b


def build_tiny(names=("right_eye", "left_eye", "mouth", "features")):
    """Global average of each crop and the raw features, concatenated, then Dense(7, softmax) with the
    weights of tiny_weights()."""
    import keras
    from keras import layers

    crops = [keras.Input((CROP, CROP, 1), name=n) for n in names[:3]]
    feats = keras.Input((N_FEATURES,), name=names[3])
    pooled = [layers.GlobalAveragePooling2D(name=f"{n}_mean")(c) for n, c in zip(names[:3], crops)]
    x = layers.Concatenate(name="all")([*pooled, feats])
    dense = layers.Dense(len(LABELS), activation="softmax", name="probabilities")
    y = dense(x)
    model = keras.Model([*crops, feats], y, name="tiny")
    w, b = tiny_weights()
    dense.set_weights([w, b])
    return model


@pytest.fixture(scope="session")
def tiny_float32(tmp_path_factory) -> TinyModel:
    import_tensorflow()
    from convert.export import export

    out = tmp_path_factory.mktemp("tiny")
    [path] = export(build_tiny(), out, "t", ["float32"], None)
    w, b = tiny_weights()
    return TinyModel(path, w, b)


@pytest.fixture(scope="session")
def wrongly_named_model(tmp_path_factory) -> Path:
    """The tiny model with its inputs named a, b, c, d instead of the four the runtime binds."""
    import_tensorflow()
    from convert.export import export

    out = tmp_path_factory.mktemp("wrong-names")
    [path] = export(build_tiny(("a", "b", "c", "d")), out, "t", ["float32"], None)
    return path


# --- the real network, briefly trained on real faces, exported float32 + int8 ---------------------

TRAIN_EPOCHS = 15  # enough for clear top-1 margins on these faces (untrained outputs are near-uniform ties)


@dataclass
class RealExports:
    keras_probs: np.ndarray  # (N, 7) Keras model.predict on convert.data.model_inputs
    float32: Path
    int8: Path  # int8 with the first convolutions in float (the shipped default's recipe)
    int8_full: Path  # integer-only


@pytest.fixture(scope="session")
def real_exports(fer_val_arrays, tmp_path_factory) -> RealExports:
    import_tensorflow()
    import keras

    from convert.export import export
    from convert.model import build_model

    a, x = fer_val_arrays
    keras.utils.set_random_seed(0)
    model = build_model()
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="categorical_crossentropy")
    model.fit(x, a.target, epochs=TRAIN_EPOCHS, batch_size=16, verbose=0)
    probs = model.predict(x, verbose=0)
    rep = [{k: v[i:i + 1] for k, v in x.items()} for i in range(len(a))]
    out = tmp_path_factory.mktemp("real")
    f32, i8, i8_full = export(model, out, "r", ["float32", "int8", "int8-full"], rep)
    return RealExports(probs, f32, i8, i8_full)
