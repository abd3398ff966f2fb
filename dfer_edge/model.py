"""Step 5: the expression model (.tflite plus a JSON sidecar) on a TFLite interpreter.

The runtime never imports TensorFlow: it uses ai-edge-litert, or tflite-runtime as a fallback.
Inputs are bound by name through the model's signature, because converters list them in an
arbitrary order.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.resources
import contextlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .contract import read_contract
from .errors import ModelError
from .extract import FaceInputs
from .geometry import DEFAULT_REGIONS, CropRegions
from .labels import LABELS

INPUT_NAMES = ("right_eye", "left_eye", "mouth", "features")
DEFAULT_MODEL_NAME = "dfer-int8.tflite"

# name -> (module to import, distribution name for its version)
INTERPRETERS = {
    "litert": ("ai_edge_litert.interpreter", "ai-edge-litert"),
    "tflite-runtime": ("tflite_runtime.interpreter", "tflite-runtime"),
}


@contextlib.contextmanager
def _quiet_stderr():
    """Silence C++ writes to fd 2 (the interpreter's "Created TensorFlow Lite XNNPACK delegate" INFO
    line on first invoke), so a CLI's stderr carries only our own messages. DFER_VERBOSE=1 keeps them."""
    if os.environ.get("DFER_VERBOSE"):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def default_model_path() -> Path:
    """The int8 model shipped inside the package (models/ is installed as dfer_edge.models)."""
    return Path(str(importlib.resources.files("dfer_edge.models") / DEFAULT_MODEL_NAME))


# models/dfer-NAME.tflite. int8 (the default) keeps the three first convolutions in float, which makes it
# ~40% faster than int8-full (integer-only, for integer accelerators) at the same accuracy.
SHIPPED_VARIANTS = ("int8", "int8-full", "dynamic", "float16", "float32")


def model_path(spec: str | os.PathLike | None) -> Path:
    """--model value -> file: None is the shipped int8 model; a variant name (int8, int8-full, dynamic,
    float16, float32) is that shipped variant, unless a file of that name exists here; anything else is a path."""
    if not spec:
        return default_model_path()
    s = str(spec)
    if s in SHIPPED_VARIANTS and not Path(s).exists():
        return default_model_path().with_name(f"dfer-{s}.tflite")
    return Path(spec)


def load_interpreter_class(which: str = "auto") -> tuple[type, str, str]:
    """(Interpreter class, interpreter name, version): litert first, then tflite-runtime."""
    names = list(INTERPRETERS) if which == "auto" else [which]
    errors = []
    for name in names:
        if name not in INTERPRETERS:
            raise ModelError(f"unknown interpreter {name!r}; expected auto, {', '.join(INTERPRETERS)}")
        module, dist = INTERPRETERS[name]
        try:
            cls = importlib.import_module(module).Interpreter
        except ImportError as e:
            errors.append(f"{dist}: {e}")
            continue
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        return cls, name, version
    raise ModelError("no TFLite interpreter available (" + "; ".join(errors)
                     + "); install one with `pip install ai-edge-litert` (or `pip install tflite-runtime 'numpy<2'`)")


@dataclass
class ModelInfo:
    """What the model's contract (contract.py) and its signature tell us."""

    path: Path
    labels: tuple[str, ...]
    crop_size: int
    feature_mode: str
    input_dtypes: dict[str, str]
    metadata: dict[str, Any] = field(default_factory=dict)
    regions: CropRegions = DEFAULT_REGIONS  # where the crops sit (the contract's "crop_regions")
    equalize: str = "global"  # the equaliser it was trained with (the contract's "equalize")


