"""Capture conditions (dfer_edge/degrade.py) and the denoising before equalisation: real KDEF photos of
held-out subjects, seeded conditions, the real pipeline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from dfer_edge import degrade
from dfer_edge.detect import DENOISE_AT, stretched_noise, working_image
from dfer_edge.evaluate import landmark_error, metrics, run
from dfer_edge.recognizer import Recognizer
from tests.conftest import need
from tests.helpers import KDEF, PHOTOS

CLI = [sys.executable, "-m", "dfer_edge"]
REPO = Path(__file__).resolve().parents[1]
# KDEF subjects the model never saw (convert/kdef_split.json), e.g. F03 for AF03/BF03.
HELD_OUT = set(json.loads((REPO / "convert" / "kdef_split.json").read_text())["heldout"])


def held_out_items() -> list:
    from dfer_edge.labels import LABELS, canonical_label

    items = []
    for folder in sorted(need(KDEF).iterdir()):
        lab = canonical_label(folder.name)
        if lab is None:
            continue
        items += [(p, LABELS.index(lab)) for p in sorted(folder.glob("*S.jpg")) if p.stem[1:4] in HELD_OUT]
    if len(items) < 20:
        pytest.skip("shared data incomplete: held-out KDEF subjects not found")
    return items


def test_conditions_are_seeded_and_do_what_they_say():
    gray = cv2.imread(str(need(KDEF / "happiness" / "AF01HAS.jpg")), cv2.IMREAD_GRAYSCALE)
    for name, c in degrade.CONDITIONS.items():
        a, b = c(gray, 7), c(gray, 7)
        assert np.array_equal(a, b) and a.dtype == np.uint8, name
    assert np.array_equal(degrade.CONDITIONS["clean"](gray), gray)
    dim = degrade.CONDITIONS["dim"](gray)
    assert dim.mean() < 0.4 * gray.mean()
    noisy = degrade.CONDITIONS["noise6"](gray, 1).astype(float) - gray
    assert 5.0 < noisy[(gray > 20) & (gray < 235)].std() < 7.0
    small = degrade.CONDITIONS["small48"](gray)
    assert small.shape[1] == round(gray.shape[1] * 48 / (degrade.KDEF_FACE_SHARE * gray.shape[1]))
    assert not np.array_equal(degrade.CONDITIONS["motion9"](gray, 1), degrade.CONDITIONS["motion9"](gray, 2))
    with pytest.raises(Exception, match="unknown capture condition"):
        degrade.condition("fog")


def test_clean_photos_are_never_denoised():
    """The trigger looks at noise as equalisation would stretch it; real clean photos stay far below it,
    so their working image (and every answer) is what it was before the remedy."""
    for p in [*sorted(need(PHOTOS).glob("*.jp*g")), *sorted(KDEF.glob("*/AF0*S.jpg"))[:10]]:
        gray = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        a, b = working_image(gray), working_image(gray, denoise=False)
        assert np.array_equal(a.image, b.image), p
    gray = cv2.imread(str(KDEF / "happiness" / "AF01HAS.jpg"), cv2.IMREAD_GRAYSCALE)
    dark = degrade.CONDITIONS["dim+noise6"](gray, 3)
    w = cv2.resize(dark, (512, round(dark.shape[0] * 512 / dark.shape[1])), interpolation=cv2.INTER_LINEAR_EXACT)
    assert stretched_noise(w) > DENOISE_AT > 2 * stretched_noise(cv2.resize(gray, w.shape[::-1]))


def test_denoising_recovers_dim_noisy_faces():
    """Dim light plus sensor noise (sigma 6) on held-out faces: the remedy keeps landmarks closer to where
    they are on the clean photo, and costs no accuracy. How much accuracy it wins back depends on the model:
    models trained on capture-degraded copies lose less without it, so the gain is measured (model card,
    "Capture conditions"), not pinned here."""
    items = held_out_items()
    on, off = Recognizer(threads=1, small_faces=False), Recognizer(threads=1, small_faces=False, denoise=False)
    clean = run(on, items, False)
    c = degrade.CONDITIONS["dim+noise6"]
    with_remedy, without = run(on, items, False, condition=c), run(off, items, False, condition=c)
    acc = lambda p: metrics(p.true, p.pred)["accuracy"]  # noqa: E731
    # Measured on these 168 straight views: 82.7% clean, 82.1% with the remedy, 80.4% without (the model
    # before it: 78.0 vs 73.2). "No worse" leaves the margin to the model; the landmarks carry the remedy's
    # own effect.
    assert acc(with_remedy) >= acc(without), (acc(clean), acc(with_remedy), acc(without))
    assert landmark_error(clean, with_remedy) < landmark_error(clean, without)


def test_evaluate_reports_every_condition(tmp_path):
    tree = tmp_path / "kdef"
    for p, lab in held_out_items()[::4]:
        from dfer_edge.labels import LABELS

        d = tree / LABELS[lab]
        d.mkdir(parents=True, exist_ok=True)
        (d / p.name).symlink_to(p)
    out = tmp_path / "m.json"
    r = subprocess.run([*CLI, "evaluate", str(tree), "--condition", "jpeg20,dim+noise6", "--json", str(out),
                        "--no-small-faces"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    rows = json.loads(out.read_text())["conditions"]
    assert [x["condition"] for x in rows] == ["clean", "jpeg20", "dim+noise6"]
    assert rows[0]["drop"] == 0 and all(x["landmark_error_iod"] is not None for x in rows)
    assert "capture condition" in r.stdout and "dim+noise6" in r.stdout


def test_flip_averaged_landmarks_are_steadier_under_blur():
    """--flip-landmarks: the 68 points fitted on the face and on its mirror image, averaged, move less
    from their clean positions when the capture is blurred (measured on all 502 held-out photos: median
    error 0.0148 -> 0.0118 IOD, accuracy under blur 77.7 -> 78.7%)."""
    items = held_out_items()[::2]
    c = degrade.CONDITIONS["blur2"]
    plain, flip = (Recognizer(threads=1, small_faces=False, flip_landmarks=f) for f in (False, True))
    err = {name: landmark_error(run(r, items, False), run(r, items, False, condition=c))
           for name, r in (("plain", plain), ("flip", flip))}
    assert err["flip"] < err["plain"], err


# --- remedies of issue 17: the adaptive blur, ready-crop denoising, the local equaliser, training copies ----

def test_denoise_blur_grows_with_the_noise():
    from dfer_edge.detect import DENOISE_SIGMA_MAX, denoise_sigma

    levels = [DENOISE_AT + 0.1, 9.0, 14.0, 30.0, 300.0]
    sigmas = [denoise_sigma(n) for n in levels]
    assert sigmas == sorted(sigmas) and abs(denoise_sigma(9.0) - 1.0) < 1e-9 and sigmas[-1] == DENOISE_SIGMA_MAX


def _fer_val_files(n: int) -> list[Path]:
    from tests.helpers import FER_VAL

    files = sorted(need(FER_VAL).glob("*/*.jpg"))
    return files[:: max(1, len(files) // n)][:n]


def test_ready_crops_are_denoised_only_when_noisy():
    """FER2013's 48x48 crops: the noise is estimated on the crop itself (after the upscale it is hidden).
    Clean crops are left as they are (measured: 99% of FER2013 val under the threshold); dim, noisy
    crops are blurred before equalisation."""
    from dfer_edge.detect import FaceDetector
    from dfer_edge.extract import CROP_DENOISE_AT, ready_crop

    det = FaceDetector(0)
    files = _fer_val_files(60)
    same = sum(np.array_equal(ready_crop(g, det).image, ready_crop(g, det, denoise=False).image)
               for g in (cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files))
    assert same >= 0.95 * len(files)
    dark = [degrade.CONDITIONS["dim+noise6"](cv2.imread(str(f), cv2.IMREAD_GRAYSCALE), 5) for f in files[:20]]
    assert np.median([stretched_noise(d, step=1) for d in dark]) > CROP_DENOISE_AT
    changed = sum(not np.array_equal(ready_crop(d, det).image, ready_crop(d, det, denoise=False).image) for d in dark)
    assert changed >= 15


def test_local_equaliser_is_an_option_and_a_model_names_its_own(tmp_path):
    """--equalize clahe changes the working image; a model's contract says which equaliser it was trained
    with and the pipeline follows it; a bad name is a one-line error."""
    from dfer_edge.errors import ModelError
    from dfer_edge.model import default_model_path
    from tests.helpers import model_with
    from dfer_edge.options import RecognizerOptions
    from dfer_edge.pipeline import Pipeline

    gray = cv2.imread(str(need(PHOTOS / "neutral.jpeg")), cv2.IMREAD_GRAYSCALE)
    g, c = working_image(gray), working_image(gray, equalize="clahe")
    assert g.image.shape == c.image.shape and not np.array_equal(g.image, c.image)
    assert Pipeline(RecognizerOptions(small_faces=False)).equalize == "global"  # the shipped model's (no field)
    src = default_model_path()
    model = model_with(src, tmp_path / src.name, equalize="clahe")
    assert Pipeline(RecognizerOptions(model=model, small_faces=False)).equalize == "clahe"
    assert Pipeline(RecognizerOptions(model=model, small_faces=False, equalize="global")).equalize == "global"
    model = model_with(src, tmp_path / "local" / src.name, equalize="local")
    with pytest.raises(ModelError, match="unknown equaliser 'local'"):
        Pipeline(RecognizerOptions(model=model, small_faces=False))
    r = subprocess.run([*CLI, "predict", str(REPO / "samples" / "astronaut.jpg"), "--equalize", "fog"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == ["error: unknown equaliser 'fog'; expected one of global, clahe"]


def test_training_copies_are_degraded_raw_photos_seeded_by_name():
    """convert/capture.py: copies of training photos degraded before the pipeline, reproducible, with the
    original's label and subject; a share picks the same photos every time."""
    from convert.capture import degraded
    from convert.readers import Sample

    photos = sorted(need(KDEF).glob("happiness/A*S.jpg"))[:6]
    samples = [Sample(str(p), 0, subject=p.stem[1:4]) for p in photos]
    a, b = degraded(samples, 2), degraded(samples, 2)
    assert [s.name for s in a] == [f"{p}#capture{k}" for p in photos for k in (0, 1)]
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b))
    assert all(x.label == 0 and x.subject == str(p.stem[1:4]) for x, p in zip(a, np.repeat(photos, 2)))
    clean = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in photos]
    assert all(not np.array_equal(x.image, clean[i // 2][:x.image.shape[0], :x.image.shape[1]]) for i, x in enumerate(a))
    assert not np.array_equal(a[0].image, a[1].image)  # two copies, two captures
    many = [Sample(f"face{i}.jpg", 0, image=clean[0]) for i in range(400)]
    picked = degraded(many, 1, share=0.25)
    assert 60 <= len(picked) <= 140 and [s.name for s in picked] == [s.name for s in degraded(many, 1, share=0.25)]


def test_landmark_smoothing_in_video_steadies_the_crops(tmp_path):
    """watch --smooth-landmarks: a still face in a dim, noisy video (fresh noise every frame) has its 68
    points averaged over time before its crops are cut, so they jitter less than the raw fits."""
    from dfer_edge.tracking import FaceTracker

    gray = cv2.imread(str(need(KDEF / "happiness" / "AF01HAS.jpg")), cv2.IMREAD_GRAYSCALE)
    frames = [degrade.CONDITIONS["dim+noise6"](gray, i) for i in range(12)]
    rec = Recognizer(threads=1, small_faces=False)
    jitter = {}
    for tau in (0.0, 0.3):
        tracker = FaceTracker(rec, detect_every=5, smooth_landmarks=tau)
        cut = []
        for i, f in enumerate(frames):
            tracker.process(f, i / 10)
            cut.append(tracker.tracks[0].cut_points.copy())
        jitter[tau] = float(np.linalg.norm(np.diff(np.array(cut), axis=0), axis=2).mean())
    assert jitter[0.3] < 0.7 * jitter[0.0], jitter
