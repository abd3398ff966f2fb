"""The `fer` side of benchmarks/compare_fer.py; runs inside the fer venv (benchmarks/.venv-fer).

One process per image, the way `dfer-edge bench IMAGE` is one process per image:

1. imports cv2, numpy, tensorflow and `fer.fer.FER` (not the top-level `fer` package's video
   helpers, which need moviepy and pandas), with TensorFlow and OpenCV set to --threads threads
   before the model is built;
2. builds FER() with the Haar cascade (mtcnn=False) and fer's default classifier;
3. reads the image file and runs detect_emotions once: the first result (cold start is measured
   from the orchestrator's launch timestamp, --launched, to this point);
4. --warmup untimed passes, then --iterations timed passes: decode the encoded bytes (already in
   memory) + detect_emotions, each timed with time.perf_counter (dfer-edge bench's end-to-end is
   Recognizer.predict on the encoded bytes, which also decodes);
5. prints one line `FER-WORKER {json}` on stdout.

With --prime it stops after step 2 (warms the page cache so that the first image's cold start is not
a cold-disk start).
"""

from __future__ import annotations

import time

_T_START = time.time()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402


def _rss_mib() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def _percentiles(samples_s, np) -> dict:
    a = np.asarray(samples_s, dtype=np.float64)
    out = {f"p{q}_ms": float(v) for q, v in zip((50, 90, 99), np.percentile(a, (50, 90, 99)) * 1000.0)}
    out["mean_ms"] = float(a.mean() * 1000.0)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", help="image file")
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--launched", type=float, default=None,
                    help="time.time() just before the orchestrator started this process")
    ap.add_argument("--model", choices=("default", "tflite", "keras"), default="default",
                    help="fer's classifier: its default, the quantized TFLite or the Keras .hdf5 model")
    ap.add_argument("--prime", action="store_true", help="import and build FER(), then exit")
    args = ap.parse_args(argv)
    if not args.prime and not args.image:
        ap.error("--image is required")

    n = str(args.threads)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OPENCV_FOR_THREADS_NUM",
                "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ[var] = n
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import cv2
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    cv2.setNumThreads(args.threads)
    from fer.fer import FER
    import inspect
    try:
        from importlib.metadata import version as _dist_version
        fer_version = _dist_version("fer")
    except Exception:  # pragma: no cover - metadata missing
        fer_version = "unknown"
    t_import = time.time()

    kwargs = {"mtcnn": False}
    has_tflite_switch = "use_tflite" in inspect.signature(FER.__init__).parameters
    if args.model != "default":
        if not has_tflite_switch:
            if args.model == "tflite":
                raise SystemExit(f"fer {fer_version} has no TFLite classifier (FER(use_tflite=...))")
        else:
            kwargs["use_tflite"] = args.model == "tflite"
    detector = FER(**kwargs)
    if has_tflite_switch:
        model_kind = "tflite" if kwargs.get("use_tflite", inspect.signature(FER.__init__).parameters["use_tflite"].default) else "keras"
    else:
        model_kind = "keras"
    t_loaded = time.time()
    if args.prime:
        print("FER-WORKER " + json.dumps({"primed": True, "fer": fer_version}))
        return 0

    with open(args.image, "rb") as f:
        data = f.read()
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit(f"cannot decode {args.image}")
    first = detector.detect_emotions(img)
    t_first = time.time()
    rss_first = _rss_mib()

    def once() -> int:
        im = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        return len(detector.detect_emotions(im))

    for _ in range(args.warmup):
        once()
    samples, faces = [], []
    clock = time.perf_counter
    for _ in range(args.iterations):
        t0 = clock()
        k = once()
        samples.append(clock() - t0)
        faces.append(k)
    e2e = _percentiles(samples, np)
    total = sum(samples)
    e2e["images_per_s"] = len(samples) / total if total > 0 else 0.0
    # fer's stages: decode, and its face detection alone (FER.find_faces, the Haar cascade on the gray image,
    # as detect_emotions calls it); the rest of an end-to-end pass (crops, the classifier) is the difference.
    decode, detect = [], []
    for _ in range(args.iterations):
        t0 = clock()
        im = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        t1 = clock()
        detector.find_faces(im, bgr=True)
        detect.append(clock() - t1)
        decode.append(t1 - t0)
    stages = {"decode": _percentiles(decode, np)["p50_ms"], "detect": _percentiles(detect, np)["p50_ms"]}
    stages["crops_and_classifier"] = max(0.0, e2e["p50_ms"] - stages["decode"] - stages["detect"])

    out = {
        "image": args.image,
        "image_size": [int(img.shape[1]), int(img.shape[0])],
        "iterations": args.iterations,
        "warmup": args.warmup,
        "threads": args.threads,
        "end_to_end": e2e,
        "stages_p50_ms": stages,
        "faces": len(first),
        "faces_timed": sorted(set(faces)),
        "boxes": [[int(v) for v in face["box"]] for face in first],
        "top_emotions": [max(face["emotions"], key=face["emotions"].get) for face in first],
        "cold_start": {
            "interpreter_start_s": (_T_START - args.launched) if args.launched else None,
            "import_s": t_import - _T_START,
            "load_s": t_loaded - t_import,
            "first_predict_s": t_first - t_loaded,
            "total_s": (t_first - args.launched) if args.launched else None,
            "peak_rss_mib": rss_first,
        },
        "peak_rss_mib": _rss_mib(),
        "versions": {"fer": fer_version, "tensorflow": tf.__version__, "opencv": cv2.__version__,
                     "numpy": np.__version__, "python": platform.python_version()},
        "classifier": model_kind,
        "cpu_affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    }
    print("FER-WORKER " + json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
