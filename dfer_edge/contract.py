"""The model contract: how a model's inputs must be made, carried inside the .tflite file.

A model is only right when it is fed what it was trained on: the crop regions, the equaliser, the feature
convention, the label order and the calibration temperature. Those travel in the flatbuffer's own
`metadata` field (name DFER_METADATA), as MediaPipe's models carry theirs, so a model copied alone cannot
lose them; the JSON sidecar next to it is a readable copy and must agree. The contract is read once into a
frozen ModelContract that the pipeline takes its settings from.

Reading needs no flatbuffers package (tflite-runtime does not bring one): the few tables involved are
walked with `struct` below. Writing (convert/, tests) uses the schema that ships with ai-edge-litert.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .detect import EQUALIZERS
from .errors import ModelError
from .extract import FEATURE_MODES
from .geometry import CropRegions
from .labels import LABELS

DFER_METADATA = "dfer_edge.contract"
FORMAT = "dfer-edge-model/1"
# What every contract must state. crop_regions may be {} only for the seed model's convention
# (its crops sit where the first models put them).
REQUIRED = ("format", "labels", "inputs", "crop_size", "features", "pixels", "crop_regions", "equalize", "calibration")

# tflite schema field slots (schema.fbs): Model.buffers = 4, Model.metadata = 6; Metadata.name = 0,
# Metadata.buffer = 1; Buffer.data = 0.
_MODEL_BUFFERS, _MODEL_METADATA = 4, 6


class _Table:
    """One flatbuffer table in `buf` at `pos` (little-endian, offsets as in the flatbuffers spec)."""

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf, self.pos = buf, pos
        vt = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vt, self.vt_len = vt, struct.unpack_from("<H", buf, vt)[0]

    def _field(self, slot: int) -> int:
        o = 4 + 2 * slot
        return struct.unpack_from("<H", self.buf, self.vt + o)[0] if o < self.vt_len else 0

    def u32(self, slot: int, default: int = 0) -> int:
        o = self._field(slot)
        return struct.unpack_from("<I", self.buf, self.pos + o)[0] if o else default

    def _vector(self, slot: int) -> tuple[int, int] | None:
        o = self._field(slot)
        if not o:
            return None
        at = self.pos + o
        start = at + struct.unpack_from("<I", self.buf, at)[0]
        return start + 4, struct.unpack_from("<I", self.buf, start)[0]

    def tables(self, slot: int) -> list[_Table]:
        v = self._vector(slot)
        if v is None:
            return []
        first, n = v
        return [_Table(self.buf, first + 4 * i + struct.unpack_from("<I", self.buf, first + 4 * i)[0]) for i in range(n)]

    def bytes(self, slot: int) -> bytes:
        v = self._vector(slot)
        return b"" if v is None else self.buf[v[0]:v[0] + v[1]]


def embedded_metadata(data: bytes, name: str = DFER_METADATA) -> bytes | None:
    """The bytes a .tflite flatbuffer keeps under metadata `name`, or None. Raises ValueError when the bytes
    are not a TFLite flatbuffer that can be walked."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError("not a TFLite flatbuffer (no TFL3 identifier)")
    try:
        model = _Table(data, struct.unpack_from("<I", data, 0)[0])
        buffers = model.tables(_MODEL_BUFFERS)
        for md in model.tables(_MODEL_METADATA):
            if md.bytes(0) == name.encode():
                return buffers[md.u32(1)].bytes(0)
    except (struct.error, IndexError) as e:
        raise ValueError(f"a damaged TFLite flatbuffer ({e})") from None
    return None


