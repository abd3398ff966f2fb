"""dfer_edge/contract.py: the contract inside the .tflite, read without a flatbuffers package."""

from __future__ import annotations

import json

import pytest

from dfer_edge.contract import DFER_METADATA, ModelContract, embedded_metadata, with_metadata
from dfer_edge.model import SHIPPED_VARIANTS, ExpressionModel, default_model_path


@pytest.mark.parametrize("variant", SHIPPED_VARIANTS)
def test_every_shipped_variant_carries_its_contract_inside(variant):
    """The struct-walking reader agrees with the flatbuffers schema, and with the sidecar."""
    from ai_edge_litert.tools import flatbuffer_utils as fu

    path = default_model_path().with_name(f"dfer-{variant}.tflite")
    data = path.read_bytes()
    model = fu.read_model_from_bytearray(bytearray(data))
    (entry,) = [m for m in model.metadata if m.name.decode() == DFER_METADATA]
    assert embedded_metadata(data) == bytes(model.buffers[entry.buffer].data)
    assert json.loads(embedded_metadata(data)) == json.loads(path.with_suffix(".json").read_text())
    assert embedded_metadata(data, "min_runtime_version").rstrip(b"\0")  # other entries are found too
    c = ExpressionModel(path).contract
    assert isinstance(c, ModelContract) and c.temperature == json.loads(path.with_suffix(".json").read_text())["calibration"]["temperature"]


def test_embedding_again_replaces_and_keeps_the_graph(tmp_path):
    data = default_model_path().read_bytes()
    meta = json.loads(embedded_metadata(data))
    again = with_metadata(with_metadata(data, {**meta, "note": "first"}), {**meta, "note": "second"})
    assert json.loads(embedded_metadata(again))["note"] == "second"
    from ai_edge_litert.tools import flatbuffer_utils as fu

    names = [m.name.decode() for m in fu.read_model_from_bytearray(bytearray(again)).metadata]
    assert names.count(DFER_METADATA) == 1


@pytest.mark.parametrize("damage", ["not-tflite", "truncated"])
def test_a_damaged_file_is_a_value_error_not_a_crash(damage):
    data = default_model_path().read_bytes()
    bad = b"hello world, not a model" * 10 if damage == "not-tflite" else data[:2000]
    with pytest.raises(ValueError):
        embedded_metadata(bad)
