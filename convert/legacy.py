"""Bring your own model: load a trained DeepFER Keras model (a Keras 2 legacy .h5 or a .keras file),
recognise its four inputs by name, and present it with the canonical input names the runtime binds.

Renaming, by how the model loads:

* Keras 3 (``keras.models.load_model``, which reads .keras and most legacy .h5 files): the loaded model
  is wrapped in a new functional model whose Inputs are named right_eye, left_eye, mouth, features and
  which calls the loaded model; ``model.export(dir)`` then writes a SavedModel with those names.
* tf_keras (Keras 2; used where Keras 3 cannot load the file, or with ``--loader tf_keras``): a
  ``tf.Module`` with a ``tf.function`` whose input signature carries the canonical names calls the
  model, and ``tf.saved_model.save`` writes it with that function as ``serving_default``.

Either way the TFLite converter then reads the SavedModel (``TFLiteConverter.from_saved_model``), so
every variant, int8 included (representative dicts keyed by the canonical names), takes one route.

Also here: real-face inputs for int8 calibration and parity, from an extracted .npz or an image folder,
computed with dfer_edge's own steps at the model's crop size and feature convention.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dfer_edge import geometry
from dfer_edge.extract import FEATURE_MODES, features_for
from dfer_edge.labels import LABELS, canonical_label
from dfer_edge.model import INPUT_NAMES

from .errors import ConvertError

CROP_INPUTS = INPUT_NAMES[:3]
SEED_NAMES = ("Right_Eye", "Left_Eye", "Lips", "Features")  # the original DeepFER's input names
# Recognised input names (compared lower-cased) -> canonical name.
ALIASES = {"right_eye": "right_eye", "left_eye": "left_eye", "mouth": "mouth", "lips": "mouth",
           "features": "features"}
LOADERS = ("auto", "keras", "tf_keras")
CROPS_MAX_SIDE = 100  # images no larger than this are taken as ready face crops (FER2013's 48x48)


def fail(msg: str) -> ConvertError:
    """The one-line error to raise (`raise fail(...)`); `python -m convert` prints it, exit status 1."""
    return ConvertError(msg)


def _first_line(e: BaseException) -> str:
    s = str(e).strip()
    return (s.splitlines()[0] if s else type(e).__name__)[:300]


# --- options ------------------------------------------------------------------------------------

def parse_input_map(text: str | None) -> dict[str, str]:
    """`input_1=right_eye,input_2=left_eye,...` -> {model input name: canonical name}."""
    out: dict[str, str] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, target = item.partition("=")
        name, target = name.strip(), target.strip()
        canon = ALIASES.get(target.lower())
        if not sep or not name or canon is None:
            raise fail(f"--inputs item {item!r} is not MODEL_INPUT=NAME with NAME one of {', '.join(INPUT_NAMES)} "
                       "(e.g. --inputs input_1=right_eye,input_2=left_eye,input_3=mouth,input_4=features)")
        out[name] = canon
    return out


def parse_labels(text: str | None) -> tuple[str, ...]:
    """`--labels a,b,...`: the model's output order, a permutation of LABELS (common aliases accepted)."""
    if not text:
        return LABELS
    items = [t.strip() for t in text.split(",") if t.strip()]
    canon = [canonical_label(t) for t in items]
    bad = [t for t, c in zip(items, canon) if c is None]
    if bad or sorted(canon) != sorted(LABELS):
        why = f"unknown {bad}" if bad else f"got {items}"
        raise fail(f"--labels must name each of {', '.join(LABELS)} once, in the model's output order ({why})")
    return tuple(canon)


# --- the loaded model ---------------------------------------------------------------------------

@dataclass
class InputSpec:
    """How a model's inputs map onto the canonical four, and its crop size."""

    source: dict[str, str]  # canonical name -> the model's own input name
    order: list[str]  # the model's input names in its own (positional) order
    size: int  # crop side N (inputs N x N x 1)
    n_outputs: int

    @property
    def canonical(self) -> bool:
        return all(self.source[c] == c for c in INPUT_NAMES)


def _dims(shape: Any) -> tuple:
    return tuple(None if d is None else int(d) for d in shape)


