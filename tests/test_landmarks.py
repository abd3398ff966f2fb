"""Finding and loading dlib's 68-point landmark model (dfer_edge.landmarks)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from dfer_edge import landmarks
from dfer_edge.errors import DferError, LandmarkModelError
from dfer_edge.landmarks import ENV_VAR, LANDMARK_FILE, LandmarkModel, find_landmark_model


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    """Tests start without $DFER_LANDMARKS, whatever the caller's shell has."""
    monkeypatch.delenv(ENV_VAR, raising=False)


def _file(path, data: bytes = b"placeholder"):
    path.write_bytes(data)
    return path


def _one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert msg and "\n" not in msg, repr(msg)
    return msg


def test_explicit_path_wins_over_env(tmp_path, monkeypatch):
    explicit = _file(tmp_path / "explicit.dat")
    env = _file(tmp_path / "env.dat")
    monkeypatch.setenv(ENV_VAR, str(env))
    assert find_landmark_model(explicit) == explicit
    assert find_landmark_model(str(explicit)) == explicit


def test_env_used_without_explicit(tmp_path, monkeypatch):
    env = _file(tmp_path / "env.dat")
    monkeypatch.setenv(ENV_VAR, str(env))
    assert find_landmark_model() == env
    assert find_landmark_model(None) == env
    # The env file even beats an installed face_recognition_models / system file.
    assert landmarks.candidate_paths()[1] == (ENV_VAR, env)


def test_candidate_order(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env.dat"))
    sources = [s for s, _ in landmarks.candidate_paths(tmp_path / "x.dat")]
    assert sources == ["--landmarks", ENV_VAR, "face_recognition_models", "libdlib-data"]


def test_explicit_missing_path_is_an_error(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere" / "shape.dat"
    # A valid env file does not rescue a wrong explicit path: the user asked for that file.
    monkeypatch.setenv(ENV_VAR, str(_file(tmp_path / "env.dat")))
    with pytest.raises(LandmarkModelError) as e:
        find_landmark_model(missing)
    msg = _one_line(e)
    assert str(missing) in msg
    assert "face_recognition_models" in msg and "libdlib-data" in msg
    assert isinstance(e.value, DferError)


def test_explicit_directory_is_an_error(tmp_path):
    with pytest.raises(LandmarkModelError) as e:
        find_landmark_model(tmp_path)
    assert str(tmp_path) in _one_line(e)


def test_env_missing_path_is_an_error(tmp_path, monkeypatch):
    missing = tmp_path / "env-missing.dat"
    monkeypatch.setenv(ENV_VAR, str(missing))
    with pytest.raises(LandmarkModelError) as e:
        find_landmark_model()
    msg = _one_line(e)
    assert str(missing) in msg and ENV_VAR in msg
    assert "face_recognition_models" in msg and "libdlib-data" in msg


@pytest.mark.parametrize("data", [
    np.random.default_rng(0).bytes(4096),  # random bytes
    b"",  # empty file
    b"not a shape predictor\n",
])
def test_corrupt_model_file(tmp_path, data):
    bad = _file(tmp_path / "corrupt.dat", data)
    with pytest.raises(LandmarkModelError) as e:
        LandmarkModel(bad)
    msg = _one_line(e)
    assert str(bad) in msg and "corrupt" in msg


def test_nothing_found_anywhere(tmp_path, monkeypatch):
    # No explicit path, no env, no package, no system file: one clear error naming the file.
    monkeypatch.setattr(landmarks, "_package_file", lambda: None)
    monkeypatch.setattr(landmarks, "SYSTEM_PATH", tmp_path / LANDMARK_FILE)
    with pytest.raises(LandmarkModelError) as e:
        find_landmark_model()
    msg = _one_line(e)
    assert LANDMARK_FILE in msg and "face_recognition_models" in msg and "libdlib-data" in msg


def test_system_path_used_when_no_package(tmp_path, monkeypatch):
    system = _file(tmp_path / LANDMARK_FILE)
    monkeypatch.setattr(landmarks, "_package_file", lambda: None)
    monkeypatch.setattr(landmarks, "SYSTEM_PATH", system)
    assert find_landmark_model() == system


def test_default_search_finds_face_recognition_models():
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None:
        pytest.skip("face_recognition_models is not installed in this environment")
    roots = list(spec.submodule_search_locations or [])
    expected = [r for r in roots if (Path(r) / "models" / LANDMARK_FILE).is_file()]
    if not expected:
        pytest.skip("face_recognition_models is installed but has no landmark file")
    found = find_landmark_model()
    assert found.name == LANDMARK_FILE and found.is_file()
    assert found.parent.parent == Path(expected[0])
    assert found.stat().st_size > 50_000_000  # the real ~100 MB model, not a stub
