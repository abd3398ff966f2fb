"""The public API on real photos: reduced JPEG decoding keeps boxes in original pixels, flip averaging,
predict_largest / predict_crop, and the context manager."""

from __future__ import annotations

import numpy as np
import pytest

from dfer_edge import LABELS, Recognizer, RecognizerOptions
from dfer_edge.image import load_gray, read_bytes

from .helpers import FER_VAL, PHOTOS


@pytest.fixture(scope="module")
def rec():
    with Recognizer(RecognizerOptions(upsample=1)) as r:
        yield r


def _photo(name: str):
    p = PHOTOS / name
    if not p.is_file():
        pytest.skip(f"{p} is not present (shared data missing)")
    return p


def test_reduced_decode_gives_the_same_faces_in_original_pixels(rec):
    data = read_bytes(_photo("women-on-phones.jpg"))  # 3458x2282: decoded at 1/4 size
    full = load_gray(data)
    reduced = rec.predict(data)
    direct = rec.predict(full)  # an array is never reduced
    assert len(reduced) == len(direct) >= 1
    diag = float(np.hypot(*full.shape))
    for a, b in zip(reduced, direct):
        assert np.abs(np.array(a.box) - np.array(b.box)).max() < 0.01 * diag
        assert np.abs(a.landmarks - b.landmarks).max() < 0.01 * diag
        x1, y1, x2, y2 = a.box
        assert 0 <= x1 < x2 <= full.shape[1] and 0 <= y1 < y2 <= full.shape[0]


def test_flip_average_is_the_mean_of_both_views():
    path = _photo("angry.jpg")
    with Recognizer(RecognizerOptions(flip_average=False)) as plain, Recognizer() as flip:
        a, b = plain.predict_largest(path), flip.predict_largest(path)
    assert a is not None and b is not None and a.box == b.box
    pa, pb = np.array(list(a.probabilities.values())), np.array(list(b.probabilities.values()))
    assert pb.sum() == pytest.approx(1.0, abs=1e-6)
    assert list(b.probabilities) == list(LABELS)
    assert not np.allclose(pa, pb)  # the mirrored view is really scored


def test_largest_and_crop_entry_points(rec):
    faces = rec.predict(_photo("group.jpeg"))
    largest = rec.predict_largest(_photo("group.jpeg"))
    assert len(faces) >= 3 and largest is not None
    areas = [(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in faces]
    assert largest.box == faces[int(np.argmax(areas))].box
    assert rec.predict_largest(_photo("non_face.jpg")) is None
    assert rec.pipeline.crop_detector.dlib_detector is rec.detector.dlib_detector  # loaded once
    crops = sorted(FER_VAL.glob("*/*.jpg"))[:3] if FER_VAL.is_dir() else []
    if not crops:
        pytest.skip(f"{FER_VAL} is not present (shared data missing)")
    for c in crops:
        face = rec.predict_crop(c)
        assert face.box == (0, 0, 48, 48)
        assert sum(face.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
        assert face.categories[0].name == face.label and face.categories[0].score == face.score


def test_a_broken_interpreter_is_replaced_and_answers_the_same():
    """A long-running service must survive an interpreter left failing (seen once under fuzzing): here
    one is broken for real by resizing an input to a batch the graph cannot take."""
    from dfer_edge.model import ExpressionModel

    m = ExpressionModel(threads=1)
    zeros = {n: np.zeros(m._shape[n], m.info.input_dtypes[n]) for n in m._idx}
    want = m._invoke(zeros)
    m._interp.resize_tensor_input(m._idx["features"], [3, 13])
    try:
        m._interp.allocate_tensors()
    except RuntimeError:
        pass
    with pytest.raises((RuntimeError, ValueError)):
        m._interp.set_tensor(m._idx["features"], zeros["features"])
        m._interp.invoke()
    np.testing.assert_allclose(m._invoke(zeros), want)
    assert m.recoveries == 1


def test_model_variant_names_pick_the_shipped_files():
    from dfer_edge.model import SHIPPED_VARIANTS, ExpressionModel, default_model_path

    for name in SHIPPED_VARIANTS:
        m = ExpressionModel(name, threads=1)
        assert m.path == default_model_path().with_name(f"dfer-{name}.tflite")
        assert m.info.metadata["variant"] == name