def check_inputs(names: list[str], shapes: list[tuple], out_shapes: list[tuple],
                 mapping: dict[str, str] | None = None, n_labels: int = len(LABELS)) -> InputSpec:
    """Recognise the inputs by name (or by `mapping`) and check every shape; one-line errors."""
    mapping = mapping or {}
    expected = (f"expected four inputs {', '.join(INPUT_NAMES)} (or the seed's {', '.join(SEED_NAMES)}, any case), "
                "or say which is which with --inputs NAME=right_eye,NAME=left_eye,NAME=mouth,NAME=features")
    unknown_map = [k for k in mapping if k not in names]
    if unknown_map:
        raise fail(f"--inputs names {unknown_map} but the model's inputs are {names}")
    if len(names) != len(INPUT_NAMES):
        raise fail(f"the model has {len(names)} inputs {names}; {expected}")
    canon = [mapping.get(n, ALIASES.get(n.lower())) for n in names]
    if None in canon or len(set(canon)) != len(INPUT_NAMES):
        bad = [n for n, c in zip(names, canon) if c is None]
        dup = sorted({c for c in canon if c is not None and canon.count(c) > 1})
        why = f"unknown: {bad}" if bad else f"more than one input maps to {dup}"
        raise fail(f"the model's inputs {names} are not recognised ({why}); {expected}")
    source = {c: n for n, c in zip(names, canon)}
    shape_of = {c: s for c, s in zip(canon, shapes)}
    sizes = set()
    for c in CROP_INPUTS:
        s = shape_of[c]
        if len(s) != 4 or s[1] is None or s[1] != s[2] or s[3] != 1:
            raise fail(f"model input {source[c]} ({c}) has shape {s}; expected (None, N, N, 1): "
                       "one grayscale N x N crop (pixels / 255), e.g. (None, 96, 96, 1)")
        sizes.add(s[1])
    if len(sizes) != 1:
        raise fail(f"the three crop inputs have different sizes {[shape_of[c] for c in CROP_INPUTS]}; expected "
                   "(None, N, N, 1) with the same N for right_eye, left_eye and mouth")
    fs = shape_of["features"]
    if len(fs) != 2 or fs[1] != geometry.N_FEATURES:
        raise fail(f"model input {source['features']} (features) has shape {fs}; expected "
                   f"(None, {geometry.N_FEATURES}): the seed's {geometry.N_FEATURES} landmark distances")
    if len(out_shapes) != 1 or len(out_shapes[0]) != 2 or out_shapes[0][1] != n_labels:
        raise fail(f"the model's outputs have shapes {out_shapes}; expected one output of shape (None, {n_labels}): "
                   "the probabilities of the seven expressions")
    return InputSpec(source, list(names), sizes.pop(), n_labels)


@dataclass
class LoadedModel:
    """A model with canonical inputs: `predict(dict) -> (N, outputs)` and `write_saved_model(dir)`."""

    spec: InputSpec
    loader: str  # "keras" or "tf_keras"
    model: Any  # the model as loaded
    wrapped: Any = None  # Keras 3: the functional model with canonical inputs (also what export() sees)
    notes: list[str] = field(default_factory=list)

    def predict(self, x: dict[str, np.ndarray], batch_size: int = 64) -> np.ndarray:
        if self.wrapped is not None:
            # The wrapper's (or an already canonical model's) input names are the canonical ones.
            canonical = InputSpec({c: c for c in INPUT_NAMES}, list(INPUT_NAMES), self.spec.size, self.spec.n_outputs)
            y = self.wrapped.predict(keras3_args(self.wrapped, x, canonical), batch_size=batch_size, verbose=0)
        else:
            by_name = {self.spec.source[c]: x[c] for c in INPUT_NAMES}
            y = self.model.predict([by_name[n] for n in self.spec.order], batch_size=batch_size, verbose=0)
        return np.asarray(y[0] if isinstance(y, (list, tuple)) else y, dtype=np.float32)

    def write_saved_model(self, path: str) -> None:
        if self.wrapped is not None:
            self.wrapped.export(path, verbose=False, input_signature=[batch_of_one(self.wrapped)])
        else:
            tf_keras_saved_model(self.model, self.spec, path)


def _keras3_spec(model, mapping, n_labels) -> InputSpec:
    names = [t.name for t in model.inputs]
    shapes = [_dims(t.shape) for t in model.inputs]
    outs = [_dims(t.shape) for t in model.outputs]
    return check_inputs(names, shapes, outs, mapping, n_labels)


def _tf_keras_spec(model, mapping, n_labels) -> InputSpec:
    names = list(model.input_names)
    shapes = [_dims(t.shape) for t in model.inputs]
    outs = [_dims(t.shape) for t in model.outputs]
    return check_inputs(names, shapes, outs, mapping, n_labels)


