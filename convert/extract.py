"""Run dfer_edge's own steps 1-4 over a dataset and cache the model inputs as one .npz."""

from __future__ import annotations

import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np

from dfer_edge.detect import FaceDetector, working_image
from dfer_edge.errors import DferError
from dfer_edge.extract import face_inputs, ready_crop_inputs
from dfer_edge.geometry import DEFAULT_REGIONS, CropRegions
from dfer_edge.image import load_gray
from dfer_edge.landmarks import LandmarkModel

from .readers import Sample

_state: dict = {}


def _init(crops: bool, landmarks: str | None, size: int, upsample: int, regions: CropRegions) -> None:
    _state.update(crops=crops, size=size, regions=regions, lm=LandmarkModel(landmarks),
                  det=FaceDetector(0 if crops else upsample))


def _one(sample: Sample):
    """-> (status, payload). status: ok | noface | error."""
    try:
        gray = load_gray(sample.image if sample.image is not None else sample.name, name=sample.name)
        if _state["crops"]:
            fi, rc = ready_crop_inputs(gray, _state["det"], _state["lm"], _state["size"], regions=_state["regions"])
            return "ok", (fi, rc.detected)
        work = working_image(gray)
        rects = _state["det"](work.image)
        if not rects:
            return "noface", None
        fi = face_inputs(work.image, _state["lm"](work.image, rects[0]), _state["size"], regions=_state["regions"])
        return "ok", (fi, True)
    except DferError as e:
        return "error", str(e)


def extract(samples: list[Sample], out: str | Path, crops: bool, landmarks: str | None = None,
            size: int = 96, upsample: int = 0, workers: int = 2,
            regions: CropRegions = DEFAULT_REGIONS) -> dict:
    """Extract every sample, write `out`, and return counts (ok / no face / failed / HOG-detected)."""
    n = len(samples)
    cols: dict[str, list] = {k: [] for k in ("right_eye", "left_eye", "mouth", "landmarks", "label",
                                            "votes", "votes_other", "subject", "name", "detected", "angle")}
    counts = {"total": n, "ok": 0, "noface": 0, "error": 0, "hog_detected": 0}
    t0 = time.time()
    with mp.get_context("fork").Pool(workers, _init, (crops, landmarks, size, upsample, regions)) as pool:
        for i, (s, (status, payload)) in enumerate(zip(samples, pool.imap(_one, samples, chunksize=32))):
            counts[status] += 1
            if status == "error":
                print(f"error: {payload}", file=sys.stderr)
            if status == "ok":
                fi, detected = payload
                counts["hog_detected"] += int(detected)
                cols["right_eye"].append(fi.right_eye)
                cols["left_eye"].append(fi.left_eye)
                cols["mouth"].append(fi.mouth)
                cols["landmarks"].append(fi.landmarks.astype(np.float32))
                cols["label"].append(s.label)
                cols["votes"].append(s.votes if s.votes is not None else np.full(7, np.nan, np.float32))
                cols["votes_other"].append(np.float32(s.votes_other))
                cols["subject"].append(s.subject)
                cols["name"].append(s.name)
                cols["detected"].append(detected)
                cols["angle"].append((s.extra or {}).get("angle", ""))
            if (i + 1) % 2000 == 0 or i + 1 == n:
                print(f"  {i + 1}/{n} images, {time.time() - t0:.0f} s", file=sys.stderr)
    arrays = {k: np.asarray(v) for k, v in cols.items()}
    if counts["ok"] == 0:
        raise SystemExit("error: no face could be extracted from any image")
    np.savez(out, crops=np.array(crops), size=np.array(size), crop_regions=np.array(json.dumps(regions.to_dict())),
             **arrays)
    return counts
