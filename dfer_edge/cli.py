"""`dfer-edge VERB ...`: predict, evaluate, bench, info. Every failure is one line on stderr and a non-zero exit."""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer

from .errors import DferError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Facial expressions (7 basic) on small computers, offline.")

# Exit codes: 0 all inputs read; 1 some input could not be read; 2 bad usage, model or set-up.
EXIT_BAD_INPUT = 1
EXIT_SETUP = 2

ModelOpt = typer.Option(None, "--model", help="expression model .tflite (default: the shipped int8 model)")
LandmarksOpt = typer.Option(None, "--landmarks", help="dlib 68-point landmark model file")
UpsampleOpt = typer.Option(0, "--upsample", min=0, max=3, help="HOG upsampling; 1 finds faces under ~80 px (slower)")
ThreadsOpt = typer.Option(None, "--threads", min=1, help="interpreter threads")
WidthOpt = typer.Option(512, "--width", min=64, help="working-image width in px")
DetectWidthOpt = typer.Option(None, "--detect-width", min=64,
                              help="run HOG on a copy this wide (faster), landmarks stay on the --width image")
FlipOpt = typer.Option(True, "--flip-average/--no-flip-average",
                       help="also score the mirrored face and average the two (2 inferences per face)")
MinScoreOpt = typer.Option(0.1, "--min-score", help="HOG detection threshold (dlib's own default is 0; 0.1 drops badge-like false faces)")


def fail(msg: str, code: int = EXIT_SETUP) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code)


def make_recognizer(model: Optional[Path], landmarks: Optional[Path], upsample: int, threads: Optional[int],
                    width: int = 512, min_score: float = 0.1, flip_average: bool = True,
                    detect_width: Optional[int] = None):
    from .recognizer import Recognizer, RecognizerOptions

    try:
        return Recognizer(RecognizerOptions(model=model, landmarks=landmarks, upsample=upsample,
                                            num_threads=threads, width=width,
                                            min_score=min_score, flip_average=flip_average,
                                            detect_width=detect_width))
    except DferError as e:
        fail(str(e))


def _result(path: str, faces: list | None, error: str | None) -> dict[str, Any]:
    return {"path": path, "error": error, "faces": [f.to_dict() for f in faces] if faces is not None else []}


def _table_rows(r: dict[str, Any]) -> list[str]:
    if r["error"]:
        return []
    if not r["faces"]:
        return [f"{r['path']}\t-\t(no face)"]
    return [f"{r['path']}\t{i}\t{f['label']:<9}\t{f['score']:.2f}\t{','.join(map(str, f['box']))}"
            for i, f in enumerate(r["faces"])]


def _annotated_name(out_dir: Path, src: Path, used: set[str]) -> Path:
    name = f"{src.stem}.jpg"
    k = 1
    while name in used:
        name = f"{src.stem}-{k}.jpg"
        k += 1
    used.add(name)
    return out_dir / name


@app.command()
def predict(
    paths: list[str] = typer.Argument(..., help="image files, folders or glob patterns"),
    json_out: bool = typer.Option(False, "--json", help="one JSON list, one object per input"),
    jsonl: bool = typer.Option(False, "--jsonl", help="one JSON object per input per line"),
    annotate: Optional[Path] = typer.Option(None, "--annotate", help="save annotated copies into this folder"),
    largest: bool = typer.Option(False, "--largest", help="keep only the largest face per image"),
    model: Optional[Path] = ModelOpt,
    landmarks: Optional[Path] = LandmarksOpt,
    upsample: int = UpsampleOpt,
    threads: Optional[int] = ThreadsOpt,
    width: int = WidthOpt,
    min_score: float = MinScoreOpt,
    flip_average: bool = FlipOpt,
    detect_width: Optional[int] = DetectWidthOpt,
) -> None:
    """Expression of every face in each image. Exit 0 if every input was read, 1 otherwise."""
    import cv2

    from .annotate import draw
    from .image import load_color
    from .inputs import expand

    if json_out and jsonl:
        fail("choose one of --json and --jsonl")
    files = expand(paths)
    if not files:
        fail("no images found in the given paths")
    rec = make_recognizer(model, landmarks, upsample, threads, width, min_score, flip_average, detect_width)
    if annotate:
        try:
            annotate.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            fail(f"cannot create {annotate}: {e.strerror or e}")
    results, bad, used = [], 0, set()
    if not (json_out or jsonl):
        typer.echo("path\tface\tlabel    \tscore\tbox")
    for f in files:
        try:
            # The path itself goes in: errors then name the file, and large JPEGs are decoded reduced.
            faces = rec.predict(f) if not largest else [x for x in [rec.predict_largest(f)] if x]
            r = _result(str(f), faces, None)
            if annotate:
                target = _annotated_name(annotate, f, used)
                if not cv2.imwrite(str(target), draw(load_color(f), faces)):
                    raise DferError(f"{target}: cannot write annotated image")
        except DferError as e:
            bad += 1
            msg = str(e) if str(f) in str(e) else f"{f}: {e}"
            typer.echo(f"error: {msg}", err=True)
            r = _result(str(f), None, msg)
        if jsonl:
            typer.echo(json.dumps(r))
        elif json_out:
            results.append(r)
        else:
            for row in _table_rows(r):
                typer.echo(row)
    if json_out:
        typer.echo(json.dumps(results, indent=1))
    raise typer.Exit(EXIT_BAD_INPUT if bad else 0)


