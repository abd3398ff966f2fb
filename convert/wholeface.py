"""The whole levelled face, for teachers: one square around the face, cut from the same working image
and the same 68 landmarks as the student's three crops.

A teacher sees the cheeks, the glabella, the nasolabial folds and the chin that the student's eye and
mouth crops leave out; it only ever runs offline (`convert teach`), so its input never reaches the runtime.
The square matches how FER2013 frames its faces (measured on FER2013 val through the ready-crop path: a side
of 1.95 inter-ocular distances, centred 0.20 below the eyes' midpoint), so FER2013 faces and KDEF photos
come out framed alike.
"""

from __future__ import annotations

import numpy as np

from dfer_edge import geometry

FACE_SIDE = 2.0  # in inter-ocular distances (outer eye corners)
FACE_DROP = 0.2  # the square's centre sits this far below the midpoint of the two eye centres
FACE_SIZE = 64  # pixels of the stored square


def face_crop(image: np.ndarray, landmarks: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    """(size, size) uint8: the levelled whole face, edge-replicated where it leaves the image."""
    lev = geometry.level(landmarks)
    p, d = lev.points, lev.iod
    eyes = (p[geometry.RIGHT_EYE].mean(axis=0) + p[geometry.LEFT_EYE].mean(axis=0)) / 2.0
    m = geometry.crop_matrix(lev.matrix, float(eyes[0]), float(eyes[1] + FACE_DROP * d), FACE_SIDE * d, size)
    return geometry.warp(image, m, size)
