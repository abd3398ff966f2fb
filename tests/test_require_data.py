"""tests/require_data.py: in CI (DFER_REQUIRE_DATA=1) a test that would skip for missing shared data fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

PROBE = '''
import pytest

def test_needs_data():
    pytest.skip("shared test data not available: /nowhere/kdef")

def test_needs_a_browser():
    pytest.skip("Debian chromium is not installed")
'''


def run_probe(tmp_path: Path, required: str | None) -> subprocess.CompletedProcess:
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if k != "DFER_REQUIRE_DATA"}
    if required is not None:
        env["DFER_REQUIRE_DATA"] = required
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "tests.require_data", "-p",
                           "no:cacheprovider", str(tmp_path / "test_probe.py")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_missing_data_skips_locally(tmp_path):
    r = run_probe(tmp_path, None)
    assert r.returncode == 0, r.stdout
    assert "2 skipped" in r.stdout


def test_missing_data_fails_in_ci_and_other_skips_stay_skips(tmp_path):
    r = run_probe(tmp_path, "1")
    assert r.returncode == 1, r.stdout
    assert "1 failed, 1 skipped" in r.stdout
    assert "DFER_REQUIRE_DATA=1, and this test would have skipped: shared test data not available" in r.stdout
    assert "FAILED test_probe.py::test_needs_data" in r.stdout


def test_ci_entry_point_requires_the_data():
    assert "DFER_REQUIRE_DATA=1 make test" in (REPO / ".ci" / "run").read_text()
