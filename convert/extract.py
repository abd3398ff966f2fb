"""Run dfer_edge's own steps 1-4 over a dataset and cache the model inputs as one .npz.

Extraction goes through the runtime's corridor (dfer_edge.pipeline.Pipeline, built without a model)
with the runtime's detection settings, so training sees the faces inference finds, cut the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dfer_edge.errors import DferError
from dfer_edge.geometry import DEFAULT_REGIONS, CropRegions
from dfer_edge.options import DEFAULTS, RecognizerOptions
from dfer_edge.pipeline import InputFormat, Pipeline
from dfer_edge.progress import Progress, wanted
from dfer_edge.workers import Workers, resolve

from .errors import ConvertError
from .readers import FERPLUS_OTHER, Sample
from .wholeface import face_crop


def _setup(crops: bool, options: RecognizerOptions, size: int, regions: CropRegions) -> tuple[bool, Pipeline]:
    """Each worker's own extraction pipeline (dfer_edge.workers builds it after the fork)."""
    return crops, Pipeline(options, score=False, input_format=InputFormat(size, "iod", regions))


def _one(state: tuple[bool, Pipeline], sample: Sample):
    """-> (status, payload). status: ok | noface | error (a bad file is data here, never an exception,
    so the other samples' results survive it). With a face: its inputs, whether HOG found it, and the
    whole levelled face for teachers (convert/wholeface.py), cut from the same working image."""
    crops, pipe = state
    source = sample.image if sample.image is not None else sample.name
    try:
        if crops:
            rc, face = pipe.run_crop(source, name=sample.name)
            return "ok", (face.inputs, rc.detected, face_crop(rc.image, face.landmarks))
        work, faces = pipe.run(source, name=sample.name, max_faces=1)
        if not faces:
            return "noface", None
        return "ok", (faces[0].inputs, True, face_crop(work.image, faces[0].landmarks))
    except DferError as e:
        return "error", str(e)


def extract(samples: list[Sample], out: str | Path, crops: bool, landmarks: str | None = None,
            size: int = 96, upsample: int = DEFAULTS.upsample, workers: int = 2,
            regions: CropRegions = DEFAULT_REGIONS, min_score: float = DEFAULTS.min_score,
            small_faces: bool | None = DEFAULTS.small_faces, equalize: str = "global",
            flip_landmarks: bool = DEFAULTS.flip_landmarks, progress: bool | None = None) -> dict:
    """Extract every sample, write `out`, and return counts (ok / no face / failed / HOG-detected).
    Full photos are detected with the runtime's settings (`upsample`, `min_score`, the second look for
    small faces of still images, flip-averaged landmarks) and the named equaliser; ready crops
    (`crops`) with the one ready-crop strategy that `evaluate --crops` uses. `workers` processes (0:
    every core; 1: this process), shared out by dfer_edge.workers as `predict --workers` does;
    `progress` as dfer_edge.progress (None: a bar when stderr is a terminal)."""
    n = len(samples)
    options = DEFAULTS.replace(landmarks=landmarks, upsample=upsample, min_score=min_score, small_faces=small_faces,
                               equalize=equalize, flip_landmarks=flip_landmarks)
    cols: dict[str, list] = {k: [] for k in ("right_eye", "left_eye", "mouth", "landmarks", "label",
                                            "votes", "votes_other", "votes_extra", "subject", "name", "detected", "angle", "face")}
    counts = {"total": n, "ok": 0, "noface": 0, "error": 0, "hog_detected": 0}
    pool = Workers(resolve(workers, n), _setup, (crops, options, size, regions))
    with pool, Progress("extracting", n, wanted(progress, n), "images") as bar:
        for s, (status, payload) in zip(samples, pool.map(_one, samples)):
            counts[status] += 1
            bar.advance(faces=int(status == "ok"))
            if status == "error":
                bar.err(f"error: {payload}")
            if status == "ok":
                fi, detected, whole = payload
                cols["face"].append(whole)
                counts["hog_detected"] += int(detected)
                cols["right_eye"].append(fi.right_eye)
                cols["left_eye"].append(fi.left_eye)
                cols["mouth"].append(fi.mouth)
                cols["landmarks"].append(fi.landmarks.astype(np.float32))
                cols["label"].append(s.label)
                cols["votes"].append(s.votes if s.votes is not None else np.full(7, np.nan, np.float32))
                cols["votes_other"].append(np.float32(s.votes_other))
                cols["votes_extra"].append(s.votes_extra if s.votes_extra is not None
                                           else np.full(len(FERPLUS_OTHER), np.nan, np.float32))
                cols["subject"].append(s.subject)
                cols["name"].append(s.name)
                cols["detected"].append(detected)
                cols["angle"].append((s.extra or {}).get("angle", ""))
    arrays = {k: np.asarray(v) for k, v in cols.items()}
    if counts["ok"] == 0:
        raise ConvertError("no face could be extracted from any image")
    np.savez(out, crops=np.array(crops), size=np.array(size), crop_regions=np.array(json.dumps(regions.to_dict())),
             equalize=np.array(equalize), **arrays)
    return counts
