"""Cached extraction (.npz) -> training arrays: splits, label choices, features and augmentation."""

from __future__ import annotations

import json
from dataclasses import dataclass

import cv2
import numpy as np

from dfer_edge import geometry
from dfer_edge.labels import LABELS

from .errors import ConvertError

LABEL_MODES = ("original", "ferplus-majority", "ferplus-soft")


@dataclass
class Arrays:
    right_eye: np.ndarray  # (N, S, S) uint8
    left_eye: np.ndarray
    mouth: np.ndarray
    landmarks: np.ndarray  # (N, 68, 2) float32, working-image pixels
    target: np.ndarray  # (N, 7) float32 target distribution
    label: np.ndarray  # (N,) int: the dataset's own label (for accuracy)
    subject: np.ndarray
    name: np.ndarray
    face: np.ndarray | None = None  # (N, F, F) uint8 whole levelled face, for teachers (convert/wholeface.py)

    def __len__(self) -> int:
        return len(self.label)

    def take(self, idx: np.ndarray) -> "Arrays":
        return Arrays(*(None if v is None else v[idx] for v in (getattr(self, f) for f in self.__dataclass_fields__)))

    def with_target(self, target: np.ndarray) -> "Arrays":
        return Arrays(**{**{f: getattr(self, f) for f in self.__dataclass_fields__}, "target": target})

    @staticmethod
    def concat(parts: list["Arrays"]) -> "Arrays":
        def joined(f: str):
            vals = [getattr(p, f) for p in parts]
            return None if any(v is None for v in vals) else np.concatenate(vals)

        return Arrays(*(joined(f) for f in Arrays.__dataclass_fields__))


def targets(label: np.ndarray, votes: np.ndarray, mode: str, original_weight: float = 0.0) -> np.ndarray:
    """Target distributions: one-hot of the dataset label, or FER+ votes where they exist; with
    `original_weight` w, FER+ targets are (1 - w) * FER+ + w * the dataset label (keeps some of what
    FER2013's own labels say, which FER+ targets alone lose)."""
    onehot = np.eye(len(LABELS), dtype=np.float32)[label]
    if mode == "original":
        return onehot
    if mode not in LABEL_MODES:
        raise ConvertError(f"unknown label mode {mode!r}; expected one of {LABEL_MODES}")
    v = np.nan_to_num(votes.astype(np.float32), nan=0.0)
    has = v.sum(1) > 0
    out = onehot.copy()
    if mode == "ferplus-soft":
        out[has] = v[has] / v[has].sum(1, keepdims=True)
    else:
        out[has] = np.eye(len(LABELS), dtype=np.float32)[v[has].argmax(1)]
    if original_weight:
        out[has] = (1 - original_weight) * out[has] + original_weight * onehot[has]
    return out


def non_expression(votes: np.ndarray, votes_other: np.ndarray) -> np.ndarray:
    """Faces whose FER+ raters mostly said contempt, unknown or not-a-face: more votes for those three
    together than for any of our seven. Faces without FER+ votes (NaN) are never flagged."""
    v = np.nan_to_num(votes.astype(np.float32), nan=0.0)
    other = np.nan_to_num(votes_other.astype(np.float32), nan=0.0)
    return other > v.max(1)


def load(path: str, mode: str = "original", drop_non_expression: bool = False,
         original_weight: float = 0.0) -> Arrays:
    """A cache as training arrays. With FER+ targets and `drop_non_expression`, faces the raters did not see
    as one of the seven expressions (see non_expression) are left out: no target fits them."""
    z = np.load(path, allow_pickle=False)
    a = Arrays(z["right_eye"], z["left_eye"], z["mouth"], z["landmarks"],
               targets(z["label"], z["votes"], mode, original_weight), z["label"].astype(np.int64),
               z["subject"], z["name"], z["face"] if "face" in z.files else None)
    if drop_non_expression and mode != "original" and "votes_other" in z.files:
        a = a.take(np.flatnonzero(~non_expression(z["votes"], z["votes_other"])))
    return a


def crop_regions(path: str) -> dict:
    """The crop regions a cache was extracted with (older caches: the defaults)."""
    from dfer_edge.geometry import DEFAULT_REGIONS

    z = np.load(path, allow_pickle=False)
    return json.loads(str(z["crop_regions"])) if "crop_regions" in z.files else DEFAULT_REGIONS.to_dict()


def equalizer(path: str) -> str:
    """The equaliser a cache was extracted with (older caches: the seed's global equalizeHist)."""
    z = np.load(path, allow_pickle=False)
    return str(z["equalize"]) if "equalize" in z.files else "global"


def ferplus_labels(path: str) -> dict[str, np.ndarray]:
    """Per face of a cache, by each FER+ rule (dfer_edge.ferplus; what `dfer-edge evaluate --votes` scores
    against): {"official": ..., "argmax7": ...}, -1 where a rule gives no label. Caches extracted before the
    three other columns were kept one by one have no official rule."""
    return _ferplus_labels(np.load(path, allow_pickle=False))


