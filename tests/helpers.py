"""Shared test helpers: a synthetic dlib-68 face and the location of the shared data sets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

# ../shared/data next to the repository (not part of it; tests that need it skip when it is absent).
REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
PHOTOS = SHARED_DATA / "photos"
FER_VAL = SHARED_DATA / "fer2013" / "val"

# --- The template face, in "face units": the outer eye corners 36 and 45 are at (-0.5, 0) and
# (0.5, 0), so the inter-ocular distance is exactly 1 and the eye midpoint is the origin. x grows to
# the image's right, y grows downwards (image convention). The subject's right eye is on the image's
# left, as in dlib's numbering.
EYE_HALF_WIDTH = 0.15  # corner to eye centre
EYE_LID = 0.05  # upper/lower lid points sit this far above/below the eye centre
RIGHT_EYE_CENTRE = (-0.35, 0.0)  # mean of 36-41 (outer corner -0.5, inner corner -0.2)
LEFT_EYE_CENTRE = (0.35, 0.0)  # mean of 42-47
BROW_INNER_X = 0.10  # points 21 / 22 at x = -/+ this
BROW_Y = -0.20
MOUTH_CENTRE = (0.0, 0.86)  # mean of 48-67 (both lip ellipses are symmetric about it)
MOUTH_HALF_WIDTH = 0.30  # corners 48 / 54
MOUTH_HALF_HEIGHT = 0.09  # 51 above, 57 below the mouth centre
INNER_HALF_WIDTH = 0.20
INNER_HALF_HEIGHT = 0.03


def _eye(centre: tuple[float, float]) -> list[tuple[float, float]]:
    """Six points of a hexagonal eye in dlib order, which for both eyes starts at the image-left
    corner (36: right eye's outer corner, 42: left eye's inner corner), goes over the upper lid to
    the image-right corner (39 / 45) and back along the lower lid. The mean is `centre`."""
    cx, cy = centre
    w, h = EYE_HALF_WIDTH, EYE_LID
    return [(cx - w, cy), (cx - w / 3, cy - h), (cx + w / 3, cy - h),
            (cx + w, cy), (cx + w / 3, cy + h), (cx - w / 3, cy + h)]


def template_face() -> np.ndarray:
    """(68, 2) float64 landmarks of a plausible frontal face in face units (see above)."""
    pts: list[tuple[float, float]] = []
    # Jaw 0-16: half an ellipse from the right temple (image left) under the chin to the left temple.
    for i in range(17):
        t = np.pi - i * np.pi / 16
        pts.append((0.75 * np.cos(t), 0.05 + 1.2 * np.sin(t)))
    # Right brow 17-21, outer to inner; left brow 22-26, inner to outer (mirror).
    right_brow = [(-0.60, -0.12), (-0.48, -0.20), (-0.35, -0.23), (-0.22, -0.22), (-BROW_INNER_X, BROW_Y)]
    pts += right_brow
    pts += [(-x, y) for x, y in reversed(right_brow)]
    # Nose bridge 27-30 (top to tip), then the nostril base 31-35 (image left to right).
    pts += [(0.0, 0.05), (0.0, 0.18), (0.0, 0.31), (0.0, 0.44)]
    pts += [(-0.15, 0.52), (-0.08, 0.54), (0.0, 0.55), (0.08, 0.54), (0.15, 0.52)]
    # Eyes 36-41 (right) and 42-47 (left): hexagons whose mean is the eye centre.
    pts += _eye(RIGHT_EYE_CENTRE)
    pts += _eye(LEFT_EYE_CENTRE)
    # Outer lip 48-59: 48 right corner, 51 top centre, 54 left corner, 57 bottom centre.
    mx, my = MOUTH_CENTRE
    for k in range(12):
        phi = np.pi - k * np.pi / 6
        pts.append((mx + MOUTH_HALF_WIDTH * np.cos(phi), my - MOUTH_HALF_HEIGHT * np.sin(phi)))
    # Inner lip 60-67: 60 right inner corner, 62 top, 64 left inner corner, 66 bottom.
    for k in range(8):
        phi = np.pi - k * np.pi / 4
        pts.append((mx + INNER_HALF_WIDTH * np.cos(phi), my - INNER_HALF_HEIGHT * np.sin(phi)))
    out = np.array(pts, dtype=np.float64)
    assert out.shape == (68, 2)
    return out


def rotation(angle_deg: float) -> np.ndarray:
    """2x2 rotation by angle_deg in image coordinates (positive = clockwise on screen, y down)."""
    a = np.radians(angle_deg)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def to_image(face_xy, cx: float, cy: float, iod: float, angle_deg: float = 0.0) -> np.ndarray:
    """Face-unit point(s) -> image pixels for a face placed with synthetic_landmarks(cx, cy, iod, angle)."""
    p = np.asarray(face_xy, dtype=np.float64)
    return p @ rotation(angle_deg).T * iod + np.array([cx, cy])


def synthetic_landmarks(cx: float, cy: float, iod: float, angle_deg: float = 0.0,
                        jitter: float = 0.0, seed: int = 0) -> np.ndarray:
    """68 dlib landmarks of a synthetic frontal face, eye midpoint at (cx, cy), outer eye corners
    `iod` px apart, rotated by angle_deg about the eye midpoint (positive = clockwise on screen).

    `jitter` (face units) adds a fixed pseudo-random perturbation *before* rotating and scaling, so
    the same `seed` gives the same face shape at any pose (an asymmetric face for invariance tests).
    With jitter the iod is no longer exactly `iod`.
    """
    face = template_face()
    if jitter:
        face = face + np.random.default_rng(seed).normal(0.0, jitter, face.shape)
    return to_image(face, cx, cy, iod, angle_deg)


def eye_centres(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(right, left) eye centres as dlib-68 means: 36-41 and 42-47."""
    p = np.asarray(points, dtype=np.float64)
    return p[36:42].mean(axis=0), p[42:48].mean(axis=0)


