"""The two FER+ rules on hand-made vote rows, and the official rule's coverage of the real vote file."""

from __future__ import annotations

import numpy as np
import pytest

from dfer_edge.ferplus import argmax7, labels_by_rule, official_majority
from dfer_edge.labels import LABELS

H, N, S, A, D, SU, F = range(7)  # LABELS order: happiness, neutral, sadness, anger, disgust, surprise, fear


def row(**votes: float) -> tuple[list[float], list[float]]:
    seven = [votes.get(k, 0.0) for k in LABELS]
    other = [votes.get(k, 0.0) for k in ("contempt", "unknown", "NF")]
    return seven, other


@pytest.mark.parametrize("votes, official, arg", [
    ({"happiness": 10}, H, H),
    ({"neutral": 6, "sadness": 4}, N, N),                     # 6 of 10 > half
    ({"neutral": 5, "sadness": 5}, -1, N),                    # no majority; argmax ties to the first in LABELS
    ({"neutral": 5, "sadness": 3, "anger": 1, "fear": 1}, N, N),  # the single votes go: 5 of 8
    ({"neutral": 4, "sadness": 3, "anger": 3}, -1, N),         # 4 of 10 is not a majority
    ({"contempt": 6, "anger": 4}, -1, A),                     # the winner is a class we do not have
    ({"unknown": 3, "fear": 2, "anger": 2, "NF": 3}, -1, A),  # no majority at all; anger comes before fear
    ({"NF": 10}, -1, -1),                                      # not a face: no expression vote either
    ({"sadness": 1, "fear": 1, "anger": 1}, -1, S),            # only single votes: nothing left
    ({"surprise": 2, "unknown": 1}, SU, SU),                   # 2 of 2 once the single vote is dropped
])
def test_rules_on_hand_made_votes(votes, official, arg):
    seven, other = row(**votes)
    assert official_majority(np.array([seven]), np.array([other]))[0] == official
    assert argmax7(np.array([seven]))[0] == arg


def test_missing_votes_give_no_label():
    nan = np.full((1, 7), np.nan)
    assert official_majority(nan, np.full((1, 3), np.nan))[0] == -1 and argmax7(nan)[0] == -1


def test_official_rule_keeps_most_of_the_real_faces():
    from tests.helpers import FERPLUS_VOTES

    if not FERPLUS_VOTES.is_file():
        pytest.skip(f"shared data not present: {FERPLUS_VOTES}")
    rules = labels_by_rule(FERPLUS_VOTES)
    official, arg = rules["official"], rules["argmax7"]
    # Every face with an official label has expression votes; the rule drops ambiguous ones (about 1 in 8).
    assert set(official) <= set(arg)
    assert 0.80 < len(official) / len(arg) < 0.95
    # Where the official rule gives a label, it is the 7-vote argmax whenever that winner is unique.
    agree = np.mean([official[f] == arg[f] for f in official])
    assert agree > 0.99
