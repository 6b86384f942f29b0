"""Sync twins of the async entry points, for scripts and notebooks. Each drives the one async
implementation on an event loop of its own: in this thread when none is running here, else in a
worker thread (a notebook's loop is already running)."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Unpack

from fanfold._options import RunOptions, signature_with_options
from fanfold._outcome import Outcome
from fanfold._run import Result, Run, run, start


def run_sync(spec: Any, input: Any = None, **options: Unpack[RunOptions]) -> Result[Any]:
    """The sync twin of :func:`fanfold.run`, with the same arguments.

    >>> ff.run_sync(ff.map(str.upper), ["a", "b"]).output
    ['A', 'B']
    """
    box: list[Result[Any]] = []

    async def main() -> None:
        # The result goes in a box, not out as the task's value: asyncio.run on Python 3.11
        # formats its main task's value at shutdown, which for a large result costs seconds.
        box.append(await run(spec, input, **options))

    _drive(main)
    return box[0]


run_sync.__signature__ = signature_with_options(run_sync)  # type: ignore[attr-defined]


def _drive(make: Callable[[], Coroutine[Any, Any, None]]) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(make())
        return
    with ThreadPoolExecutor(1, thread_name_prefix="fanfold-sync") as pool:
        pool.submit(lambda: asyncio.run(make())).result()


class _End:
    def __init__(self, error: BaseException | None) -> None:
        self.error = error


def as_completed_sync(
    spec: Any, input: Any = None, *, buffer: int = 256, **options: Unpack[RunOptions]
) -> Iterator[Outcome[Any]]:
    """The sync twin of :func:`fanfold.as_completed`: outcomes as they finish, keeping none.

    The run goes on in a worker thread, at most ``buffer`` outcomes ahead of the consumer.
    Leaving the loop early (``break``, an exception) cancels the run and waits for it to end::

        for outcome in ff.as_completed_sync(ff.map(grade), essays):
            print(outcome.index, outcome.status)
    """
    options.setdefault("keep", False)
    outcomes: queue.Queue[Outcome[Any] | _End] = queue.Queue(maxsize=buffer)
    closing = threading.Event()
    handles: list[tuple[asyncio.AbstractEventLoop, Run]] = []

    async def pump() -> None:
        try:
            async with start(spec, input, **options) as handle:
                handles.append((asyncio.get_running_loop(), handle))
                if closing.is_set():
                    handle.cancel()
                async for outcome in handle.as_completed():
                    try:
                        outcomes.put_nowait(outcome)
                    except queue.Full:  # the consumer lags: wait off the loop, and the run pauses reading
                        await asyncio.to_thread(outcomes.put, outcome)
                await handle.result()
        except BaseException as exc:
            outcomes.put(_End(exc))
            raise
        outcomes.put(_End(None))

    worker = threading.Thread(target=lambda: _quietly(pump), name="fanfold-as-completed", daemon=True)
    worker.start()
    ended = False
    try:
        while not isinstance(item := outcomes.get(), _End):
            yield item
        ended = True
        if item.error is not None:
            raise item.error
    finally:
        if not ended:  # the consumer left early: cancel the run, and drain so that it can end
            closing.set()
            for loop, handle in handles:
                loop.call_soon_threadsafe(handle.cancel)
            while not isinstance(outcomes.get(), _End):
                pass
        worker.join()


as_completed_sync.__signature__ = signature_with_options(as_completed_sync)  # type: ignore[attr-defined]


def _quietly(make: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``make()`` to completion; its error already reached the consumer through the queue."""
    try:
        asyncio.run(make())
    except BaseException:
        return
