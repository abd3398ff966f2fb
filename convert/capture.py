"""Training-time capture degradation: extra copies of training photos as a cheap camera would deliver them.

The copies are degraded on the *raw* photo, before the pipeline (working image, denoising, equalisation,
detection, landmarks, crops), exactly as `dfer-edge evaluate --condition` degrades its test photos: a
model then sees during training the crops that dim light, sensor noise and blur produce at run time.
Augmenting the equalised crops instead would not reproduce what equalisation does to a dark, noisy frame.

Each copy draws one capture from a mix of conditions with *randomised* strengths (dfer_edge.degrade's
steps), seeded by the photo's name and the copy number, so an extraction is reproducible. The mix covers
the evaluation conditions' families without being them (held-out subjects are never degraded for
training anyway: `convert train` drops them).
"""

from __future__ import annotations

import zlib
from dataclasses import replace

import numpy as np

from dfer_edge import degrade
from dfer_edge.errors import DferError
from dfer_edge.image import load_gray

from .readers import Sample

# (weight, family). Dim light with sensor noise is the costliest condition at run time, so it is drawn
# most often.
MIX = (
    (0.30, "dim+noise"),
    (0.10, "dim+shot"),
    (0.15, "blur"),
    (0.15, "motion"),
    (0.08, "defocus"),
    (0.07, "noise"),
    (0.07, "jpeg"),
    (0.08, "small"),
)


def draw(rng: np.random.Generator, face_px: float) -> degrade.Condition:
    """One random capture. `face_px`: the face's width in the raw photo's pixels, so that blur and shrinking
    are as strong relative to a 48-px FER2013 face as to a 150-px KDEF face."""
    family = rng.choice([f for _, f in MIX], p=np.array([w for w, _ in MIX]) / sum(w for w, _ in MIX))
    k = face_px / 150.0  # the evaluation conditions are sized for KDEF's ~150-px faces
    dim = degrade.dim(rng.uniform(1.6, 2.6), rng.uniform(0.25, 0.6))
    if family == "dim+noise":
        steps = (dim, degrade.noise(rng.uniform(2.0, 8.0)))
    elif family == "dim+shot":
        steps = (dim, degrade.shot_noise(rng.uniform(1.0, 4.0)))
    elif family == "blur":
        steps = (degrade.blur(max(0.3, k * rng.uniform(0.8, 2.6))),)
    elif family == "motion":
        steps = (degrade.motion(max(3, int(round(k * rng.uniform(5, 13))) | 1)),)
    elif family == "defocus":
        steps = (degrade.defocus(max(1, int(round(k * rng.uniform(1.5, 4.0))))),)
    elif family == "noise":
        steps = (degrade.noise(rng.uniform(3.0, 9.0)),) if rng.random() < 0.6 else (degrade.shot_noise(rng.uniform(0.4, 1.5)),)
    elif family == "jpeg":
        steps = (degrade.jpeg(int(rng.integers(12, 45))),)
    else:  # small: the photo shrunk so the face is 40-70 px wide (photos only; a 48-px crop is already small)
        steps = (degrade.shrink(int(rng.integers(40, 71)), degrade.KDEF_FACE_SHARE),) if face_px > 80 else \
            (degrade.blur(0.5),)
    return degrade.Condition(f"train-{family}", tuple(steps), "training capture")


def degraded(samples: list[Sample], copies: int, share: float = 1.0, crops: bool = False,
             seed: int = 0) -> list[Sample]:
    """`copies` degraded copies of a `share` of the samples (chosen by name hash, so a re-run picks the same),
    as in-memory Samples named `<name>#capture<k>` with the original's label, votes and subject."""
    if copies < 1:
        return []
    out = []
    for s in samples:
        h = zlib.crc32(f"{seed}:{s.name}".encode())
        if share < 1.0 and (h % 10_000) / 10_000 >= share:
            continue
        try:
            gray = load_gray(s.image if s.image is not None else s.name)
        except DferError:  # unreadable: the clean extraction reports it, once
            continue
        face_px = gray.shape[1] if crops else gray.shape[1] * degrade.KDEF_FACE_SHARE
        for k in range(copies):
            rng = np.random.default_rng([seed, h, k])
            cond = draw(rng, face_px)
            out.append(replace(s, name=f"{s.name}#capture{k}", image=cond(gray, int(rng.integers(2**31))),
                               extra={**(s.extra or {}), "capture": cond.name}))
    return out
