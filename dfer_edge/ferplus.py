"""The two ways of turning FER+ votes (ten raters per face) into one label per face.

**Official majority** ("majority" in microsoft/FERPlus `src/ferplus.py`, the rule the literature's FER+ accuracies
use): counts of 1 are dropped in all ten columns (one rater alone is treated as an outlier); the winner over the
ten columns must then hold more than half of the remaining votes, or the face has no label; faces whose winner
is contempt, unknown or not-a-face are left out (this model has none of those classes). About 87% of faces keep a
label.

**Argmax of 7**: the most-voted of our seven expressions on every face with any expression vote (ties to the
first in LABELS order). Used by this project before; it keeps the ambiguous faces the official rule leaves out,
so it gives lower numbers that cannot be compared with published ones.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .errors import DferError
from .labels import LABELS

# The vote file's ten columns, in its own order; OTHER are the three classes this model does not have.
COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF")
OTHER = ("contempt", "unknown", "NF")
RULES = {
    "official": "FER+ majority, official rule (microsoft/FERPlus): single votes dropped, the winner over all 10 "
                "columns holds > 50% of the rest; contempt/unknown/not-a-face winners left out",
    "argmax7": "FER+ argmax of the 7 expression votes, every face with any expression vote",
}


def official_majority(votes: np.ndarray, other: np.ndarray) -> np.ndarray:
    """(N, 7) votes in LABELS order and (N, 3) votes for OTHER -> (N,) LABELS index, or -1 where the official
    rule gives no label or a label outside our seven. NaN (no votes) is -1."""
    v = np.concatenate([np.asarray(votes, np.float64), np.asarray(other, np.float64)], axis=1)
    v = np.where(np.isnan(v), 0.0, v)
    v = np.where(v <= 1.0, 0.0, v)  # a single vote is an outlier
    total, top = v.sum(1), v.max(1)
    win = v.argmax(1)  # a winner holding more than half cannot be tied
    ok = (total > 0) & (top > 0.5 * total) & (win < len(LABELS))
    return np.where(ok, win, -1)


def argmax7(votes: np.ndarray) -> np.ndarray:
    """(N, 7) votes in LABELS order -> (N,) the most-voted of our seven, or -1 without expression votes."""
    v = np.nan_to_num(np.asarray(votes, np.float64), nan=0.0)
    return np.where(v.sum(1) > 0, v.argmax(1), -1)


def read_votes(path: str | Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """A FER+ vote file -> (file names, (N, 7) votes in LABELS order, (N, 3) votes for OTHER)."""
    names, seven, other = [], [], []
    try:
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                names.append(row["file"])
                seven.append([float(row[lab]) for lab in LABELS])
                other.append([float(row.get(k) or 0) for k in OTHER])
    except (OSError, KeyError, ValueError, UnicodeDecodeError) as e:
        raise DferError(f"{path}: not a readable FER+ vote file ({e})") from None
    if not names:
        raise DferError(f"{path}: no rows (expected a FER+ vote file: file,{','.join(COLUMNS)})")
    return names, np.array(seven).reshape(-1, len(LABELS)), np.array(other).reshape(-1, len(OTHER))


def labels_by_rule(path: str | Path) -> dict[str, dict[str, int]]:
    """{rule: {file name: LABELS index}} for both rules; faces a rule gives no label are absent."""
    names, seven, other = read_votes(path)
    out = {}
    for rule, lab in (("official", official_majority(seven, other)), ("argmax7", argmax7(seven))):
        out[rule] = {n: int(x) for n, x in zip(names, lab) if x >= 0}
    return out