class ExpressionModel:
    """A loaded expression model. `__call__(FaceInputs) -> probabilities` in `labels` order."""

    def __init__(self, path: str | os.PathLike | None = None, threads: int | None = None,
                 interpreter: str = "auto") -> None:
        self.path = model_path(path)
        if not self.path.is_file():
            raise ModelError(f"model file {self.path} not found; pass --model PATH to a .tflite exported by "
                             f"`python -m convert export` or a shipped variant ({', '.join(SHIPPED_VARIANTS)}), "
                             "or reinstall dfer-edge for the default model")
        data = self.path.read_bytes()
        cls, self.interpreter_name, self.interpreter_version = load_interpreter_class(interpreter)
        self._interp_cls = cls
        self.recoveries = 0  # interpreters replaced after a failed call (see _recover)
        try:
            self._data = data
            self._interp = cls(model_content=data, num_threads=threads)
            runner = self._interp.get_signature_runner()
        except (ValueError, RuntimeError) as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelError(f"model file {self.path} cannot be loaded ({msg}); it is corrupt or not a "
                             "TFLite model with a signature: re-export it with `python -m convert export`") from None
        self.threads = threads
        details = runner.get_input_details()
        missing = [n for n in INPUT_NAMES if n not in details]
        if missing or len(details) != len(INPUT_NAMES):
            raise ModelError(f"model {self.path} has inputs {sorted(details)}; expected exactly "
                             f"{list(INPUT_NAMES)} (export it with `python -m convert export`)")
        self._in = details
        shape = [int(x) for x in details["mouth"]["shape"]]
        size = shape[1] if len(shape) == 4 else 0
        for n in ("right_eye", "left_eye", "mouth"):
            s = [int(x) for x in details[n]["shape"]]
            if len(s) != 4 or s[1] != size or s[2] != size or s[3] != 1:
                raise ModelError(f"model {self.path}: input {n} has shape {s}; expected [1, N, N, 1] "
                                 "with the same N for all three crops")
        fshape = [int(x) for x in details["features"]["shape"]]
        if fshape[-1] != 13:
            raise ModelError(f"model {self.path}: input features has shape {fshape}; expected [1, 13]")
        outs = runner.get_output_details()
        if len(outs) != 1:
            raise ModelError(f"model {self.path} has {len(outs)} outputs; expected one probability vector")
        out = next(iter(outs.values()))
        n_out = int(out["shape"][-1])
        if n_out != len(LABELS):
            raise ModelError(f"model {self.path} outputs {n_out} values; expected one probability for each of the "
                             f"{len(LABELS)} expressions (export it with `python -m convert export`)")
        # The contract (inside the model; its sidecar a copy that must agree), read once: see contract.py.
        contract = read_contract(self.path, data)
        if contract.crop_size != size:
            raise ModelError(f"model {self.path}: its metadata says {contract.crop_size}-px crops, its inputs take "
                             f"{size}; re-export it")
        self._out = out
        self.contract = contract
        self.temperature = contract.temperature
        labels = contract.labels
        self.info = ModelInfo(self.path, labels, size, contract.features,
                              {n: np.dtype(d["dtype"]).name for n, d in details.items()}, contract.raw,
                              contract.regions, contract.equalize)
        # Reorder outputs into LABELS order whatever order the model declares.
        self._order = np.array([labels.index(lab) for lab in LABELS])
        # From here on the interpreter is driven directly through the tensor indices the signature
        # named (binding stays by name); the signature runner re-checks and re-allocates on every call,
        # so it is used only to read those names, and dropped: allocate_tensors refuses to run while it
        # holds views of the interpreter's buffers.
        del runner
        self._idx = {n: int(details[n]["index"]) for n in INPUT_NAMES}
        self._out_idx = int(out["index"])
        self._shape = {n: tuple(int(x) for x in details[n]["shape"]) for n in INPUT_NAMES}
        # uint8 crop -> model input in one table look-up (pixels / 255, then quantised if the model is int8).
        self._lut = {n: self._quantise(n, (np.arange(256, dtype=np.float32) / 255.0)) for n in ("right_eye", "left_eye", "mouth")}
        # Allocation and one warm-up call build the delegate (slow, and chatty on stderr).
        with _quiet_stderr():
            self._interp.allocate_tensors()
            self._invoke({n: np.zeros(self._shape[n], np.dtype(details[n]["dtype"])) for n in INPUT_NAMES})

    @property
    def labels(self) -> tuple[str, ...]:
        return LABELS

    def _quantise(self, name: str, x: np.ndarray) -> np.ndarray:
        d = self._in[name]
        dtype = np.dtype(d["dtype"])
        if dtype == np.float32:
            return np.asarray(x, dtype=np.float32)
        scale, zero = d["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(np.asarray(x, dtype=np.float32) / scale + zero), info.min, info.max).astype(dtype)

    def _invoke(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Set the four named inputs, invoke, return probabilities in LABELS order."""
        try:
            self._set_and_invoke(inputs)
        except (RuntimeError, ValueError):  # seen once under fuzzing: an interpreter left failing on every call
            self._recover()
            try:
                self._set_and_invoke(inputs)
            except (RuntimeError, ValueError) as e:
                msg = (str(e).strip().splitlines() or ["unknown error"])[0][:200]
                raise ModelError(f"model {self.path}: the interpreter failed twice in a row ({msg})") from None
        out = self._interp.get_tensor(self._out_idx).reshape(-1)
        if out.dtype != np.float32:
            scale, zero = self._out["quantization"]
            out = (out.astype(np.float32) - zero) * scale
        out = np.clip(out.astype(np.float64), 0.0, None)[self._order]
        total = out.sum()
        return out / total if total > 0 else np.full(len(LABELS), 1.0 / len(LABELS))

    def _set_and_invoke(self, inputs: dict[str, np.ndarray]) -> None:
        for n in INPUT_NAMES:
            self._interp.set_tensor(self._idx[n], inputs[n])
        self._interp.invoke()

    def _recover(self) -> None:
        """Replace a failed interpreter by a fresh one from the same file, so one bad call does not take a
        long-running service down (a failure right after that is a ModelError for that call only)."""
        self.recoveries += 1
        with _quiet_stderr():
            self._interp = self._interp_cls(model_content=self._data, num_threads=self.threads)
            self._interp.allocate_tensors()

    def run(self, right_eye: np.ndarray, left_eye: np.ndarray, mouth: np.ndarray,
            features: np.ndarray) -> np.ndarray:
        """Raw model call on float inputs: crops scaled to 0..1, features as the model declares."""
        x = {"right_eye": right_eye, "left_eye": left_eye, "mouth": mouth, "features": features}
        return self._invoke({n: self._quantise(n, x[n]).reshape(self._shape[n]) for n in INPUT_NAMES})

    def __call__(self, face: FaceInputs) -> np.ndarray:
        """Probabilities in LABELS order for one face's extracted inputs (uint8 crops)."""
        # np.take: the same look-up as lut[crop] at two thirds of the time (27 -> 18 us per crop here).
        x = {n: np.take(self._lut[n], getattr(face, n)).reshape(self._shape[n]) for n in ("right_eye", "left_eye", "mouth")}
        x["features"] = self._quantise("features", face.features).reshape(self._shape["features"])
        return self._invoke(x)