def keras3_args(model, by_canonical: dict[str, Any], spec: InputSpec) -> Any:
    """Values keyed by canonical name -> the structure the Keras 3 model was built on: a dict for a model
    built on a dict of inputs, else a list in model.inputs order (a dict is not reliably bound by name
    for a list-built model: a legacy .h5 loaded by Keras 3 took one positionally, in sorted key order)."""
    canon_of = {n: c for c, n in spec.source.items()}
    if isinstance(model.input, dict):
        return {k: by_canonical[canon_of[t.name]] for k, t in model.input.items()}
    return [by_canonical[canon_of[t.name]] for t in model.inputs]


def wrap_keras3(model, spec: InputSpec):
    """A new functional model with the canonical Inputs that calls `model` (inputs renamed, nothing else)."""
    import keras

    if spec.canonical:
        return model
    ins = {c: keras.Input((spec.size, spec.size, 1), name=c) for c in CROP_INPUTS}
    ins["features"] = keras.Input((geometry.N_FEATURES,), name="features")
    y = model(keras3_args(model, ins, spec))
    if isinstance(y, (list, tuple)):
        y = y[0]
    return keras.Model([ins[c] for c in INPUT_NAMES], y, name="dfer_imported")


def batch_of_one(model) -> list:
    """A Keras 3 model's input signature with the batch fixed to 1 (the runtime's only batch). With the
    batch left open, Flatten becomes SHAPE/STRIDED_SLICE/PACK/RESHAPE at run time, which XNNPACK does not
    take, so the graph ran as two delegate partitions with interpreter ops between them."""
    import tensorflow as tf

    return [tf.TensorSpec((1, *i.shape[1:]), tf.float32, name=i.name) for i in model.inputs]


def tf_keras_saved_model(model, spec: InputSpec, path: str) -> None:
    """SavedModel whose serving_default takes the canonical names and calls the tf_keras model."""
    import tensorflow as tf

    sigs = [tf.TensorSpec([1, spec.size, spec.size, 1], tf.float32, name=c) for c in CROP_INPUTS]
    sigs.append(tf.TensorSpec([1, geometry.N_FEATURES], tf.float32, name="features"))  # see batch_of_one
    canon_of = {n: c for c, n in spec.source.items()}
    module = tf.Module()
    module.model = model  # tracked: its variables go into the SavedModel

    @tf.function(input_signature=sigs)
    def serve(right_eye, left_eye, mouth, features):
        by = {"right_eye": right_eye, "left_eye": left_eye, "mouth": mouth, "features": features}
        y = model([by[canon_of[n]] for n in spec.order], training=False)
        if isinstance(y, (list, tuple)):
            y = y[0]
        return {"output_0": y}

    module.serve = serve
    tf.saved_model.save(module, path, signatures={"serving_default": serve})


def load(path: str | Path, mapping: dict[str, str] | None = None, n_labels: int = len(LABELS),
         loader: str = "auto") -> LoadedModel:
    """Load a .keras or legacy .h5 model with Keras 3, or (where that fails, or asked) with tf_keras."""
    path = Path(path)
    if not path.exists():
        raise fail(f"model file {path} not found")
    if loader not in LOADERS:
        raise fail(f"unknown loader {loader!r}; expected one of {', '.join(LOADERS)}")
    errors = []
    if loader in ("auto", "keras"):
        try:
            import keras

            model = keras.models.load_model(path, compile=False)
        except Exception as e:  # noqa: BLE001 - any failure: try tf_keras next
            errors.append(f"Keras 3: {_first_line(e)}")
        else:
            spec = _keras3_spec(model, mapping, n_labels)
            return LoadedModel(spec, "keras", model, wrap_keras3(model, spec))
    if loader in ("auto", "tf_keras") and path.suffix.lower() != ".keras":
        try:
            import tf_keras
        except ImportError as e:
            errors.append(f"tf_keras: {_first_line(e)} (pip install tf-keras)")
        else:
            try:
                model = tf_keras.models.load_model(path, compile=False)
            except Exception as e:  # noqa: BLE001
                errors.append(f"tf_keras: {_first_line(e)}")
            else:
                spec = _tf_keras_spec(model, mapping, n_labels)
                return LoadedModel(spec, "tf_keras", model, None,
                                   [f"{errors[0]} -- loaded with tf_keras instead"] if errors else [])
    elif loader == "tf_keras":
        errors.append("tf_keras cannot read a Keras 3 .keras file")
    raise fail(f"cannot load {path} as a Keras model (.keras or legacy .h5): {'; '.join(errors)}")


