"""The process backend: sync function agents run in a local pool of worker processes.

Threads share one interpreter lock, so a CPU-bound sync function gains nothing from a second
core on threads; a process pool uses every core. The pool is started by the first leaf that
needs it and shut down when the run ends. Only the function (by reference: it must be importable,
defined at module level) and its input cross the process boundary, pickled.

A worker that dies mid-call (killed, out of memory, a crash in C) breaks the whole pool:
``concurrent.futures`` fails every call in flight with ``BrokenProcessPool``. Each of them
raises :class:`~fanfold.WorkerLost`, which every retry policy retries, on a new pool; none is
lost. A leaf cancelled (a timeout, a deadline, a failure policy) cancels its call if it has not
started; a call already running in a worker cannot be interrupted, and finishes there unseen.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import pickle
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from fanfold._backend import Backend, WorkerLost
from fanfold._errors import UsageError


class Processes(Backend):
    """Run sync function agents in ``workers`` local processes (default: one per CPU)::

    ff.run(ff.map(crunch), rows, backend=ff.Processes(workers=4))   # or backend="processes"
    """

    name = "processes"

    def __init__(self, workers: int | None = None) -> None:
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise UsageError(f"Processes(workers={workers!r}): pass a whole number of processes >= 1, or None")
        self.workers = workers or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None
        self._checked: set[Callable[..., Any]] = set()

    def for_run(self) -> Processes:
        return Processes(self.workers)

    def __repr__(self) -> str:
        return f"Processes(workers={self.workers})"

    async def call(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        if fn not in self._checked:
            check_picklable(fn, self.name)
            self._checked.add(fn)
        pool = self._pool
        if pool is None:
            # forkserver, not fork: forking a process that runs threads (the loop's executor, a
            # driver's clients) can deadlock the child.
            context = multiprocessing.get_context("forkserver")
            pool = self._pool = ProcessPoolExecutor(self.workers, mp_context=context)
        try:
            # wrap_future: cancelling the await cancels the future, if it has not started.
            return await asyncio.wrap_future(pool.submit(fn, *args))
        except BrokenProcessPool as exc:
            if self._pool is pool:  # the first call to see it replaces the pool; the rest retry on the new one
                self._pool = None
                pool.shutdown(wait=False, cancel_futures=True)
            raise WorkerLost(f"a worker process died while running {_name(fn)} ({exc})") from exc

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            # Calls still running (cancelled leaves) finish in their workers; waiting for them in
            # a thread keeps the loop free, and leaves no process behind when the run returns.
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)


def check_picklable(fn: Callable[..., Any], backend: str) -> None:
    """Raise a :class:`UsageError` naming ``fn`` if it cannot be sent to another process."""
    try:
        pickle.dumps(fn)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise UsageError(
            f"the function agent {_name(fn)} cannot run on backend={backend!r}: another process must import it "
            f"by name, and it is {_what(fn)} ({exc}); define it at module level (def {_short(fn)}(...) outside "
            "any function), or use backend='threads'"
        ) from exc


def _name(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _short(fn: Callable[..., Any]) -> str:
    name = getattr(fn, "__name__", "f")
    return "f" if name == "<lambda>" else name


def _what(fn: Callable[..., Any]) -> str:
    qualname = getattr(fn, "__qualname__", "")
    if "<lambda>" in qualname:
        return "a lambda"
    if "<locals>" in qualname:
        return "defined inside a function (a closure)"
    return "not importable by that name"