def _ferplus_labels(z) -> dict[str, np.ndarray]:
    from dfer_edge.ferplus import argmax7, official_majority

    out = {}
    if "votes_extra" in z.files:
        out["official"] = official_majority(z["votes"], z["votes_extra"])
    out["argmax7"] = argmax7(z["votes"])
    return out


def official_by_name(paths: list[str]) -> dict[str, int]:
    """File name -> the official FER+ majority label, over the given caches (faces without one left out)."""
    out = {}
    for p in paths:
        z = np.load(p, allow_pickle=False)
        lab = _ferplus_labels(z).get("official")
        if lab is not None:
            out.update({str(n): int(x) for n, x in zip(z["name"], lab) if x >= 0})
    return out


def mirrored(a: Arrays) -> Arrays:
    """Every face seen in a mirror, exactly as the runtime's flip averaging sees it (dfer_edge.extract.mirrored):
    eye crops swapped and flipped, mouth flipped, landmarks mirrored."""
    return Arrays(a.left_eye[:, :, ::-1], a.right_eye[:, :, ::-1], a.mouth[:, :, ::-1],
                  geometry.mirror(a.landmarks).astype(np.float32), a.target, a.label, a.subject, a.name,
                  None if a.face is None else a.face[:, :, ::-1])


def features(landmarks: np.ndarray) -> np.ndarray:
    """(N, 68, 2) -> (N, 13) with the runtime's own feature function."""
    return np.stack([geometry.normalised_features(geometry.level(p)) for p in landmarks])


FACE_INPUT = "face"  # the one input of a whole-face teacher (convert/wholeface.py, model.build_face_model)


def input_kind(model) -> str:
    """"face" for a whole-face teacher, "crops" for the four-branch network, by the model's input names."""
    return "face" if [t.name.split(":")[0] for t in model.inputs] == [FACE_INPUT] else "crops"


def face_size(model) -> int:
    return int(model.inputs[0].shape[1])


def faces_at(faces: np.ndarray, size: int) -> np.ndarray:
    """(N, F, F) uint8 whole faces -> (N, size, size, 1) float in [0, 1] (area-resized when F != size)."""
    if faces.shape[1] != size:
        faces = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in faces])
    return faces[..., None].astype(np.float32) / 255.0


def inputs_for(model, a: Arrays) -> dict[str, np.ndarray]:
    """What `model` eats for the faces of `a`: the whole faces for a teacher, else model_inputs."""
    if input_kind(model) == "face":
        if a.face is None:
            raise ConvertError("this cache has no whole faces (extracted before convert/wholeface.py): re-extract it")
        return {FACE_INPUT: faces_at(a.face, face_size(model))}
    return model_inputs(a)


def model_inputs(a: Arrays) -> dict[str, np.ndarray]:
    """Float inputs exactly as the runtime feeds them: crops / 255, iod-normalised features."""
    return {
        "right_eye": a.right_eye[..., None].astype(np.float32) / 255.0,
        "left_eye": a.left_eye[..., None].astype(np.float32) / 255.0,
        "mouth": a.mouth[..., None].astype(np.float32) / 255.0,
        "features": features(a.landmarks),
    }


@dataclass
class Augment:
    flip: bool = True
    rotate_deg: float = 8.0
    scale: float = 0.08
    shift: float = 0.04
    brightness: float = 0.15
    contrast: float = 0.25
    landmark_jitter: float = 0.015  # in units of the inter-ocular distance
    # "Wild" augmentation (off unless asked for): what cheap cameras and web photos do to a face.
    erase: float = 0.0  # probability per crop of one random grey rectangle (occlusion: hands, hair, glasses)
    blur: float = 0.0  # probability per face of a Gaussian blur, sigma 0.5-2 px on the 96-px crops
    lowres: float = 0.0  # probability per face of a down-and-up resize to 24-48 px (a small face)
    gamma: float = 0.0  # log-uniform gamma in [exp(-g), exp(g)] per face (under- and over-exposure)


