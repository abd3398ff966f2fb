"""The corridor: the five steps, in one object that every user of the pipeline goes through.

    image -> load (decode to gray) -> prepare (512 px, equalised) -> detect -> fit (68 landmarks)
          -> cut (levelled crops + features) -> score (flip-averaged, tempered probabilities)

`Recognizer` (photos), `FaceTracker` (video), `bench` (per-stage timing) and `convert/`'s extraction
(training data) all call these methods, so what a model sees in training is what it sees at run time,
and a second detector or a new model plugs in here once. Without a model the pipeline stops after
`cut` (extraction). Timing is optional: a pipeline made with `timed(times)` adds every step's
seconds to `times`, under the names in STAGES.
"""

from __future__ import annotations

import copy
import functools
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Callable, ContextManager, Iterator

import cv2
import dlib
import numpy as np

from . import closeup, geometry
from .calibration import temper
from .detect import Detector, FaceDetector, WorkingImage, check_equalizer, rect_to_box, working_image
from .errors import DferError, ModelError
from .extract import FaceInputs, ReadyCrop, face_inputs, mirrored, ready_crop
from .image import ImageInput, load_gray, load_gray_for_width
from .landmarks import LandmarkModel
from .model import ExpressionModel
from .options import DEFAULTS, RecognizerOptions
from .small_faces import source_of

STAGES = ("decode", "preprocess", "detect", "landmarks", "crops_features", "inference")


