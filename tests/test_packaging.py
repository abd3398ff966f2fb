"""The wheel is what reaches a Raspberry Pi: installed on its own (not editable) it carries the default
model, every shipped variant, the kiosk page and the face detector, and the package runs from that
installed copy alone, with nothing from the source tree. The sdist carries the models too, and both
take their version from dfer_edge.__version__.

How, kept fast and offline: `python -m build` makes the sdist and then the wheel from the sdist, as
`make dist` does (with the running environment's setuptools, no build isolation, so no download), from a
copy of the source tree. The wheel goes into a FRESH venv with `pip install --no-deps --no-index`; the
venv reaches its dependencies (numpy, OpenCV, dlib, litert, typer, and the landmark model of
face_recognition_models) through a .pth file naming the test environment's site-packages. Installing the
dependencies for real would need the network (or a wheelhouse) and minutes; --system-site-packages would
give the base interpreter's packages, not the project .venv's. A path line in a .pth only appends that
folder to sys.path, after the venv's own site-packages, and the .pth files inside it are not run (so the
editable install's finder, which points at the checkout, is not loaded): dfer_edge can only come from
the wheel, which the tests assert, running from a working directory outside the checkout. The landmark
model comes from that environment (face_recognition_models) or /usr/share/dlib (libdlib-data), as on a Pi.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import site
import subprocess
import sys
import tarfile
import venv
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

import dfer_edge
from dfer_edge.errors import LandmarkModelError
from dfer_edge.landmarks import find_landmark_model
from dfer_edge.model import DEFAULT_MODEL_NAME

REPO = Path(__file__).resolve().parents[1]
ASTRONAUT = REPO / "samples" / "astronaut.jpg"
TIMEOUT = 600

# Everything that is not part of the source distribution (and may be large or change under us); used
# when git cannot list the checkout's files.
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "runs", "data-cache", "build", "dist", "*.egg-info",
                                   "__pycache__", ".pytest_cache", ".hypothesis", ".venv-*", "out")

# What the wheel must carry besides the code: every shipped model with its metadata, the model card,
# the kiosk page and the fast-loading copy of dlib's face detector.
MODEL_FILES = sorted(p.name for p in (REPO / "models").iterdir()
                     if p.suffix in (".tflite", ".json") or p.name == "MODEL_CARD.md")
PACKAGE_FILES = ["kiosk.html", "frontal_face_detector.svm"]

CHECK = """
import json, sys
import dfer_edge
from dfer_edge.model import default_model_path
rec = dfer_edge.Recognizer()
faces = rec.predict(sys.argv[1])
print(json.dumps({"package": dfer_edge.__file__, "default_model": str(default_model_path()),
                  "model_used": str(rec.model.path), "faces": len(faces),
                  "probability_sums": [sum(f.probabilities.values()) for f in faces]}))
