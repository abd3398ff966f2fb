"""A regular (non-editable) install carries the default model: the package runs from its installed
copy alone, with nothing from the source tree."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dfer_edge.errors import LandmarkModelError
from dfer_edge.landmarks import find_landmark_model
from dfer_edge.model import DEFAULT_MODEL_NAME

REPO = Path(__file__).resolve().parents[1]
ASTRONAUT = REPO / "samples" / "astronaut.jpg"
TIMEOUT = 600

# Everything that is not part of the source distribution (and may be large or change under us).
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "runs", "data-cache", "build", "dist", "*.egg-info",
                                   "__pycache__", ".pytest_cache")

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


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    try:
        find_landmark_model()
    except LandmarkModelError as e:
        pytest.skip(f"dlib landmark model not available: {e}")
    base = tmp_path_factory.mktemp("packaging")
    # Build from a copy of the source tree, so the build's own files (build/, *.egg-info) are not
    # written into the working tree and stale ones there cannot leak into the wheel.
    src = base / "src"
    shutil.copytree(REPO, src, ignore=NOT_SOURCE)
    target = base / "site"
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check", "--no-input",
           "--target", str(target)]
    if importlib.util.find_spec("setuptools") is not None:
        cmd.append("--no-build-isolation")  # build with the venv's setuptools: no network needed
    p = subprocess.run([*cmd, str(src)], capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 0, p.stdout + p.stderr
    return target


def env_with(target: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(target)
    env.pop("DFER_VERBOSE", None)
    return env


def test_installed_package_carries_the_model(installed):
    model = installed / "dfer_edge" / "models" / DEFAULT_MODEL_NAME
    assert model.is_file()
    assert model.with_suffix(".json").is_file()
    meta = json.loads(model.with_suffix(".json").read_text())
    assert len(meta["labels"]) == 7
    # The kiosk page and the fast-loading copy of dlib's face detector are package data too.
    assert (installed / "dfer_edge" / "kiosk.html").is_file()
    assert (installed / "dfer_edge" / "frontal_face_detector.svm").stat().st_size > 100_000


def test_installed_copy_runs_on_its_own(installed, tmp_path):
    if not ASTRONAUT.is_file():
        pytest.skip(f"sample photo missing: {ASTRONAUT}")
    p = subprocess.run([sys.executable, "-c", CHECK, str(ASTRONAUT)], cwd=tmp_path, env=env_with(installed),
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout.splitlines()[-1])
    assert Path(r["package"]).is_relative_to(installed)  # the installed copy, not the editable one
    default = Path(r["default_model"])
    assert default.is_relative_to(installed) and default.is_file()
    assert Path(r["model_used"]) == default
    assert r["faces"] >= 1
    assert all(abs(s - 1.0) < 1e-6 for s in r["probability_sums"])


def test_installed_console_script(installed, tmp_path):
    script = installed / "bin" / "dfer-edge"
    assert script.is_file()
    p = subprocess.run([str(script), "info"], cwd=tmp_path, env=env_with(installed), capture_output=True,
                       text=True, timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr
    model_line = [line for line in p.stdout.splitlines() if line.split()[0] == "model" and len(line.split()) == 2]
    assert len(model_line) == 1
    assert Path(model_line[0].split()[1]).is_relative_to(installed)