@app.command()
def evaluate(
    data_dir: Path = typer.Argument(..., help="image-folder tree <label>/<file>"),
    crops: bool = typer.Option(False, "--crops", help="every image is already a face crop (the whole image is the face)"),
    json_path: Optional[Path] = typer.Option(None, "--json", help="write the metrics as JSON to this file"),
    votes: Optional[Path] = typer.Option(None, "--votes", help="FER+ vote file: also score against the FER+ majority label"),
    model: Optional[Path] = ModelOpt,
    landmarks: Optional[Path] = LandmarksOpt,
    upsample: int = UpsampleOpt,
    threads: Optional[int] = ThreadsOpt,
    width: int = WidthOpt,
    min_score: float = MinScoreOpt,
    flip_average: bool = FlipOpt,
    detect_width: Optional[int] = DetectWidthOpt,
) -> None:
    """Accuracy, macro-F1, per-class recall and confusion of the model on labelled images.

    Without --crops, faces are detected and the largest is scored; no face counts as wrong."""
    from . import evaluate as ev

    try:
        ds = ev.scan(data_dir)
        majority = ev.ferplus_majority(votes) if votes else None
    except DferError as e:
        fail(str(e))
    for w in ds.skipped:
        typer.echo(f"warning: {w}", err=True)
    rec = make_recognizer(model, landmarks, upsample, threads, width, min_score, flip_average, detect_width)
    errors: list[str] = []
    with typer.progressbar(ds.items, label="evaluating", file=sys.stderr) as items:
        true, pred, paths = ev.run(rec, items, crops, errors.append)
    for e in errors:
        typer.echo(f"error: {e}", err=True)
    if len(true) == 0:
        fail("no image could be read")
    m = ev.metrics(true, pred)
    m["mode"] = "crops" if crops else "detect"
    m["model"] = str(rec.model.path)
    m["unreadable"] = len(errors)
    if majority is not None:
        idx = [i for i, p in enumerate(paths) if p.name in majority]
        fp_true = np.array([majority[paths[i].name] for i in idx], dtype=int)
        m["ferplus"] = {"n": len(idx), "accuracy": round(float((pred[idx] == fp_true).mean()), 4) if idx else 0.0}
    typer.echo(ev.report(m))
    if json_path:
        try:
            json_path.write_text(json.dumps(m, indent=1) + "\n")
        except OSError as e:
            fail(f"cannot write {json_path}: {e.strerror or e}")
    raise typer.Exit(EXIT_BAD_INPUT if errors else 0)


