"""The seven expressions, in the one order every model and result uses."""

from __future__ import annotations

LABELS: tuple[str, ...] = ("happiness", "neutral", "sadness", "anger", "disgust", "surprise", "fear")

# Folder names people actually use for these classes (FER2013 Kaggle, KDEF, CK+, AffectNet dumps).
_ALIASES: dict[str, str] = {
    "happiness": "happiness", "happy": "happiness", "joy": "happiness",
    "neutral": "neutral", "calm": "neutral",
    "sadness": "sadness", "sad": "sadness",
    "anger": "anger", "angry": "anger",
    "disgust": "disgust", "disgusted": "disgust",
    "surprise": "surprise", "surprised": "surprise",
    "fear": "fear", "fearful": "fear", "afraid": "fear",
}


def canonical_label(name: str) -> str | None:
    """Map a folder or label name to one of LABELS; None for classes we do not model (e.g. contempt)."""
    return _ALIASES.get(name.strip().lower())
