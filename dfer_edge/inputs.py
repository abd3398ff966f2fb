"""Expanding what users type (files, folders, globs) into a list of image paths."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Iterator

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm"})


def walk_images(folder: Path) -> Iterator[Path]:
    """Image files under `folder`, sorted. Symlinked folders are not followed, so a link loop cannot hang us."""
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs.sort()
        for f in sorted(files):
            if Path(f).suffix.lower() in IMAGE_EXTS:
                yield Path(root) / f


def expand(args: list[str]) -> list[Path]:
    """Files as given (even without an image extension: the decoder decides), folders walked,
    unexpanded glob patterns expanded. A name matching nothing is kept, so it is reported as missing."""
    out: list[Path] = []
    for a in args:
        p = Path(a)
        if p.is_dir():
            out.extend(walk_images(p))
        elif not p.exists() and glob.has_magic(a):
            matches = sorted(glob.glob(a, recursive=True))
            out.extend(Path(m) for m in matches) if matches else out.append(p)
        else:
            out.append(p)
    return out
