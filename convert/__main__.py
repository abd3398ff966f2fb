"""`python -m convert extract|train|export|parity ...` — see each command's --help."""

from __future__ import annotations

import argparse
import json
import sys

from dfer_edge.detect import EQUALIZERS
from dfer_edge.errors import DferError
from dfer_edge.options import DEFAULTS

from .errors import ConvertError


def _extract(a: argparse.Namespace) -> None:
    from .extract import extract
    from .readers import read_dataset

    samples = read_dataset(a.data, votes=a.votes)
    if a.limit:
        samples = samples[:: max(1, len(samples) // a.limit)][: a.limit]
    if a.capture_copies:
        from .capture import degraded

        samples = degraded(samples, a.capture_copies, a.capture_share, a.crops, a.capture_seed)
        print(f"capture degradation: {len(samples)} degraded copies", file=sys.stderr)
    counts = extract(samples, a.out, crops=a.crops, landmarks=a.landmarks, size=a.size,
                     upsample=a.upsample, workers=a.workers, regions=parse_regions(a.crop_regions),
                     min_score=a.min_score, small_faces=a.small_faces, equalize=a.equalize,
                     flip_landmarks=a.flip_landmarks, progress=a.progress)
    print(json.dumps(counts))


def parse_regions(spec: str):
    """"eye_side=0.75,mouth_raise=0.1" -> CropRegions (unnamed settings keep their defaults)."""
    from dfer_edge.geometry import CropRegions

    try:
        pairs = [kv.split("=") for kv in spec.split(",") if kv.strip()]
        return CropRegions.from_dict({k.strip(): float(v) for k, v in pairs})
    except ValueError as e:
        raise ConvertError(f"--crop-regions {spec!r}: {e}") from None


def _train(a: argparse.Namespace) -> None:
    from .train import train_main

    train_main(a)


def _score(a: argparse.Namespace) -> None:
    from .train import score_main

    score_main(a)


def _teach(a: argparse.Namespace) -> None:
    from .distill import teach_main

    teach_main(a)


def _export(a: argparse.Namespace) -> None:
    from .export import export_main

    export_main(a)


def _embed(a: argparse.Namespace) -> None:
    from .export import embed_main

    embed_main(a)


def _parity(a: argparse.Namespace) -> None:
    from .parity import parity_main

    parity_main(a)


def _kdef_split(a: argparse.Namespace) -> None:
    from .splits import kdef_split

    print(json.dumps(kdef_split(a.kdef, a.out)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m convert", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    e = sub.add_parser("extract", help="run dfer_edge's steps 1-4 over a dataset, cache inputs as .npz")
    e.add_argument("data", help="image-folder tree <label>/<file>, KDEF folder (index.csv), or fer2013.csv")
    e.add_argument("--out", required=True, help="output .npz")
    e.add_argument("--crops", action="store_true", help="images are ready face crops (e.g. FER2013 48x48)")
    e.add_argument("--votes", help="FER+ vote file (ferplus_votes.csv) to attach soft labels")
    e.add_argument("--landmarks", help="dlib 68-point model path")
    e.add_argument("--size", type=int, default=96, help="crop size (default 96)")
    e.add_argument("--upsample", type=int, default=DEFAULTS.upsample, help="HOG upsampling for full photos")
    e.add_argument("--min-score", type=float, default=DEFAULTS.min_score,
                   help=f"HOG threshold for full photos (default {DEFAULTS.min_score}, as at run time)")
    e.add_argument("--crop-regions", default="", help="where the crops sit, e.g. eye_side=0.75,eye_inward=0.05,"
                                                      "mouth_side=1.1,mouth_raise=0.1 (dfer_edge.geometry.CropRegions)")
    e.add_argument("--no-small-faces", dest="small_faces", action="store_false", default=None,
                   help="full photos: HOG alone, without the runtime's second look for small faces")
    e.add_argument("--equalize", default="global", choices=EQUALIZERS,
                   help="equaliser of the working image (the model records it and runs with it)")
    e.add_argument("--flip-landmarks", action=argparse.BooleanOptionalAction, default=DEFAULTS.flip_landmarks,
                   help="fit the 68 points on the face and its mirror image and average, as the runtime does "
                        f"(default: {DEFAULTS.flip_landmarks}, the runtime's default)")
    e.add_argument("--capture-copies", type=int, default=0,
                   help="instead of the images, this many copies of each degraded as a cheap camera would "
                        "(dim, noise, blur, JPEG, small; convert/capture.py), before the pipeline")
    e.add_argument("--capture-share", type=float, default=1.0, help="with --capture-copies: this share of the images")
    e.add_argument("--capture-seed", type=int, default=0)
    e.add_argument("--workers", type=int, default=2,
                   help="processes, each with its own pipeline (0: one per core; 1: no pool); default 2")
    e.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    e.add_argument("--limit", type=int, default=0, help="evenly spaced subset of this many images")
    e.set_defaults(func=_extract)

    t = sub.add_parser("train", help="train the four-branch Keras model on extracted .npz caches")
    from .train import add_train_args

    add_train_args(t)
    t.set_defaults(func=_train)

    s = sub.add_parser("score", help="a saved Keras model on validation caches (own labels, FER+, flip-averaged)")
    s.add_argument("model")
    s.add_argument("--val", action="append", required=True, help="validation .npz (KDEF: held-out subjects only)")
    s.add_argument("--json", help="write the report here")
    s.set_defaults(func=_score)

    d = sub.add_parser("teach", help="an ensemble's flip-averaged outputs on training caches, for distillation")
    from .distill import add_teach_args

    add_teach_args(d)
    d.set_defaults(func=_teach)

    x = sub.add_parser("export", help="Keras model (.keras or legacy .h5) -> float32/float16/dynamic/int8/int8-full "
                                           "TFLite + metadata")
    from .export import add_export_args

    add_export_args(x)
    x.set_defaults(func=_export)

    m = sub.add_parser("embed", help="put each .tflite's sidecar contract inside the model (models exported before "
                                     "contracts were embedded); the graph is left as it is")
    m.add_argument("models", nargs="+", help=".tflite files, each with its .json sidecar")
    m.set_defaults(func=_embed)

    q = sub.add_parser("parity", help="Keras vs every exported TFLite variant on the same extracted data")
    from .parity import add_parity_args

    add_parity_args(q)
    q.set_defaults(func=_parity)

    k = sub.add_parser("kdef-split", help="symlink trees <out>/heldout and <out>/train of KDEF by subject "
                                          "(convert/kdef_split.json), for `dfer-edge evaluate`")
    k.add_argument("kdef", help="KDEF folder with index.csv (e.g. ../shared/data/kdef)")
    k.add_argument("--out", required=True)
    k.set_defaults(func=_kdef_split)

    a = p.parse_args(argv)
    try:
        a.func(a)
    except DferError as e:  # library code raises; only here does it become an exit status
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