# --- A real video: KDEF faces of one subject, moving, expression changing ------------------------
KDEF = SHARED_DATA / "kdef"
KDEF_SEQUENCE = ("NE", "HA", "SU", "AN", "SA", "DI", "AF")  # KDEF expression codes, neutral first


def kdef_frames(subject: str = "AF01", hold: int = 30, size: tuple[int, int] = (640, 480), seed: int = 0):
    """BGR frames: one subject's straight-view KDEF photos, each held `hold` frames, drifting side to
    side and up and down by a few pixels per frame over a gray background with a little sensor noise.
    Yields (frame, KDEF label folder)."""
    import cv2

    from dfer_edge.labels import canonical_label

    w, h = size
    rng = np.random.default_rng(seed)
    k = 0
    for code in KDEF_SEQUENCE:
        hits = sorted(KDEF.glob(f"*/{subject}{code}S.jpg"))
        if not hits:
            raise FileNotFoundError(f"no KDEF image {subject}{code}S.jpg under {KDEF}")
        face = cv2.imread(str(hits[0]), cv2.IMREAD_GRAYSCALE)
        scale = (h - 40) / face.shape[0]
        face = cv2.resize(face, (round(face.shape[1] * scale), h - 40), interpolation=cv2.INTER_AREA)
        for _ in range(hold):
            x = int(round((w - face.shape[1]) / 2 + 60 * np.sin(2 * np.pi * k / 120)))
            y = int(round(20 + 10 * np.sin(2 * np.pi * k / 75)))
            canvas = np.full((h, w), 128, np.uint8)
            canvas[y:y + face.shape[0], x:x + face.shape[1]] = face
            noisy = np.clip(canvas.astype(np.int16) + rng.normal(0, 3, canvas.shape).astype(np.int16), 0, 255)
            yield cv2.cvtColor(noisy.astype(np.uint8), cv2.COLOR_GRAY2BGR), canonical_label(hits[0].parent.name)
            k += 1