@dataclass
class StageTimes:
    """Seconds spent per stage, summed over every call made while timing."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - t0

    def reset(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)

    def means_ms(self, count: int) -> dict[str, float]:
        """Milliseconds per item (frame, image) for each stage."""
        return {s: round(1000 * v / count, 3) if count else 0.0 for s, v in self.seconds.items()}


@dataclass(frozen=True)
class InputFormat:
    """What a model eats: the crop side, the feature convention, where the crops sit. A loaded model says
    (its sidecar); extraction for training chooses."""

    crop_size: int = 96
    feature_mode: str = "iod"
    regions: geometry.CropRegions = geometry.DEFAULT_REGIONS


@dataclass(frozen=True)
class FoundFace:
    """One face as the pipeline sees it, in working-image pixels (WorkingImage or ReadyCrop maps back)."""

    rect: dlib.rectangle  # the box the landmarks were fitted in
    landmarks: np.ndarray  # (68, 2)
    inputs: FaceInputs
    probabilities: np.ndarray | None  # LABELS order; None when the pipeline has no model


class Pipeline:
    """The models, loaded once, and the steps that use them.

    `score=False` builds it without the expression model (extraction for training), in which case
    `input_format` says what to cut. `detector` replaces the HOG detector the options describe.
    """

    def __init__(self, options: RecognizerOptions = DEFAULTS, *, score: bool = True,
                 input_format: InputFormat | None = None, detector: Detector | None = None) -> None:
        self.options = options
        self.model = ExpressionModel(options.model, threads=options.threads,
                                     interpreter=options.interpreter) if score else None
        if input_format is None:
            info = self.model.info if self.model else None
            input_format = InputFormat(info.crop_size, info.feature_mode, info.regions) if info else InputFormat()
        self.format = input_format
        self.equalize = check_equalizer(options.equalize or (self.model.info.equalize if self.model else "global"))
        self.landmark_model = LandmarkModel(options.landmarks)
        self.detector = detector or self._detector(options, self.landmark_model)
        # Ready crops are always scanned by HOG without upsampling or threshold: the crop is upscaled to
        # 256 px first, and the fallback box is calibrated to HOG's boxes. The dlib detector is shared.
        self.crop_detector = FaceDetector(0, dlib_detector=getattr(self.detector, "dlib_detector", None))
        self.times: StageTimes | None = None
        self.notes: list[str] = []  # set-up warnings a caller may show (e.g. a missing optional model)
        self._search: list = []  # the second look for small faces, built on first use (video never needs it)
        self._pool: list[ThreadPoolExecutor] = []  # one worker for BlazeFace, made on first use (after a fork)

    @staticmethod
    def _detector(options: RecognizerOptions, landmarks: LandmarkModel) -> Detector:
        if options.detector == "hog":
            return FaceDetector(options.upsample, options.min_score, options.detect_width)
        if options.detector == "blazeface":
            from .blazeface import BlazeFace, BlazeFaceDetector

            return BlazeFaceDetector(BlazeFace("short", options.detector_model, threads=1,
                                               interpreter=options.interpreter), landmarks)
        raise DferError(f"unknown detector {options.detector!r}; expected hog or blazeface")

    @property
    def search(self):
        """The second look for small faces (or None), built the first time a still image needs it: video
        never does, and building it costs BlazeFace's interpreter (tens of ms, ~20 MiB) and, on a machine
        without its weights, a warning about something video does not use."""
        if not self._search:
            self._search.append(self._small_face_search(self.options))
        return self._search[0]

    def _small_face_search(self, options: RecognizerOptions):
        """The second look for small faces, or None. Asked for explicitly, missing weights are an error;
        by default they only cost the second look, with a note saying how to get it."""
        if options.small_faces is False:
            return None
        from .blazeface import BlazeFace
        from .small_faces import CANDIDATE_SCORE, SmallFaceSearch

        try:
            blaze = BlazeFace("back", options.detector_model, min_score=CANDIDATE_SCORE, threads=1,
                              interpreter=options.interpreter)
        except DferError as e:
            if options.small_faces:
                raise
            self.notes.append(f"small faces are not looked for: {e}")
            return None
        return SmallFaceSearch(blaze, FaceDetector(0, 0.0, dlib_detector=self.crop_detector.dlib_detector),
                               self.landmark_model)

    def timed(self, times: StageTimes) -> Pipeline:
        """The same pipeline (same loaded models) adding each step's seconds to `times`."""
        twin = copy.copy(self)
        twin.times = times
        return twin

    def _stage(self, name: str) -> ContextManager[None]:
        return self.times.stage(name) if self.times is not None else nullcontext()

    # --- the steps -----------------------------------------------------------------------------

    def load(self, image: ImageInput, name: str | None = None) -> tuple[np.ndarray, float]:
        """Step 0: any input -> 8-bit gray, a large JPEG decoded reduced; and original pixels per pixel."""
        with self._stage("decode"):
            return load_gray_for_width(image, self.options.width, name)

    def prepare(self, gray: np.ndarray, factor: float = 1.0) -> WorkingImage:
        """Step 1: the working image (resized, equalised the way the model was trained)."""
        with self._stage("preprocess"):
            return working_image(gray, self.options.width, factor, self.options.denoise, self.equalize)

    def detect(self, work: WorkingImage, still: bool = False) -> list[dlib.rectangle]:
        """Step 2: every face, largest first. For a still image (or when the options ask for it) small
        faces too: BlazeFace looks for candidates on a second core while HOG scans, then HOG checks
        each candidate it did not find itself (small_faces.py)."""
        wanted = self.options.small_faces or (still and self.options.small_faces is None)
        search = self.search if wanted else None
        with self._stage("detect"):
            if search is None:
                return self.detector(work.image)
            if not self._pool:
                self._pool.append(ThreadPoolExecutor(1, thread_name_prefix="dfer-blazeface"))
            pending = self._pool[0].submit(search.candidates, source_of(work), work.factor)
            rects = self.detector(work.image)
            return search(work, rects, pending.result())

    def fit(self, image: np.ndarray, rect: dlib.rectangle) -> np.ndarray:
        """Step 3: the 68 landmarks in `rect`; with `flip_landmarks`, the mean of that fit and the fit on
        the mirrored image, mirrored back (the landmark model's left/right errors partly cancel)."""
        with self._stage("landmarks"):
            pts = self.landmark_model(image, rect)
            if self.options.flip_landmarks:
                w = image.shape[1]
                mirrored_rect = dlib.rectangle(w - 1 - rect.right(), rect.top(), w - 1 - rect.left(), rect.bottom())
                other = self.landmark_model(np.ascontiguousarray(image[:, ::-1]), mirrored_rect)
                pts = (pts + geometry.mirror(other) + np.array([w - 1, 0.0])) / 2
            return pts

    def cut(self, image: np.ndarray, points: np.ndarray) -> FaceInputs:
        """Step 4: level the face, cut the three crops, compute the features."""
        f = self.format
        with self._stage("crops_features"):
            return face_inputs(image, points, f.crop_size, f.feature_mode, f.regions)

    def score(self, inputs: FaceInputs) -> np.ndarray:
        """Step 5: probabilities in LABELS order, flip-averaged when the options say so, then tempered
        with the model's calibration temperature (a score of 0.7 is right about 70% of the time)."""
        if self.model is None:
            raise ModelError("this pipeline was built without an expression model (score=False)")
        with self._stage("inference"):
            p = self.model(inputs)
            if self.options.flip_average:
                p = (p + self.model(mirrored(inputs, self.model.info.feature_mode))) / 2.0
            return temper(p, self.model.temperature)

    # --- whole runs ----------------------------------------------------------------------------

    def face(self, image: np.ndarray, rect: dlib.rectangle) -> FoundFace:
        """Steps 3-5 for one face box."""
        return self._found(rect, image, self.fit(image, rect))

    def _found(self, rect: dlib.rectangle, image: np.ndarray, points: np.ndarray,
               reported: np.ndarray | None = None) -> FoundFace:
        """Steps 4-5 on `image`, whose 68 `points` are fitted; `reported`: the points in working-image
        pixels when `image` is another image (a close-up)."""
        inputs = self.cut(image, points)
        return FoundFace(rect, points if reported is None else reported, inputs,
                         self.score(inputs) if self.model is not None else None)

    def face_at(self, work: WorkingImage, rect: dlib.rectangle,
                source: Callable[[int], tuple[np.ndarray, float]]) -> FoundFace:
        """Steps 3-5 for one face of a still image. A small face (closeup.SMALL_IOD) is fitted, cut and
        scored on a close-up of the photo, scaled to training-face size; its points come back in
        working-image pixels, like every other face's. `source(k)` decodes the photo again at 1/k of its
        size at most (a JPEG can be decoded reduced) when the first decode has too few pixels of the face:
        (gray, original pixels per pixel of it)."""
        pts = self.fit(work.image, rect)
        iod = geometry.inter_ocular(pts)
        if not self.options.closeup or iod >= closeup.SMALL_IOD:
            return self._found(rect, work.image, pts)
        # The decoded image when it has the pixels a training face has (a reduced JPEG decode often does) or
        # is all there is; else the photo decoded again at the largest reduction that has them.
        decoded = source_of(work)
        iod_decoded = iod * decoded.shape[1] / work.image.shape[1]
        if iod_decoded >= closeup.TARGET_IOD or work.factor <= 1:
            src, src_factor = decoded, work.factor
        else:  # decode again, only as much larger as this face needs
            src, src_factor = source(max(1, int(iod_decoded * work.factor // closeup.TARGET_IOD)))
        k = work.to_original / src_factor  # source pixels per working pixel
        win = closeup.window_for((pts + 0.5) * k - 0.5, src.shape)
        with self._stage("preprocess"):
            patch = src[win.y0:win.y1, win.x0:win.x1]
            # LINEAR_EXACT, as for the working image: plain INTER_LINEAR rounds differently on arm64 and moved
            # a close-up face's probabilities by up to 0.05 against x86 (make arm64-check, group photo).
            zoomed = cv2.resize(patch, win.size,
                                interpolation=cv2.INTER_AREA if win.zoom < 1 else cv2.INTER_LINEAR_EXACT)
            image = working_image(zoomed, None, 1.0, self.options.denoise, self.equalize).image
        left, top, right, bottom = rect_to_box(rect)
        x1, y1, x2, y2 = win.edges_from_source((left * k, top * k, (right + 1) * k, (bottom + 1) * k))
        near = dlib.rectangle(round(x1), round(y1), max(round(x1), round(x2) - 1), max(round(y1), round(y2) - 1))
        pts = self.fit(image, near)
        return self._found(rect, image, pts, reported=(win.to_source(pts) + 0.5) / k - 0.5)

    def run(self, image: ImageInput, name: str | None = None,
            max_faces: int | None = None) -> tuple[WorkingImage, list[FoundFace]]:
        """Every face of a photo or frame (at most `max_faces`, largest first)."""
        gray, factor = self.load(image, name)
        work = self.prepare(gray, factor)
        rects = self.detect(work, still=True)
        if max_faces:
            rects = rects[:max_faces]

        @functools.cache
        def source(k: int) -> tuple[np.ndarray, float]:
            # Only a file or bytes decoded reduced (a large JPEG; work.factor > 1) gets here: decode it again
            # at 1/k or more, once per k, for small faces only.
            with self._stage("decode"):
                return load_gray_for_width(image, -(-min(work.original_size) // k), name)

        return work, [self.face_at(work, r, source) for r in rects]

    def run_crop(self, image: ImageInput, name: str | None = None) -> tuple[ReadyCrop, FoundFace]:
        """An image that is already a face crop (FER2013's 48x48): the whole image is the face. The one
        ready-crop strategy, shared by `evaluate --crops` and training extraction."""
        with self._stage("decode"):
            gray = load_gray(image, name)
        with self._stage("preprocess"):
            rc = ready_crop(gray, self.crop_detector, self.equalize, self.options.denoise)
        return rc, self.face(rc.image, rc.rect)