@app.command()
def info(
    model: Optional[Path] = ModelOpt,
    landmarks: Optional[Path] = LandmarksOpt,
) -> None:
    """Versions, interpreter, model metadata and the landmark model in use."""
    import cv2
    import dlib
    import numpy

    from . import __version__
    from .landmarks import find_landmark_model
    from .model import ExpressionModel

    rows = [("dfer-edge", __version__), ("python", platform.python_version()),
            ("platform", f"{platform.system()} {platform.machine()}"), ("numpy", numpy.__version__),
            ("opencv", cv2.__version__), ("dlib", dlib.__version__)]
    problems = []
    try:
        m = ExpressionModel(model)
        rows += [("interpreter", f"{m.interpreter_name} {m.interpreter_version}"),
                 ("model", str(m.path)), ("model size", f"{m.path.stat().st_size / 1024:.0f} KiB"),
                 ("model variant", str(m.info.metadata.get("variant", "?"))),
                 ("model inputs", ", ".join(f"{k}:{v}" for k, v in m.info.input_dtypes.items())),
                 ("crop size", str(m.info.crop_size)), ("features", m.info.feature_mode),
                 ("labels", ", ".join(m.info.labels))]
        if m.info.metadata.get("note"):
            rows.append(("model note", m.info.metadata["note"]))
    except DferError as e:
        problems.append(str(e))
    try:
        rows.append(("landmarks", str(find_landmark_model(landmarks))))
    except DferError as e:
        problems.append(str(e))
    for k, v in rows:
        typer.echo(f"{k:<14} {v}")
    for p in problems:
        typer.echo(f"error: {p}", err=True)
    raise typer.Exit(EXIT_SETUP if problems else 0)


@app.command()
def bench(
    paths: Optional[list[str]] = typer.Argument(None, help="images (default: the repository's samples/astronaut.jpg)"),
    iterations: int = typer.Option(30, "--iterations", "-n", min=1, help="timed passes over the images"),
    warmup: int = typer.Option(3, "--warmup", min=0, help="untimed passes first"),
    model: Optional[list[str]] = typer.Option(
        None, "--model", help="model .tflite paths or variant names (int8, float16, float32, dynamic: "
        "models/dfer-NAME.tflite); repeat or comma-separate (default: the shipped model)"),
    interpreter: str = typer.Option("auto", "--interpreter", help="comma list of auto, litert, tflite-runtime"),
    threads: Optional[str] = typer.Option(None, "--threads", help="comma list, e.g. 1,2,4 (default: the interpreter's choice)"),
    width: str = typer.Option("512", "--width", help="comma list of working-image widths, e.g. 320,512"),
    upsample: str = typer.Option("0", "--upsample", help="comma list of HOG upsampling levels, e.g. 0,1"),
    min_score: float = MinScoreOpt,
    detect_width: Optional[int] = DetectWidthOpt,
    flip_average: bool = FlipOpt,
    landmarks: Optional[Path] = LandmarksOpt,
    json_path: Optional[Path] = typer.Option(None, "--json", help="also write the results as JSON to this file"),
    cold_start: bool = typer.Option(True, "--cold-start/--no-cold-start",
                                    help="measure process start to first result in a fresh process"),
) -> None:
    """Time every pipeline stage, end to end, cold start and memory; one run per option combination.

    Comma lists (--threads, --width, --upsample, --model, --interpreter) form a matrix."""
    from . import bench as b
    from .inputs import expand
    from .landmarks import find_landmark_model

    if json_path is not None and not json_path.parent.is_dir():
        fail(f"cannot write {json_path}: folder {json_path.parent} does not exist")
    try:
        files = expand(paths) if paths else b.default_images()
        models, warn_m = b.resolve_models(model)
        interps, warn_i = b.resolve_interpreters(interpreter)
        configs = b.matrix(models, interps, b.parse_int_list(threads, "--threads", 1) if threads else [None],
                           b.parse_int_list(width, "--width", 64), b.parse_int_list(upsample, "--upsample", 0, 3),
                           min_score, landmarks, detect_width, flip_average)
        for w in warn_m + warn_i:
            typer.echo(f"warning: {w}", err=True)
        images = b.read_images(files)
        find_landmark_model(landmarks)  # fail before the progress bar starts
        runs = []
        with typer.progressbar(length=len(configs) * (warmup + iterations), label="benchmarking",
                               file=sys.stderr) as bar:
            for c in configs:
                runs.append(b.run_one(c, images, iterations, warmup, cold_start, files, bar.update))
        report = {"runs": runs, "machine": b.machine_info()}
    except DferError as e:
        fail(str(e))
    typer.echo(b.format_table(report))
    if json_path:
        try:
            json_path.write_text(json.dumps(report, indent=1) + "\n")
        except OSError as e:
            fail(f"cannot write {json_path}: {e.strerror or e}")


def main() -> None:
    try:
        app()
    except DferError as e:  # anything not caught closer to its input
        typer.echo(f"error: {e}", err=True)
        sys.exit(EXIT_SETUP)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
