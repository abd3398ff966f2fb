"""Many inputs over N processes, each with its own models; results in input order.

One implementation for `predict --workers`, `evaluate --workers` and `python -m convert extract
--workers`. Processes, not threads: HOG and the landmark fit are single-threaded C++ that holds the GIL
for the whole call, so threads would not scale. Every process builds its own state (a Recognizer, an
extraction Pipeline) in the pool's initializer, after the fork: the TFLite interpreters, dlib's models
and the BlazeFace thread pool that Pipeline makes on first use are never shared across a fork, and a
caller's own Recognizer is never inherited half-used. With one worker everything runs in the caller's
process, with no pool at all, so the default path is the one it always was.

Each item's work function must not raise for a bad input: it returns its error as data (a DferError
message in the record), so one unreadable file never loses the others' results. Anything it does
raise (a bug, a set-up failure in a worker) reaches the caller unchanged from the ordered map.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
from functools import partial
from typing import Any, Callable, Generic, Iterable, Iterator, TypeVar

from .errors import DferError

S = TypeVar("S")  # per-process state
T = TypeVar("T")  # item
R = TypeVar("R")  # result


def cpu_count() -> int:
    """Cores this process may run on: its affinity mask (taskset, systemd's CPUAffinity, a container's
    cpuset), not the machine's count, so `--workers 0` on a Pi pinned to cores 2-3 starts two."""
    if hasattr(os, "process_cpu_count"):  # Python 3.13+: the affinity mask where the OS has one
        n = os.process_cpu_count()
    elif hasattr(os, "sched_getaffinity"):
        n = len(os.sched_getaffinity(0))
    else:  # macOS, Windows on older Pythons
        n = os.cpu_count()
    return max(1, n or 1)


def resolve(workers: int, items: int | None = None) -> int:
    """`--workers N` -> processes to use: 0 means every core this process may use, and never more
    processes than items (a process per file of a two-file batch would only cost start-up)."""
    if workers < 0:
        raise DferError(f"--workers {workers}: expected 0 (every core) or a number of processes")
    n = workers or cpu_count()
    return max(1, min(n, items)) if items is not None else n


def context() -> mp.context.BaseContext:
    """Fork on Linux: a worker starts in milliseconds with every module already imported, and its
    state is built fresh in the initializer, so nothing live crosses the fork. Elsewhere (macOS, where
    fork is unsafe with system frameworks; Windows, where it does not exist) spawn: slower to start,
    but setup, work functions and items are all picklable, so it gives the same results."""
    if sys.platform.startswith("linux") and "fork" in mp.get_all_start_methods():
        return mp.get_context("fork")
    return mp.get_context("spawn")


# The state of this worker process: (state, error building it). Module-level because the pool's
# initializer and work wrapper run as plain functions in the child.
_worker: list[Any] = [None, None]


def _start(setup: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """Pool initializer: build this process's state. A failure is kept and raised with the first
    item, so it reaches the caller once instead of the pool restarting the failing worker for ever."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops the pool
    try:
        _worker[:] = [setup(*args), None]
    except BaseException as e:  # noqa: BLE001 - reported to the parent, see above
        _worker[:] = [None, e]


def _call(work: Callable[[Any, Any], Any], item: Any) -> Any:
    state, error = _worker
    if error is not None:
        raise error
    return work(state, item)


def chunk_size(items: int, processes: int) -> int:
    """Items per hand-out: large enough that pickling and queueing are a rounding error next to ~10-50
    ms per image, small enough that the slowest process is not left with a long tail at the end and
    ordered results (and the progress bar) arrive steadily."""
    return max(1, min(16, items // (processes * 16)))


class Workers(Generic[S]):
    """`count` processes, each with `setup(*args)` as its state; or, with one, the caller's process.

    >>> with Workers(2, Recognizer, (options,)) as pool:
    ...     records = list(pool.map(predict_one, files))   # predict_one(recognizer, path), in order

    `local` is state the caller already has (its own Recognizer) for the one-process case, so it is
    not built twice; with more processes it is not used (and the caller should drop it first, so the
    children do not carry its memory).
    """

    def __init__(self, count: int, setup: Callable[..., S], args: tuple[Any, ...] = (),
                 local: S | None = None) -> None:
        self.count = max(1, count)
        self._setup = setup
        self._args = args
        self._local = local
        self._pool: Any = None

    @property
    def parallel(self) -> bool:
        return self.count > 1

    def __enter__(self) -> Workers[S]:
        if self.parallel:
            # A forked child flushes the stdio buffers it inherited when it exits: flush them here so
            # nothing the parent printed so far is printed twice.
            sys.stdout.flush()
            sys.stderr.flush()
            self._pool = context().Pool(self.count, _start, (self._setup, self._args))
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if self._pool is None:
            return
        if exc_type is None:
            self._pool.close()  # every result was read: let the workers finish and exit
        else:
            self._pool.terminate()  # an error or Ctrl-C: stop them now
        self._pool.join()
        self._pool = None

    def state(self) -> S:
        """The in-process state (one worker), built on first use unless the caller passed it."""
        if self._local is None:
            self._local = self._setup(*self._args)
        return self._local

    def map(self, work: Callable[[S, T], R], items: Iterable[T], chunksize: int | None = None) -> Iterator[R]:
        """work(state, item) for every item, results in input order as they become ready. `work` must
        be a module-level function (or a functools.partial of one) so that it can be sent to a worker."""
        items = list(items)
        if self._pool is None:
            if self.parallel:
                raise RuntimeError("Workers.map outside its `with` block")
            state = self.state()
            return (work(state, x) for x in items)
        size = chunksize or chunk_size(len(items), self.count)
        return self._pool.imap(partial(_call, work), items, size)