def _warp_batch(imgs: np.ndarray, rng: np.random.Generator, aug: Augment) -> np.ndarray:
    n, s = imgs.shape[:2]
    out = np.empty_like(imgs)
    ang = rng.uniform(-aug.rotate_deg, aug.rotate_deg, n)
    sc = 1.0 + rng.uniform(-aug.scale, aug.scale, n)
    sh = rng.uniform(-aug.shift, aug.shift, (n, 2)) * s
    for i in range(n):
        m = cv2.getRotationMatrix2D((s / 2, s / 2), float(ang[i]), float(sc[i]))
        m[:, 2] += sh[i]
        out[i] = cv2.warpAffine(imgs[i], m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out


def augmented_batch(a: Arrays, idx: np.ndarray, rng: np.random.Generator, aug: Augment) -> dict[str, np.ndarray]:
    """One training batch: flip (eyes swapped, landmarks mirrored), small warps, photometric jitter,
    landmark jitter before the features are computed."""
    re, le, mo = a.right_eye[idx], a.left_eye[idx], a.mouth[idx]
    lm = a.landmarks[idx].astype(np.float64)
    if aug.flip:
        f = rng.random(len(idx)) < 0.5
        re_f, le_f = le[f][:, :, ::-1], re[f][:, :, ::-1]
        re, le = re.copy(), le.copy()
        re[f], le[f] = re_f, le_f
        mo = mo.copy()
        mo[f] = mo[f][:, :, ::-1]
        lm[f] = geometry.mirror(lm[f])
    if aug.rotate_deg or aug.scale or aug.shift:
        re, le, mo = (_warp_batch(x, rng, aug) for x in (re, le, mo))
    if aug.landmark_jitter:
        iod = np.hypot(*(lm[:, 45] - lm[:, 36]).T)[:, None, None]
        lm = lm + rng.normal(0, aug.landmark_jitter, lm.shape) * iod
    if aug.blur or aug.lowres:
        re, le, mo = _degrade((re, le, mo), rng, aug)
    crops = []
    gamma = np.exp(rng.uniform(-aug.gamma, aug.gamma, (len(idx), 1, 1))) if aug.gamma else None
    for x in (re, le, mo):
        x = x.astype(np.float32) / 255.0
        if gamma is not None:
            x = x ** gamma
        if aug.erase:
            x = _erase(x, rng, aug.erase)
        c = 1.0 + rng.uniform(-aug.contrast, aug.contrast, (len(idx), 1, 1))
        b = rng.uniform(-aug.brightness, aug.brightness, (len(idx), 1, 1))
        mean = x.mean(axis=(1, 2), keepdims=True)
        crops.append(np.clip((x - mean) * c + mean + b, 0.0, 1.0)[..., None].astype(np.float32))
    return {"right_eye": crops[0], "left_eye": crops[1], "mouth": crops[2], "features": features(lm)}


def augmented_faces(a: Arrays, idx: np.ndarray, rng: np.random.Generator, aug: Augment,
                    size: int) -> dict[str, np.ndarray]:
    """One teacher batch: the same kinds of change as augmented_batch, on the whole face."""
    f = a.face[idx]
    if aug.flip:
        flip = rng.random(len(idx)) < 0.5
        f = f.copy()
        f[flip] = f[flip][:, :, ::-1]
    if aug.rotate_deg or aug.scale or aug.shift:
        f = _warp_batch(f, rng, aug)
    if aug.blur or aug.lowres:
        (f,) = _degrade((f,), rng, aug)
    x = faces_at(f, size)[..., 0]
    if aug.gamma:
        x = x ** np.exp(rng.uniform(-aug.gamma, aug.gamma, (len(idx), 1, 1)))
    if aug.erase:
        x = _erase(x, rng, aug.erase)
    c = 1.0 + rng.uniform(-aug.contrast, aug.contrast, (len(idx), 1, 1))
    b = rng.uniform(-aug.brightness, aug.brightness, (len(idx), 1, 1))
    mean = x.mean(axis=(1, 2), keepdims=True)
    return {FACE_INPUT: np.clip((x - mean) * c + mean + b, 0.0, 1.0)[..., None].astype(np.float32)}


def _degrade(stacks: tuple[np.ndarray, ...], rng: np.random.Generator, aug: Augment) -> tuple[np.ndarray, ...]:
    """Blur or low resolution, the same for every image of one face (one camera, one face): the three
    crops of a student's batch, or a teacher's whole faces alone."""
    stacks = tuple(x.copy() for x in stacks)
    s = stacks[0].shape[1]
    for i in range(len(stacks[0])):
        if rng.random() < aug.blur:
            sigma = float(rng.uniform(0.5, 2.0))
            for x in stacks:
                x[i] = cv2.GaussianBlur(x[i], (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
        if rng.random() < aug.lowres:
            small = int(rng.integers(24, 49))
            for x in stacks:
                x[i] = cv2.resize(cv2.resize(x[i], (small, small), interpolation=cv2.INTER_AREA), (s, s),
                                  interpolation=cv2.INTER_LINEAR)
    return stacks


def _erase(x: np.ndarray, rng: np.random.Generator, p: float) -> np.ndarray:
    """Random erasing: with probability p per crop, one rectangle of 5-25% of the crop's area set to a
    random grey."""
    n, s = x.shape[:2]
    for i in np.flatnonzero(rng.random(n) < p):
        area = rng.uniform(0.05, 0.25) * s * s
        ratio = np.exp(rng.uniform(np.log(0.5), np.log(2.0)))
        h = int(min(s, round(np.sqrt(area * ratio))))
        w = int(min(s, round(np.sqrt(area / ratio))))
        y0, x0 = int(rng.integers(0, s - h + 1)), int(rng.integers(0, s - w + 1))
        x[i, y0:y0 + h, x0:x0 + w] = rng.uniform(0.0, 1.0)
    return x
