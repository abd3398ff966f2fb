"""convert/ readers and extraction on what users have: folder trees with common names, the FER2013 CSV,
FER+ vote files."""

from __future__ import annotations

import csv
import shutil

import cv2
import numpy as np
import pytest

from convert.extract import extract
from convert.readers import read_dataset, read_fer2013_csv, read_ferplus_votes
from dfer_edge.labels import LABELS

from .helpers import FER_VAL, SHARED_DATA


def _fer_files(n: int) -> list:
    if not FER_VAL.is_dir():
        pytest.skip(f"{FER_VAL} is not present (shared data missing)")
    return sorted(FER_VAL.glob("*/*.jpg"))[:: 400][:n]


def test_folder_tree_accepts_common_names_and_skips_unknown(tmp_path, capsys):
    files = _fer_files(3)
    for folder, f in zip(("angry", "Happy", "surprised"), files):
        (tmp_path / folder).mkdir()
        shutil.copy(f, tmp_path / folder / f.name)
    (tmp_path / "contempt").mkdir()
    shutil.copy(files[0], tmp_path / "contempt" / "x.jpg")
    (tmp_path / "notes.txt").write_text("not a folder")
    samples = read_dataset(tmp_path)
    assert sorted(LABELS[s.label] for s in samples) == ["anger", "happiness", "surprise"]
    assert "contempt" in capsys.readouterr().err


def test_fer2013_csv_maps_emotion_codes(tmp_path):
    files = _fer_files(3)
    path = tmp_path / "fer2013.csv"
    # FER2013 codes: 0 Angry, 3 Happy, 6 Neutral.
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["emotion", "pixels", "Usage"])
        for code, f in zip((0, 3, 6), files):
            px = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
            w.writerow([code, " ".join(map(str, px.ravel())), "Training"])
        w.writerow([3, "1 2 3", "PublicTest"])  # another split: not read
    samples = list(read_fer2013_csv(path))
    assert [LABELS[s.label] for s in samples] == ["anger", "happiness", "neutral"]
    assert all(s.image.shape == (48, 48) and s.image.dtype == np.uint8 for s in samples)
    out = tmp_path / "cache.npz"
    counts = extract(samples, out, crops=True, workers=1)
    assert counts["ok"] == 3 and counts["error"] == 0
    z = np.load(out)
    assert z["mouth"].shape == (3, 96, 96) and list(z["label"]) == [LABELS.index(x) for x in ("anger", "happiness", "neutral")]


def test_ferplus_votes_in_label_order():
    votes_csv = SHARED_DATA / "fer2013" / "ferplus_votes.csv"
    if not votes_csv.is_file():
        pytest.skip(f"{votes_csv} is not present (shared data missing)")
    votes = read_ferplus_votes(votes_csv)
    with votes_csv.open(newline="") as fh:
        row = next(csv.DictReader(fh))
    v = votes[row["file"]]
    assert v.shape == (len(LABELS),)
    assert [v[LABELS.index(lab)] for lab in LABELS] == [float(row[lab]) for lab in LABELS]


def test_convert_library_raises_and_only_main_exits(tmp_path, capsys):
    """convert/ functions raise ConvertError (a DferError, reusable from Python); `python -m convert`
    alone turns it into one line on stderr and exit status 1."""
    from convert.__main__ import main
    from convert.errors import ConvertError
    from dfer_edge.errors import DferError

    missing = tmp_path / "missing"
    with pytest.raises(ConvertError) as e:
        read_dataset(missing)
    assert isinstance(e.value, DferError) and str(missing) in str(e.value)
    capsys.readouterr()
    assert main(["extract", str(missing), "--out", str(tmp_path / "x.npz")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {missing} is not a directory"]
