"""Landmark and crop quality on an extracted cache: plausibility counts and a contact sheet to look at.

Not committed output: the contact sheet shows dataset pixels, so it goes to a scratch path.
"""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np

from dfer_edge import geometry


def plausibility(landmarks: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean flags per face for landmark sets that cannot be a face seen from the front or half-profile."""
    flags = {k: [] for k in ("roll_gt_30deg", "mouth_not_below_eyes", "nose_outside_eyes", "eye_size_odd")}
    for p in landmarks.astype(np.float64):
        lev = geometry.level(p)
        q = lev.points
        r, l = q[geometry.RIGHT_EYE].mean(0), q[geometry.LEFT_EYE].mean(0)
        roll = np.degrees(np.arctan2(*(p[42:48].mean(0) - p[36:42].mean(0))[::-1]))
        mouth = q[geometry.MOUTH].mean(0)
        drop = (mouth[1] - (r[1] + l[1]) / 2) / lev.iod
        eye_w = np.hypot(*(q[39] - q[36])) / lev.iod
        flags["roll_gt_30deg"].append(abs(roll) > 30)
        flags["mouth_not_below_eyes"].append(not 0.45 < drop < 1.4)
        flags["nose_outside_eyes"].append(not q[36][0] < q[30][0] < q[45][0])
        flags["eye_size_odd"].append(not 0.15 < eye_w < 0.45)
    return {k: np.array(v) for k, v in flags.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cache")
    ap.add_argument("--sheet", help="write a contact sheet PNG of crops here")
    ap.add_argument("--rows", type=int, default=24)
    a = ap.parse_args()
    z = np.load(a.cache)
    f = plausibility(z["landmarks"])
    any_bad = np.any(np.stack(list(f.values())), axis=0)
    det = z["detected"].astype(bool)
    out = {"n": int(len(det)), "hog_detected": float(det.mean()),
           "implausible": float(any_bad.mean()),
           "implausible_when_detected": float(any_bad[det].mean()) if det.any() else None,
           "implausible_when_fallback": float(any_bad[~det].mean()) if (~det).any() else None,
           **{k: float(v.mean()) for k, v in f.items()}}
    print(json.dumps(out, indent=1))
    if a.sheet:
        rng = np.random.default_rng(0)
        idx = rng.choice(len(det), size=min(a.rows * 2, len(det)), replace=False)
        tiles = []
        for i in idx:
            t = np.hstack([z["right_eye"][i], z["left_eye"][i], z["mouth"][i]])
            t = cv2.cvtColor(t, cv2.COLOR_GRAY2BGR)
            color = (0, 0, 255) if any_bad[i] else ((0, 200, 0) if det[i] else (0, 200, 255))
            cv2.rectangle(t, (0, 0), (t.shape[1] - 1, t.shape[0] - 1), color, 2)
            tiles.append(t)
        half = len(tiles) // 2
        cv2.imwrite(a.sheet, np.hstack([np.vstack(tiles[:half]), np.vstack(tiles[half:2 * half])]))


if __name__ == "__main__":
    main()