# --- real-face inputs at the model's crop size and feature convention ------------------------------

def inputs_from_landmarks(right_eye: np.ndarray, left_eye: np.ndarray, mouth: np.ndarray,
                          landmarks: np.ndarray, size: int, mode: str) -> dict[str, np.ndarray]:
    """Float model inputs from uint8 crops (N, S, S) and working-image landmarks (N, 68, 2); crops of
    another size are resized to `size` (good enough for calibration and parity)."""
    import cv2

    def prep(c: np.ndarray) -> np.ndarray:
        if c.shape[1] != size:
            interp = cv2.INTER_AREA if c.shape[1] > size else cv2.INTER_LINEAR
            c = np.stack([cv2.resize(im, (size, size), interpolation=interp) for im in c])
        return c[..., None].astype(np.float32) / 255.0

    feats = np.stack([features_for(geometry.level(p), mode) for p in landmarks]).astype(np.float32)
    return {"right_eye": prep(right_eye), "left_eye": prep(left_eye), "mouth": prep(mouth), "features": feats}


def _spaced(n: int, limit: int) -> np.ndarray:
    return np.linspace(0, n - 1, limit).astype(int) if limit and limit < n else np.arange(n)


def _from_npz(path: str, size: int, mode: str, limit: int,
              log: Callable[[str], None]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    from . import data as D

    a = D.load(path)
    a = a.take(_spaced(len(a), limit))
    if a.mouth.shape[1] != size:
        log(f"note: {path} has {a.mouth.shape[1]}px crops; resized to the model's {size}px")
    return inputs_from_landmarks(a.right_eye, a.left_eye, a.mouth, a.landmarks, size, mode), a.label


def _from_images(root: str, size: int, mode: str, limit: int,
                 log: Callable[[str], None]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Images of a labelled folder tree (or KDEF / FER2013 CSV) through dfer_edge's own steps: small
    images (<= CROPS_MAX_SIDE px) as ready face crops, others via the 512-px working image and HOG."""
    from dfer_edge.errors import DferError
    from dfer_edge.pipeline import InputFormat, Pipeline

    from .readers import read_dataset

    samples = read_dataset(root)
    samples = [samples[i] for i in _spaced(len(samples), limit)] if samples else []
    pipe = Pipeline(score=False, input_format=InputFormat(size, mode))  # the runtime's default settings
    faces, labels, skipped = [], [], 0
    for s in samples:
        try:
            gray, _ = pipe.load(s.image if s.image is not None else s.name, name=s.name)
        except DferError:
            skipped += 1
            continue
        if max(gray.shape[:2]) <= CROPS_MAX_SIDE:
            found = [pipe.run_crop(gray)[1]]
        else:
            found = pipe.run(gray, max_faces=1)[1]
        if not found:
            skipped += 1
            continue
        faces.append(found[0].inputs)
        labels.append(s.label)
    if skipped:
        log(f"{root}: {skipped} of {len(samples)} images skipped (unreadable or no face)")
    if not faces:
        raise fail(f"no face could be extracted from the images in {root}")
    x = {n: np.stack([getattr(f, n) for f in faces])[..., None].astype(np.float32) / 255.0 for n in CROP_INPUTS}
    x["features"] = np.stack([f.features for f in faces]).astype(np.float32)
    return x, np.array(labels, dtype=np.int64)


def real_inputs(paths: list[str], size: int, mode: str, limit: int = 0,
                log: Callable[[str], None] = print) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Float model inputs and labels (index into LABELS) for real faces: each path an extracted .npz
    (`python -m convert extract`) or an image dataset; `limit` evenly spaced faces in all."""
    if mode not in FEATURE_MODES:
        raise fail(f"unknown feature convention {mode!r}; expected one of {', '.join(FEATURE_MODES)}")
    per = -(-limit // len(paths)) if limit else 0
    xs, ys = [], []
    for p in paths:
        if not Path(p).exists():
            raise fail(f"{p} not found (expected an extracted .npz or an image folder)")
        if Path(p).suffix.lower() == ".npz":
            x, y = _from_npz(p, size, mode, per, log)
        else:
            x, y = _from_images(p, size, mode, per, log)
        xs.append(x)
        ys.append(y)
    x = {k: np.concatenate([v[k] for v in xs]) for k in INPUT_NAMES}
    y = np.concatenate(ys)
    if limit and len(y) > limit:
        idx = _spaced(len(y), limit)
        x, y = {k: v[idx] for k, v in x.items()}, y[idx]
    return x, y

