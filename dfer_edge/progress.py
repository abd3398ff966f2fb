"""A progress bar on stderr for long runs: `predict` over many files, `evaluate`, `convert extract`.

Files done of all, faces found, files per second and the time left. It lives on stderr only and never
captures stdout, so `--json`, `--jsonl` and `--csv` output stays exactly what it is without it. By
default it shows only when stderr is a terminal (a person is watching); `--progress` asks for it
anyway: on a terminal the same bar, elsewhere (a log file, a CI job) a plain line every
LINE_EVERY_S seconds and one at the end, because a redrawn bar in a log is noise. `--no-progress`
turns it off.

Lines that must appear while the bar is drawn (errors, warnings, table rows bound for the same
terminal) go through `err` and `out`, which print them above the bar instead of through it. rich is
imported only when a bar is drawn (Typer depends on it already).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, TextIO

LINE_EVERY_S = 10.0  # plain progress lines, when asked for on a non-terminal


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # replaced or closed streams (pytest's capture, a closed pipe)
        return False


def _same_terminal() -> bool:
    """stdout is the terminal the bar is drawn on (then its lines must be printed above the bar)."""
    try:
        return (_is_terminal(sys.stdout) and _is_terminal(sys.stderr)
                and os.path.samestat(os.fstat(sys.stdout.fileno()), os.fstat(sys.stderr.fileno())))
    except (OSError, ValueError, AttributeError):
        return False


def wanted(flag: bool | None, total: int, minimum: int = 0) -> bool:
    """--progress/--no-progress win; by default, on a terminal for more than `minimum` items (a bar
    that flashes by for three photos is clutter)."""
    if flag is not None:
        return flag
    return total > minimum and _is_terminal(sys.stderr)


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """`with Progress("predicting", len(files), show) as bar: ... bar.advance(faces=n)`.

    `show=False` makes every method a plain write (`out` to stdout, `err` to stderr), so callers have
    one code path with or without a bar.
    """

    def __init__(self, label: str, total: int, show: bool, unit: str = "files") -> None:
        self.label, self.total, self.unit = label, total, unit
        self.done = self.faces = 0
        self.mode = "off" if not show else ("bar" if _is_terminal(sys.stderr) else "lines")
        self._rich: Any = None
        self._task: Any = None
        self._start = self._last_line = time.monotonic()
        self._stdout_here = False

    def __enter__(self) -> Progress:
        if self.mode == "bar":
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn,
                                       TimeRemainingColumn)

            self._stdout_here = _same_terminal()
            self._rich = RichProgress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn(self.unit),
                TextColumn("{task.fields[faces]} faces"), TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(), TextColumn("left"),
                console=Console(file=sys.stderr), redirect_stdout=False, redirect_stderr=False, transient=False)
            self._rich.start()
            self._task = self._rich.add_task(self.label, total=self.total, faces=0, rate="")
        self._start = self._last_line = time.monotonic()
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if self.mode == "bar" and self._rich is not None:
            self._rich.stop()
            self._rich = None
        elif self.mode == "lines" and exc_type is None:
            self._line()

    def _rate(self) -> float:
        elapsed = time.monotonic() - self._start
        return self.done / elapsed if elapsed > 0 else 0.0

    def _line(self) -> None:
        rate = self._rate()
        left = f", {_clock((self.total - self.done) / rate)} left" if rate > 0 and self.done < self.total else ""
        sys.stderr.write(f"{self.label}: {self.done}/{self.total} {self.unit}, {self.faces} faces, "
                         f"{rate:.1f} {self.unit}/s{left}\n")
        sys.stderr.flush()

    def advance(self, faces: int = 0, items: int = 1) -> None:
        """`items` more done, in which `faces` faces were found."""
        self.done += items
        self.faces += faces
        if self.mode == "bar":
            self._rich.update(self._task, advance=items, faces=self.faces, rate=f"{self._rate():.1f} {self.unit}/s")
        elif self.mode == "lines" and time.monotonic() - self._last_line >= LINE_EVERY_S:
            self._last_line = time.monotonic()
            self._line()

    def out(self, text: str) -> None:
        """A line of the command's output (stdout); above the bar when stdout is the bar's terminal."""
        if self._rich is not None and self._stdout_here:
            self._rich.console.out(text, highlight=False)
        else:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()  # results stream: a consumer (| head, a kiosk reader) sees each at once

    def err(self, text: str) -> None:
        """A line for stderr (an error or warning), printed above the bar."""
        if self._rich is not None:
            self._rich.console.out(text, highlight=False)
        else:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