"""


@dataclass
class Dists:
    wheel: Path
    sdist: Path | None  # None where `build` is not installed (the wheel then comes from pip wheel)


@dataclass
class Install:
    venv: Path
    python: Path
    bin: Path
    site: Path  # the venv's own site-packages, where the wheel went


def run(cmd: list, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=TIMEOUT, **kw)


def copy_source(dst: Path) -> None:
    """The checkout's own files (tracked and new, less what .gitignore drops), so the build's own files
    (build/, *.egg-info) are not written into the working tree and stale ones there cannot leak in."""
    p = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                       capture_output=True, timeout=TIMEOUT) if shutil.which("git") else None
    if p is None or p.returncode != 0:
        shutil.copytree(REPO, dst, ignore=NOT_SOURCE)
        return
    for name in filter(None, p.stdout.decode().split("\0")):
        src = REPO / name
        if src.is_file():  # a tracked file deleted in the working tree is not part of it
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / name)


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> Dists:
    base = tmp_path_factory.mktemp("dist")
    src, out = base / "src", base / "dist"
    copy_source(src)
    have_setuptools = importlib.util.find_spec("setuptools") is not None
    with_build = importlib.util.find_spec("build") is not None
    if with_build:
        # sdist, then the wheel from the unpacked sdist: a file the sdist forgets is missing from the wheel.
        cmd = [sys.executable, "-m", "build", "--outdir", out]
        if have_setuptools:
            cmd += ["--no-isolation", "--skip-dependency-check"]  # the venv's setuptools: no network needed
        p = run([*cmd, src])
    else:
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "--no-input",
               "-w", out]
        if have_setuptools:
            cmd.append("--no-build-isolation")
        p = run([*cmd, src])
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    # setuptools < 69.3 names the sdist dfer-edge-*, later ones dfer_edge-* (PEP 625).
    wheels, sdists = list(out.glob("dfer_edge-*.whl")), list(out.glob("dfer[-_]edge-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == (1 if with_build else 0), list(out.iterdir())
    return Dists(wheel=wheels[0], sdist=sdists[0] if sdists else None)


@pytest.fixture(scope="module")
def installed(dists, tmp_path_factory) -> Install:
    try:
        find_landmark_model()
    except LandmarkModelError as e:
        pytest.skip(f"dlib landmark model not available: {e}")
    root = tmp_path_factory.mktemp("venv") / "venv"
    # pip >= 22.3 installs into another interpreter (--python): the venv needs no pip of its own.
    pip_version = tuple(int(x) for x in importlib.metadata.version("pip").split(".")[:2] if x.isdigit())
    external_pip = pip_version >= (22, 3)
    venv.EnvBuilder(with_pip=not external_pip, symlinks=os.name != "nt").create(root)
    python = root / ("Scripts" if os.name == "nt" else "bin") / "python"
    p = run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
    assert p.returncode == 0, p.stderr
    site_dir = Path(p.stdout.strip())
    assert site_dir.is_dir() and not any(site_dir.glob("dfer_edge*")), "the venv is not fresh"
    # The dependencies: this environment's site-packages, after the venv's own (see the module docstring).
    deps = [d for d in [*site.getsitepackages(), site.getusersitepackages()] if Path(d).is_dir()]
    (site_dir / "_dfer_test_dependencies.pth").write_text("".join(f"{d}\n" for d in deps))
    pip = [sys.executable, "-m", "pip", "--python", python] if external_pip else [python, "-m", "pip"]
    p = run([*pip, "install", "--no-deps", "--no-index", "--disable-pip-version-check", "--no-input", dists.wheel])
    assert p.returncode == 0, p.stdout + p.stderr
    return Install(venv=root, python=python, bin=python.parent, site=site_dir)


def clean_env() -> dict[str, str]:
    env = dict(os.environ)
    for var in ("PYTHONPATH", "PYTHONHOME", "DFER_VERBOSE", "VIRTUAL_ENV"):
        env.pop(var, None)
    return env


@pytest.fixture
def outside(tmp_path) -> Path:
    """A working directory outside the checkout, holding a copy of the sample photo."""
    assert not tmp_path.resolve().is_relative_to(REPO)
    if not ASTRONAUT.is_file():
        pytest.skip(f"sample photo missing: {ASTRONAUT}")
    shutil.copy(ASTRONAUT, tmp_path / ASTRONAUT.name)
    return tmp_path


def test_wheel_and_sdist_take_the_version_from_the_package(dists):
    # dfer_edge here is the checkout's (the editable install): the one place the version is written.
    assert dists.wheel.name.startswith(f"dfer_edge-{dfer_edge.__version__}-py3-none-any")
    with zipfile.ZipFile(dists.wheel) as z:
        meta = z.read(f"dfer_edge-{dfer_edge.__version__}.dist-info/METADATA").decode()
    assert f"\nVersion: {dfer_edge.__version__}\n" in meta
    if dists.sdist is not None:
        assert dists.sdist.name.replace("-", "_", 1) == f"dfer_edge-{dfer_edge.__version__}.tar.gz"


def test_sdist_carries_the_models(dists):
    if dists.sdist is None:
        pytest.skip("`build` is not installed (the [dev] extra): the wheel came from pip wheel, no sdist")
    with tarfile.open(dists.sdist) as t:
        names = set(t.getnames())
    top = dists.sdist.name.removesuffix(".tar.gz")
    missing = [n for n in [*(f"models/{m}" for m in MODEL_FILES), *(f"dfer_edge/{f}" for f in PACKAGE_FILES),
                           "pyproject.toml"] if f"{top}/{n}" not in names]
    assert not missing, f"not in {dists.sdist.name}: {missing}"


def test_installed_package_carries_the_models(installed):
    models = installed.site / "dfer_edge" / "models"
    assert DEFAULT_MODEL_NAME in MODEL_FILES
    missing = [m for m in MODEL_FILES if not (models / m).is_file()]
    assert not missing, f"not in the wheel: {missing}"
    for m in MODEL_FILES:  # the very files of the checkout, not empty placeholders
        assert (models / m).stat().st_size == (REPO / "models" / m).stat().st_size, m
    meta = json.loads((models / DEFAULT_MODEL_NAME).with_suffix(".json").read_text())
    assert len(meta["labels"]) == 7
    assert (installed.site / "dfer_edge" / "kiosk.html").is_file()
    assert (installed.site / "dfer_edge" / "frontal_face_detector.svm").stat().st_size > 100_000


def test_installed_copy_runs_on_its_own(installed, outside):
    p = run([installed.python, "-c", CHECK, outside / ASTRONAUT.name], cwd=outside, env=clean_env())
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout.splitlines()[-1])
    assert Path(r["package"]).is_relative_to(installed.site)  # the wheel's copy, not the editable one
    default = Path(r["default_model"])
    assert default.is_relative_to(installed.site) and default.is_file()
    assert Path(r["model_used"]) == default
    assert r["faces"] >= 1
    assert all(abs(s - 1.0) < 1e-6 for s in r["probability_sums"])


def test_installed_console_script_predicts_outside_the_checkout(installed, outside):
    script = installed.bin / "dfer-edge"
    assert script.is_file()
    p = run([script, "info"], cwd=outside, env=clean_env())
    assert p.returncode == 0, p.stderr
    model_line = [line for line in p.stdout.splitlines() if line.split()[0] == "model" and len(line.split()) == 2]
    assert len(model_line) == 1
    assert Path(model_line[0].split()[1]).is_relative_to(installed.site / "dfer_edge" / "models")
    p = run([script, "predict", "--json", ASTRONAUT.name], cwd=outside, env=clean_env())
    assert p.returncode == 0, p.stderr
    (result,) = json.loads(p.stdout)
    assert result["error"] is None
    assert len(result["faces"]) >= 1
    assert result["faces"][0]["label"] == "happiness"  # the astronaut smiles (0.998 on x86 and arm64)
