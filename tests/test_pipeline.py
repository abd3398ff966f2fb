"""The corridor: every user of the pipeline goes through dfer_edge.pipeline.Pipeline, with one set of
options. Real dlib, the real interpreter, real photos and KDEF faces from ../shared/data."""

from __future__ import annotations

import importlib.util
import inspect
import json
import multiprocessing
from dataclasses import FrozenInstanceError
from pathlib import Path

import numpy as np
import pytest

from dfer_edge import cli
from dfer_edge.options import DEFAULTS, RecognizerOptions
from dfer_edge.pipeline import STAGES, InputFormat, Pipeline, StageTimes
from dfer_edge.recognizer import Recognizer
from tests.conftest import need
from tests.helpers import PHOTOS, SHARED_DATA

KDEF = SHARED_DATA / "kdef"
# The one KDEF photo of 300 (an evenly spaced --limit 300 extraction) whose only HOG box scores under the
# runtime's 0.1: extraction used dlib's threshold 0 and trained on a face inference never finds.
FAINT = KDEF / "anger" / "BF31ANHL.jpg"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rec() -> Recognizer:
    return Recognizer(threads=1)


def test_options_or_settings_not_both():
    with pytest.raises(TypeError, match="not both"):
        Recognizer(RecognizerOptions(), width=320)
    with pytest.raises(FrozenInstanceError):
        DEFAULTS.width = 320  # type: ignore[misc]
    assert DEFAULTS.replace(width=320).width == 320 and DEFAULTS.width == 512


def test_cli_defaults_are_the_options_defaults():
    """The shared options are declared once, with RecognizerOptions' names and defaults."""
    for command in (cli.predict, cli.evaluate, cli.watch, cli.serve):
        params = inspect.signature(command).parameters
        for name in cli.SHARED_OPTIONS:
            assert params[name].default == getattr(DEFAULTS, name), (command.__name__, name)
        assert "options" not in params


def test_timed_pipeline_gives_the_same_faces_and_every_stage_a_time(rec):
    times = StageTimes()
    photo = need(PHOTOS / "group.jpeg")
    work, timed = rec.pipeline.timed(times).run(photo)
    _, plain = rec.pipeline.run(photo)
    assert len(timed) == len(plain) >= 1
    for a, b in zip(timed, plain):
        assert np.array_equal(a.probabilities, b.probabilities) and np.array_equal(a.landmarks, b.landmarks)
    assert list(times.seconds) == list(STAGES) and all(v > 0 for v in times.seconds.values())
    assert rec.pipeline.times is None  # the recognizer's own pipeline stays untimed
    faces = rec.predict(photo)
    assert [f.box for f in faces] == [work.box_to_original((r.left(), r.top(), r.right(), r.bottom()))
                                      for r in (f.rect for f in plain)]


def test_working_image_maps_back_to_a_reduced_decode(rec, tmp_path):
    """A 2400-px JPEG is decoded at 1/4 size; boxes and points still come back in original pixels."""
    import cv2

    small = cv2.imread(str(need(PHOTOS / "angry.jpg")))
    h, w = small.shape[:2]
    big = cv2.resize(small, (2400, round(h * 2400 / w)))
    path = tmp_path / "big.jpg"
    cv2.imwrite(str(path), big)
    gray, factor = rec.pipeline.load(path)
    assert factor > 1 and gray.shape[1] < 2400
    work = rec.pipeline.prepare(gray, factor)
    assert work.original_size == (2400, big.shape[0]) and work.to_original == pytest.approx(factor / work.scale)
    (face,) = rec.predict(path)
    (face_small,) = rec.predict(big)  # the same photo as an array: decoded at full size
    assert np.abs(np.array(face.box) - np.array(face_small.box)).max() <= 0.02 * 2400


def test_pipeline_without_a_model_cuts_but_does_not_score():
    pipe = Pipeline(score=False, input_format=InputFormat(64))
    _, found = pipe.run(need(PHOTOS / "angry.jpg"))
    assert found and found[0].inputs.mouth.shape == (64, 64) and found[0].probabilities is None
    from dfer_edge.errors import ModelError

    with pytest.raises(ModelError):
        pipe.score(found[0].inputs)


def test_training_extraction_detects_what_inference_detects(rec, tmp_path):
    """Extraction of full photos goes through the corridor with the runtime's detection: the faint face
    that only dlib's threshold 0 finds (HOG alone) is left out of training exactly when inference leaves
    it out; the faces found are the recognizer's own inputs, to the bit."""
    from convert.extract import extract
    from convert.readers import Sample

    if multiprocessing.get_start_method(allow_none=True) not in (None, "fork"):
        pytest.skip("extraction forks its workers")
    strong = need(KDEF / "happiness" / "AF01HAS.jpg")
    samples = [Sample(str(need(FAINT)), 3, subject="BF31"), Sample(str(strong), 0, subject="AF01")]
    hog_only = Recognizer(threads=1, small_faces=False)
    assert hog_only.predict(FAINT) == []
    counts = extract(samples, tmp_path / "k.npz", crops=False, workers=1, small_faces=False)
    assert counts["ok"] == 1 and counts["noface"] == 1
    lenient = extract(samples, tmp_path / "k0.npz", crops=False, workers=1, min_score=0.0, small_faces=False)
    assert lenient["ok"] == 2  # the old behaviour, still there as an option
    # With the defaults, the second look for small faces finds it, in training as in inference.
    assert len(rec.predict(FAINT)) == 1
    # Cut where the shipped model's crops sit (its sidecar's regions), as inference does.
    assert extract(samples, tmp_path / "k1.npz", crops=False, workers=1, regions=rec.pipeline.format.regions)["ok"] == 2
    z = np.load(tmp_path / "k1.npz")
    _, (face,) = rec.pipeline.run(strong)
    assert np.array_equal(z["mouth"][1], face.inputs.mouth) and np.array_equal(z["right_eye"][1], face.inputs.right_eye)


def _corridor_check():
    spec = importlib.util.spec_from_file_location("corridor_check", REPO / "benchmarks" / "corridor_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_corridor_check_compares_to_the_bit_and_names_moved_faces(tmp_path):
    """The behaviour check (benchmarks/corridor_check.py) on two small recordings made here."""
    cc = _corridor_check()
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    crops = np.arange(3 * 4, dtype=np.uint8).reshape(3, 4)
    np.savez(a / "x.npz", name=np.array(["p", "q", "r"]), mouth=crops)
    np.savez(b / "x.npz", name=np.array(["p", "r"]), mouth=crops[[0, 2]])
    (a / "y.json").write_text(json.dumps({"accuracy": 0.5}))
    (b / "y.json").write_text(json.dumps({"accuracy": 0.5}))
    assert cc.compare(a, b) == ["x.npz: faces only in a: ['q']; only in b: []"]
    changed = crops[[0, 2]].copy()
    changed[1, 3] += 1
    np.savez(b / "x.npz", name=np.array(["p", "r"]), mouth=changed)
    (b / "y.json").write_text(json.dumps({"accuracy": 0.5000001}))
    problems = cc.compare(a, b)
    assert "x.npz: mouth: 1 element(s) differ, first at (1, 3)" in problems
    assert any(p.startswith("y.json: differs from line 1") for p in problems)
    assert cc.compare(a, a) == []