@dataclass(frozen=True)
class ModelContract:
    """What a model needs its inputs made like, and how its outputs are to be read."""

    labels: tuple[str, ...]
    crop_size: int
    features: str
    regions: CropRegions
    equalize: str
    temperature: float
    fitted_on: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @staticmethod
    def from_dict(meta: dict[str, Any], where: str) -> ModelContract:
        """Validated, or a one-line ModelError naming `where` (the model file) and the field."""
        def bad(what: str) -> ModelError:
            return ModelError(f"model {where}: {what} in its metadata; re-export it with `python -m convert export`")

        missing = [k for k in REQUIRED if k not in meta]
        if missing:
            raise bad(f"no {', '.join(missing)}")
        if meta["format"] != FORMAT:
            raise bad(f"format {meta['format']!r}, not {FORMAT!r}")
        labels = meta["labels"]
        if not isinstance(labels, list) or sorted(labels) != sorted(LABELS):
            raise bad(f"labels {labels!r} are not a permutation of {list(LABELS)}")
        if meta["features"] not in FEATURE_MODES:
            raise bad(f"unknown feature convention {meta['features']!r} (expected one of {', '.join(FEATURE_MODES)})")
        if meta["equalize"] not in EQUALIZERS:
            raise bad(f"unknown equaliser {meta['equalize']!r} (expected one of {', '.join(EQUALIZERS)})")
        if meta["pixels"] != "crop / 255":
            raise bad(f"pixels {meta['pixels']!r}, not 'crop / 255'")
        size = meta["crop_size"]
        if not isinstance(size, int) or isinstance(size, bool) or not 16 <= size <= 512:
            raise bad(f"crop_size {size!r}")
        try:
            regions = CropRegions.from_dict(meta["crop_regions"] or {})
        except (ValueError, TypeError, AttributeError) as e:
            raise bad(f"crop_regions: {e}") from None
        cal = meta["calibration"]
        t = cal.get("temperature") if isinstance(cal, dict) else None
        if not isinstance(t, (int, float)) or isinstance(t, bool) or not 0.05 <= float(t) <= 20.0:
            raise bad(f"calibration temperature {t!r} (a number between 0.05 and 20)")
        fitted_on = cal.get("fitted_on")
        if not isinstance(fitted_on, str) or not fitted_on:
            raise bad("calibration without fitted_on (what the temperature was fitted against)")
        return ModelContract(tuple(labels), size, meta["features"], regions, meta["equalize"], float(t), fitted_on,
                             dict(meta))


def sidecar_path(model: Path) -> Path:
    return model.with_suffix(".json")


def read_contract(model: Path, data: bytes | None = None) -> ModelContract:
    """The contract inside `model` (checked against its sidecar when there is one). Models exported before
    contracts were embedded still run from a complete sidecar. Nothing at all: a one-line ModelError."""
    data = model.read_bytes() if data is None else data
    try:
        inside = embedded_metadata(data)
    except ValueError:
        inside = None  # the interpreter says what is wrong with the file itself
    side = sidecar_path(model)
    sidecar = None
    if side.is_file():
        try:
            sidecar = json.loads(side.read_text())
        except (OSError, ValueError) as e:
            raise ModelError(f"model metadata {side} is not valid JSON ({e}); delete it or re-export the model") from None
        if not isinstance(sidecar, dict):
            raise ModelError(f"model metadata {side} must be a JSON object; delete it or re-export the model")
    if inside is not None:
        try:
            meta = json.loads(inside.decode())
        except ValueError as e:
            raise ModelError(f"model {model}: its embedded metadata is not valid JSON ({e}); re-export it") from None
        if sidecar is not None and sidecar != meta:
            keys = sorted(k for k in set(meta) | set(sidecar) if meta.get(k) != sidecar.get(k))
            raise ModelError(f"model {model}: its sidecar {side.name} disagrees with the metadata inside the model "
                             f"({', '.join(keys)}); delete the sidecar or re-export the model")
    elif sidecar is not None:
        meta = sidecar
    else:
        raise ModelError(f"model {model} carries no dfer-edge metadata (crop regions, equaliser, labels, "
                         "calibration): export it with `python -m convert export`")
    if not isinstance(meta, dict):
        raise ModelError(f"model {model}: its metadata must be a JSON object; re-export it")
    return ModelContract.from_dict(meta, str(model))


def with_metadata(data: bytes, meta: dict[str, Any]) -> bytes:
    """`data` (a .tflite) with `meta` as its DFER_METADATA entry, replacing any earlier one. Needs the
    flatbuffers schema of ai-edge-litert: for convert/ and the tests, never the runtime's hot path."""
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fu

    model = fu.read_model_from_bytearray(bytearray(data))
    payload = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    entries = [m for m in (model.metadata or []) if m.name.decode() != DFER_METADATA]
    old = [m for m in (model.metadata or []) if m.name.decode() == DFER_METADATA]
    if old:
        model.buffers[old[0].buffer].data = payload
        entries.append(old[0])
    else:
        buf = schema.BufferT()
        buf.data = payload
        model.buffers.append(buf)
        md = schema.MetadataT()
        md.name = DFER_METADATA
        md.buffer = len(model.buffers) - 1
        entries.append(md)
    model.metadata = entries
    return bytes(fu.convert_object_to_bytearray(model))
