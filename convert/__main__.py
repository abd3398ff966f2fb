"""`python -m convert extract|train|export|parity ...` — see each command's --help."""

from __future__ import annotations

import argparse
import json
import sys


def _extract(a: argparse.Namespace) -> None:
    from .extract import extract
    from .readers import read_dataset

    samples = read_dataset(a.data, votes=a.votes)
    if a.limit:
        samples = samples[:: max(1, len(samples) // a.limit)][: a.limit]
    counts = extract(samples, a.out, crops=a.crops, landmarks=a.landmarks, size=a.size,
                     upsample=a.upsample, workers=a.workers)
    print(json.dumps(counts))


def _train(a: argparse.Namespace) -> None:
    from .train import train_main

    train_main(a)


def _export(a: argparse.Namespace) -> None:
    from .export import export_main

    export_main(a)


def _parity(a: argparse.Namespace) -> None:
    from .parity import parity_main

    parity_main(a)


def _kdef_split(a: argparse.Namespace) -> None:
    from .splits import kdef_split

    print(json.dumps(kdef_split(a.kdef, a.out)))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m convert", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    e = sub.add_parser("extract", help="run dfer_edge's steps 1-4 over a dataset, cache inputs as .npz")
    e.add_argument("data", help="image-folder tree <label>/<file>, KDEF folder (index.csv), or fer2013.csv")
    e.add_argument("--out", required=True, help="output .npz")
    e.add_argument("--crops", action="store_true", help="images are ready face crops (e.g. FER2013 48x48)")
    e.add_argument("--votes", help="FER+ vote file (ferplus_votes.csv) to attach soft labels")
    e.add_argument("--landmarks", help="dlib 68-point model path")
    e.add_argument("--size", type=int, default=96, help="crop size (default 96)")
    e.add_argument("--upsample", type=int, default=0, help="HOG upsampling for full photos")
    e.add_argument("--workers", type=int, default=2)
    e.add_argument("--limit", type=int, default=0, help="evenly spaced subset of this many images")
    e.set_defaults(func=_extract)

    t = sub.add_parser("train", help="train the four-branch Keras model on extracted .npz caches")
    from .train import add_train_args

    add_train_args(t)
    t.set_defaults(func=_train)

    x = sub.add_parser("export", help="Keras model (.keras or legacy .h5) -> float32/float16/dynamic/int8/int8-full "
                                           "TFLite + metadata")
    from .export import add_export_args

    add_export_args(x)
    x.set_defaults(func=_export)

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
    a.func(a)


if __name__ == "__main__":
    sys.exit(main())
