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


def test_points_map_back_by_the_pixel_centre_rule():
    """The sample blown up 8x (each pixel an 8x8 block) shrinks back to exactly the sample, so the same
    landmarks are fitted; mapped back they must sit at the centres of those blocks, (p + 0.5) 8 - 0.5."""
    import cv2

    from .helpers import REPO

    small = cv2.imread(str(REPO / "samples" / "astronaut.jpg"))
    big = cv2.resize(small, None, fx=8, fy=8, interpolation=cv2.INTER_NEAREST)  # 4096x4096
    with Recognizer(closeup=False) as rec:  # the working image's own mapping (a close-up would use big's pixels)
        (a,), (b,) = rec.predict(small)[:1], rec.predict(big)[:1]
    np.testing.assert_allclose(b.landmarks, (a.landmarks + 0.5) * 8 - 0.5, atol=1e-4)
    assert np.abs(np.array(b.box) - 8 * np.array(a.box)).max() <= 4  # each edge rounded once, at its scale
    assert a.probabilities == b.probabilities


def test_flip_average_is_the_mean_of_both_views():
    """The flip-averaged answer is exactly temper(mean of the face's and its mirror's probabilities)."""
    from dfer_edge.calibration import temper
    from dfer_edge.extract import mirrored

    path = _photo("angry.jpg")
    with Recognizer(RecognizerOptions(flip_average=False)) as plain, Recognizer() as flip:
        a, b = plain.predict_largest(path), flip.predict_largest(path)
        assert a is not None and b is not None and a.box == b.box
        work, (found,) = flip.pipeline.run(path, max_faces=1)
        model = flip.model
        seen, in_mirror = model(found.inputs), model(mirrored(found.inputs, model.info.feature_mode))
    pa, pb = np.array(list(a.probabilities.values())), np.array(list(b.probabilities.values()))
    assert list(b.probabilities) == list(LABELS)
    assert pa == pytest.approx(temper(seen, model.temperature), abs=1e-6)  # one view: that view, tempered
    assert pb == pytest.approx(temper((seen + in_mirror) / 2, model.temperature), abs=1e-6)
    assert np.abs(seen - in_mirror).max() > 1e-3, "the mirrored view is a different input, really scored"


def test_a_closed_recognizer_says_so():
    from dfer_edge.errors import DferError

    rec = Recognizer()
    rec.close()
    for use in (lambda: rec.predict(_photo("angry.jpg")), lambda: rec.predict_largest(_photo("angry.jpg")),
                lambda: rec.model, lambda: rec.pipeline):
        with pytest.raises(DferError, match="^this Recognizer is closed: make a new one$"):
            use()


def test_predict_largest_fits_and_scores_only_that_face(rec):
    """A group photo: the same answer as the first of predict(), with one landmark fit and one model call
    instead of one per face (counted on the pipeline's own stage timer)."""
    from dfer_edge.pipeline import StageTimes

    class Counting(StageTimes):
        def __init__(self) -> None:
            super().__init__()
            self.calls: dict[str, int] = {}

        def stage(self, name):
            self.calls[name] = self.calls.get(name, 0) + 1
            return super().stage(name)

    photo = _photo("group.jpeg")
    every, one = Counting(), Counting()
    _, all_faces = rec.pipeline.timed(every).run(photo)
    _, largest = rec.pipeline.timed(one).run(photo, max_faces=1)
    assert len(all_faces) >= 3 and len(largest) == 1
    assert every.calls["inference"] == len(all_faces) and one.calls["inference"] == 1
    assert one.calls["landmarks"] <= 2  # its fit, and a second on its close-up if it is small (closeup.py)
    face, first = rec.predict_largest(photo), rec.predict(photo)[0]
    assert face.box == first.box and face.probabilities == first.probabilities


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
