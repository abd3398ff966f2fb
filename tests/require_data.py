"""A pytest plugin: with DFER_REQUIRE_DATA=1 (set by .ci/run), a test skipped because the shared data is missing
fails instead. Locally a missing ../shared/data skips with a reason; in CI it must not pass green.

Every data skip in these tests says "shared data" or "shared test data" in its reason; that phrase is
what is matched.
"""

from __future__ import annotations

import os
import re

import pytest

ENV = "DFER_REQUIRE_DATA"
DATA_SKIP = re.compile(r"shared (test )?data")


def required() -> bool:
    return os.environ.get(ENV, "") not in ("", "0")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not (required() and report.skipped and call.excinfo is not None):
        return
    reason = str(getattr(call.excinfo.value, "msg", call.excinfo.value))
    if DATA_SKIP.search(reason):
        report.outcome = "failed"
        report.longrepr = f"{ENV}=1, and this test would have skipped: {reason}"


def pytest_report_header(config):
    return f"{ENV}: " + ("missing shared data fails" if required() else "missing shared data skips")
