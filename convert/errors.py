"""The one error convert/'s library code raises: a DferError, so its message is one line fit for a user.

Library functions raise it and stay reusable from Python; only `python -m convert` (convert/__main__.py)
turns it into `error: ...` on stderr and exit status 1.
"""

from __future__ import annotations

from dfer_edge.errors import DferError


class ConvertError(DferError):
    """Bad data, arguments or models on the training and conversion side."""

    def __init__(self, msg: str) -> None:
        super().__init__(" ".join(str(msg).split()))  # one line, however the message was wrapped
