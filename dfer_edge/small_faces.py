"""Finding the faces HOG cannot see at the working width: a fast candidate stage plus a cheap check.

HOG's window is 80 px, so on the 512-px working image it misses every face narrower than ~16% of the
photo. Upsampling the whole image finds them at ~4x the cost. Instead, BlazeFace (the 256x256 "back"
model, ~8 ms here) looks at the whole decoded image at a low threshold, which finds nearly every face of
36 px and up together with a few false candidates; each candidate that no HOG face already covers is
then checked by HOG on a small patch around it, upscaled so the face fills HOG's window (~1-2 ms). The
box HOG finds there is the face's box, in dlib's convention, so landmarks, crops and the model see a
small face exactly as they see a large one. Both detectors must agree, which keeps false faces rare.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import dlib
import numpy as np

from .blazeface import BlazeFace, Detection, keypoint_box, keypoint_error
from .detect import FaceDetector, WorkingImage
from .landmarks import LandmarkModel

CANDIDATE_SCORE = 0.15  # BlazeFace's threshold for candidates (0.5 finds 81% of 36+ px faces, this 97%)
CHECK_WIDTH = 90  # a candidate is scaled to this width for HOG's 80-px window
CHECK_CONTEXT = 0.5  # context around the candidate in the patch, in candidate widths per side
# Faces HOG cannot confirm (turned, looking down) are kept when BlazeFace is sure and dlib's 68 points,
# fitted in a box placed from BlazeFace's keypoints, put the eyes, nose tip and mouth where BlazeFace did.
# (BlazeFace score at least, keypoint error at most), the error being the mean distance in eye-to-mouth
# distances. On 60 scenes (423 candidates) and 40 face-free images these two tiers keep 2 false
# candidates and no false face-free one; a true face's median error is 0.13.
KEYPOINT_TIERS = ((0.6, 0.15), (0.7, 0.30))
SURE_SCORE = min(t[0] for t in KEYPOINT_TIERS)
WEAK_HOG = -1.0  # the keypoint route also needs HOG to respond this much (real turned faces: -0.6 to -0.8)
MIN_FACE = 36  # px: the smallest face looked for in photos up to LARGE_PHOTO px wide...
LARGE_PHOTO = 1200
MIN_FACE_SHARE = 0.03  # ...and in wider photos, this share of the width
MIN_INPUT_FACE = 14  # px a face must have in BlazeFace's input to be seen reliably (0.95 of 36-px faces)...
MIN_INPUT_FACE_LARGE = 20  # ...and in large photos, which have no time budget, more tiles for more recall


@dataclass(frozen=True)
class SmallFaceSearch:
    """Adds the faces HOG missed to HOG's list. Built once per pipeline; holds no per-image state."""

    blazeface: BlazeFace
    check: FaceDetector  # HOG without upsampling, sharing the pipeline's dlib detector
    landmarks: LandmarkModel | None = None  # for the keypoint check
    candidate_score: float = CANDIDATE_SCORE

    def tiles(self, w: int, h: int, factor: float = 1.0) -> list[tuple[int, int, int, int]]:
        """Regions of a w x h image to give BlazeFace, each at most `side` px so that the smallest face
        looked for keeps MIN_INPUT_FACE px in the model's input: one region for an ordinary landscape
        photo, an overlapping grid of squares for portraits and large photos."""
        w0 = w * factor  # original pixels (the image may have been decoded reduced)
        min_face = (MIN_FACE if w0 <= LARGE_PHOTO else MIN_FACE_SHARE * w0) / factor
        side = int(self.blazeface.variant.size * min_face / (MIN_INPUT_FACE if w0 <= LARGE_PHOTO else MIN_INPUT_FACE_LARGE))
        if w <= side and h <= side:
            return [(0, 0, w, h)]
        overlap = side // 4  # every face up to a quarter of a tile lies whole in some tile

        def starts(n: int) -> list[int]:
            if n <= side:
                return [0]
            k = math.ceil((n - overlap) / (side - overlap))
            return [round(i * (n - side) / (k - 1)) for i in range(k)]

        return [(x, y, min(w, x + side), min(h, y + side)) for y in starts(h) for x in starts(w)]

    def candidates(self, gray: np.ndarray, factor: float = 1.0) -> list[Detection]:
        """BlazeFace's detections in `gray` pixels, best first, duplicates across tiles merged. A box
        that runs out of its tile (a face cut by the tile's edge) is left to the neighbouring tile."""
        found: list[Detection] = []
        h, w = gray.shape[:2]
        tiles = self.tiles(w, h, factor)
        for x0, y0, x1, y1 in tiles:
            for d in self.blazeface(gray[y0:y1, x0:x1]):
                b = (d.box[0] + x0, d.box[1] + y0, d.box[2] + x0, d.box[3] + y0)
                slack = 0.1 * (b[2] - b[0])
                cut = ((x0 > 0 and b[0] < x0 - slack) or (y0 > 0 and b[1] < y0 - slack)
                       or (x1 < w and b[2] > x1 + slack) or (y1 < h and b[3] > y1 + slack))
                # In a grid, a box over half a tile wide is BlazeFace seeing the tile as one face: the
                # faces that large are HOG's (its 80-px window at 512 px is far smaller).
                too_big = len(tiles) > 1 and b[2] - b[0] > 0.5 * (x1 - x0)
                if d.score >= self.candidate_score and not cut and not too_big:
                    found.append(Detection(b, d.score, d.keypoints + np.array([x0, y0], np.float32)))
        found.sort(key=lambda d: -d.score)
        kept: list[Detection] = []
        for d in found:
            if not any(_covers(k.box, d.box) for k in kept):
                kept.append(d)
        return kept

    def verify(self, gray: np.ndarray, d: Detection) -> tuple[float, ...] | None:
        """The face's box in `gray` pixels (dlib's convention), or None: HOG's box when HOG finds the
        face on a patch around the candidate scaled to CHECK_WIDTH px; else, for a candidate BlazeFace is
        sure of and where HOG at least responds weakly (turned or downcast faces do; hair and textures
        that BlazeFace takes for a face do not), the box placed from its keypoints when dlib's landmarks
        agree with them."""
        box, weak = self.hog_check(gray, d.box)
        if box is not None:
            return box
        return self.keypoint_check(gray, d) if d.score >= SURE_SCORE and weak >= WEAK_HOG else None

    def keypoint_check(self, gray: np.ndarray, d: Detection) -> tuple[float, ...] | None:
        box, scale = keypoint_box(d.keypoints)
        if self.landmarks is None or scale < 4:
            return None
        err = keypoint_error(self.landmarks(gray, dlib.rectangle(*(round(v) for v in box))), d.keypoints, scale)
        return box if any(d.score >= smin and err <= emax for smin, emax in KEYPOINT_TIERS) else None

    def hog_check(self, gray: np.ndarray, box: tuple[float, float, float, float]) -> tuple[tuple[float, ...] | None, float]:
        """HOG on the candidate's patch: (the face's box when HOG finds it at the check's threshold, the
        best HOG score of any window centred on the candidate, down to WEAK_HOG; -inf for none)."""
        x1, y1, x2, y2 = box
        bw = max(x2 - x1, 1.0)
        m = CHECK_CONTEXT * bw
        px1, py1 = max(0, int(x1 - m)), max(0, int(y1 - m))
        px2, py2 = min(gray.shape[1], int(math.ceil(x2 + m))), min(gray.shape[0], int(math.ceil(y2 + m)))
        if px2 - px1 < 8 or py2 - py1 < 8:
            return None, -math.inf
        s = CHECK_WIDTH / bw
        patch = gray[py1:py2, px1:px2]
        interp = cv2.INTER_CUBIC if s > 1 else cv2.INTER_AREA
        patch = cv2.equalizeHist(cv2.resize(patch, (max(1, round(patch.shape[1] * s)), max(1, round(patch.shape[0] * s))),
                                            interpolation=interp))
        found, scores, _ = self.check.dlib_detector.run(patch, 0, WEAK_HOG)
        best, weak = None, -math.inf
        for r, score in sorted(zip(found, scores), key=lambda rs: -rs[1]):
            rb = (r.left() / s + px1, r.top() / s + py1, r.right() / s + px1, r.bottom() / s + py1)
            if _covers(rb, box):  # HOG's window is on the candidate, at its size
                weak = max(weak, score)
                if best is None and score >= self.check.min_score:
                    best = rb
        return best, weak

    def __call__(self, work: WorkingImage, rects: list[dlib.rectangle],
                 candidates: list[Detection] | None = None) -> list[dlib.rectangle]:
        """`rects` (HOG's faces on the working image) plus the small faces it missed, largest first.
        `candidates`: BlazeFace's boxes when already computed (the pipeline runs BlazeFace beside HOG)."""
        gray = source_of(work)
        k = work.scale  # working pixels per `gray` pixel
        have = [(r.left() / k, r.top() / k, r.right() / k, r.bottom() / k) for r in rects]
        out = list(rects)
        for c in self.candidates(gray, work.factor) if candidates is None else candidates:
            if any(_covers(h, c.box) for h in have):
                continue
            face = self.verify(gray, c)
            if face is None or any(_covers(h, face) for h in have):
                continue
            have.append(face)
            out.append(dlib.rectangle(round(face[0] * k), round(face[1] * k), round(face[2] * k), round(face[3] * k)))
        out.sort(key=lambda r: r.area(), reverse=True)
        return out


def source_of(work: WorkingImage) -> np.ndarray:
    """The image candidates are looked for in: the decoded photo (sharper than the working image)."""
    return work.gray if work.gray is not None else work.image


def _covers(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """Box a already accounts for box b: b's centre lies inside a, and they are of a size (a small face
    beside a large false candidate or another face's box is not the same face)."""
    cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
    ratio = (b[2] - b[0]) / max(a[2] - a[0], 1e-6)
    return a[0] <= cx <= a[2] and a[1] <= cy <= a[3] and 0.5 <= ratio <= 2.0