def write_kdef_video(path: Path, fps: float = 30.0, **kw) -> list[str]:
    """An .mp4 (mp4v) of kdef_frames(); returns the label of every frame."""
    import cv2

    labels = []
    writer = None
    for frame, label in kdef_frames(**kw):
        if writer is None:
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (frame.shape[1], frame.shape[0]))
            assert writer.isOpened(), f"cannot write {path}"
        writer.write(frame)
        labels.append(label)
    writer.release()
    return labels


# --- A kiosk: people come, stay, turn away and leave --------------------------------------------
# (KDEF photo or None for an empty scene, seconds). Visitor one looks at the camera (happy, then neutral),
# then turns to a half profile; the scene is empty for longer than a visit's default gap (3 s); visitor two
# looks on, surprised.
KIOSK_SCENES = ((None, 1.0), ("AF01HAS", 2.0), ("AF01NES", 1.0), ("AF01HAHL", 2.0), (None, 4.5), ("AM02SUS", 3.0))


def write_kiosk_video(path: Path, fps: float = 10.0) -> None:
    """An .mp4 (mp4v, 640x480) of KIOSK_SCENES: each photo scaled to 440 px high, centred on grey."""
    import cv2

    w, h = 640, 480
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened(), f"cannot write {path}"
    for name, seconds in KIOSK_SCENES:
        face = None
        if name:
            hits = sorted(KDEF.glob(f"*/{name}.jpg"))
            if not hits:
                raise FileNotFoundError(f"no KDEF image {name}.jpg under {KDEF}")
            face = cv2.imread(str(hits[0]), cv2.IMREAD_GRAYSCALE)
            face = cv2.resize(face, (round(face.shape[1] * (h - 40) / face.shape[0]), h - 40), interpolation=cv2.INTER_AREA)
        for _ in range(round(seconds * fps)):
            canvas = np.full((h, w), 128, np.uint8)
            if face is not None:
                x = (w - face.shape[1]) // 2
                canvas[20:20 + face.shape[0], x:x + face.shape[1]] = face
            writer.write(cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR))
    writer.release()


FERPLUS_VOTES = SHARED_DATA / "fer2013" / "ferplus_votes.csv"


def fer_val_subset(dest: Path, per_label: int) -> Path:
    """A <label>/<file> tree of symlinks to the first `per_label` FER2013 val images of each label (the
    caller skips when FER_VAL is absent)."""
    from dfer_edge.labels import LABELS

    for lab in LABELS:
        (dest / lab).mkdir(parents=True)
        for f in sorted((FER_VAL / lab).glob("*.jpg"))[:per_label]:
            (dest / lab / f.name).symlink_to(f)
    return dest


def run_cli(*args: object, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m dfer_edge ARGS` from the checkout, as a user runs it (DFER_VERBOSE dropped, so
    messages are the plain one-liners), its output captured as text."""
    env = {k: v for k, v in os.environ.items() if k != "DFER_VERBOSE"}
    return subprocess.run([sys.executable, "-m", "dfer_edge", *map(str, args)], cwd=cwd or REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def load_benchmark(name: str):
    """A script of benchmarks/ imported as a module (they are scripts, not a package), to test its pure parts."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def model_with(src: Path, dst: Path, drop: tuple[str, ...] = (), **changes) -> Path:
    """The .tflite `src` copied to `dst` with its contract (dfer_edge/contract.py) changed, inside the model
    and in the sidecar alike: what a re-export with other settings would give, without TensorFlow."""
    import json

    from dfer_edge.contract import embedded_metadata, sidecar_path, with_metadata

    data = Path(src).read_bytes()
    inside = embedded_metadata(data)
    meta = json.loads(inside) if inside is not None else json.loads(sidecar_path(Path(src)).read_text())
    meta = {k: v for k, v in {**meta, **changes}.items() if k not in drop}
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(with_metadata(data, meta))
    sidecar_path(dst).write_text(json.dumps(meta, indent=1, sort_keys=True))
    return dst
