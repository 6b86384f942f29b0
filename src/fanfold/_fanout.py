"""The fan-out engine under every pattern: a sliding window of workers over a lazy source.

A fan-out starts ``window`` workers in a task group. Each worker pulls the next input, runs it as
a child task, records its outcome and pulls again, so a slow input never holds back a wave. An
input waiting out a backoff holds no place in the window: its worker rests, and the fan-out
starts another worker for the next input; when the rested input wakes, the first worker to finish
an input while more than ``window`` are active stops. At most ``2 * window`` inputs are in memory
at once, however many back off. The
failure policy (and a pattern's own ``watch``, for votes and races) looks at every outcome and
may stop the fan-out: the workers still running are cancelled and every input not yet read is
recorded as skipped. Whatever happens, each input ends in exactly one outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable, Hashable, Iterable, Iterator, Sequence
from typing import Any

from fanfold._context import Context
from fanfold._errors import FanoutFailed
from fanfold._events import FanoutStarted
from fanfold._judge import Judge, Watch
from fanfold._outcome import Outcome
from fanfold._policy import FailurePolicy
from fanfold._retry import RESTING
from fanfold._task import execute

Item = tuple[Any, Any]  # (agent, input)
_END: Any = object()  # typed Any so that next(source, _END) stays an Item to the checker


class Fanout:
    """One execution of a fan-out. Patterns build one per run of themselves."""

    HEADROOM = 2  # inputs in memory at most: this many windows (the extra ones are backing off)

    def __init__(
        self,
        ctx: Context,
        kind: str,
        source: Iterable[Item] | AsyncIterable[Item],
        *,
        policy: FailurePolicy,
        total: int | None = None,
        window: int | None = None,
        key: Callable[[Any], Hashable] | None = None,
        timeout: float | None = None,
        labels: Sequence[object] | None = None,
        watch: Watch | None = None,
        stagger: float = 0.0,
        primary: bool = True,
    ) -> None:
        state = ctx.run_state
        self.ctx = ctx
        self.kind = kind
        self.key = key
        self.timeout = timeout
        self.labels = labels
        self.stagger = stagger
        self.judge = Judge(kind, policy, total=total, watch=watch)
        # Only the run's top fan-out feeds the run's outcome stream.
        self._sink = state.root_sink if primary and ctx.parent is None else None
        if self._sink is not None:
            self._sink.fed = True  # even with no inputs, the run's outcomes are this fan-out's
        if state.bus.active:
            state.bus.emit(FanoutStarted(state.run_id, ctx.path, state.now(), kind, total, self._sink is not None))
        self._keep = self._sink is None or self._sink.keep
        self._outcomes: list[Outcome[Any] | None] = []
        self._source_error: tuple[int, BaseException] | None = None
        self._pulled = 0
        size = window or state.window
        self._total = total
        self._n_workers = min(size, total) if total is not None else size
        # Inputs in memory are bounded by the workers alive (each holds one input at most);
        # workers whose input waits out a backoff (resting) do not count against the window.
        self._cap = self._n_workers * self.HEADROOM
        self._alive = 0
        self._resting = 0
        self._exhausted = False
        if isinstance(source, AsyncIterable):
            self._aiter: AsyncIterator[Item] | None = aiter(source)
            self._iter: Iterator[Item] | None = None
            self._lock = asyncio.Lock()
        else:
            self._iter = iter(source)
            self._aiter = None

    async def run(self) -> list[Outcome[Any]]:
        """Run every input; return one outcome per input, in input order (empty if not kept)."""
        try:
            return await self._run()
        finally:
            if self._sink is not None and self._keeps():
                self._sink.outcomes = self.outcomes

    async def _run(self) -> list[Outcome[Any]]:
        judge = self.judge
        self._alive = self._n_workers
        try:
            await judge.run(self._worker() for _ in range(self._n_workers))
        except asyncio.CancelledError:
            await self._drain(judge.interrupted(self.ctx))
            raise
        reason = judge.close()
        if self._source_error is not None:
            reason = f"reading input #{self._source_error[0]} failed"
        await self._drain(reason)
        if self._source_error is not None:
            index, exc = self._source_error
            raise FanoutFailed(
                f"{self.kind}: reading input #{index} failed: {type(exc).__name__}: {exc}", self.outcomes
            ) from exc
        return judge.settle(self.outcomes)

    @property
    def outcomes(self) -> list[Outcome[Any]]:
        return [o for o in self._outcomes if o is not None]

    def _keeps(self) -> bool:
        """Whether outcomes are kept. The run's top fan-out stops keeping them (and drops what
        it kept) once its sink stops: someone streams them through the run's handle."""
        if self._keep and self._sink is not None and not self._sink.keep:
            self._keep = False
            self._outcomes = []
        return self._keep

    # -- workers ---------------------------------------------------------------------------

    async def _worker(self) -> None:
        RESTING.set(_Worker(self))  # this worker's task only: backoffs under its inputs tell it
        try:
            await (self._work_sync() if self._iter is not None else self._work_async())
        finally:
            self._alive -= 1

    def _rested(self) -> None:
        """A worker's input began waiting out a backoff: start a worker in its place, if the
        window is short of active workers, memory allows, and there may be inputs left."""
        self._resting += 1
        total = self._total
        if (
            self._alive - self._resting < self._n_workers
            and self._alive < self._cap
            and not self._exhausted
            and self._source_error is None
            and (total is None or self._pulled < total)
            and self.judge.spawn(self._worker)
        ):
            self._alive += 1

    def _surplus(self) -> bool:
        """Whether more workers are active than the window holds (a rested input woke while
        its stand-in was busy): the worker asking stops instead of pulling."""
        return self._alive - self._resting > self._n_workers

    async def _work_sync(self) -> None:
        source = self._iter
        assert source is not None
        sink = self._sink
        while self.judge.verdict is None and self._source_error is None and not self._surplus():
            if sink is not None and sink.full():
                await sink.room()
            index = self._pulled
            try:
                item = next(source, _END)
            except Exception as exc:
                self._source_error = (index, exc)  # the others finish what they hold, then stop
                return
            if item is _END:
                self._exhausted = True
                return
            self._pulled = index + 1
            await self._run_item(index, item)

    async def _work_async(self) -> None:
        source = self._aiter
        assert source is not None
        sink = self._sink
        while self.judge.verdict is None and self._source_error is None and not self._surplus():
            if sink is not None and sink.full():
                await sink.room()
            async with self._lock:
                if self._exhausted:
                    return
                index = self._pulled
                try:
                    item = await anext(source)
                except StopAsyncIteration:
                    self._exhausted = True
                    return
                except Exception as exc:
                    self._source_error = (index, exc)  # the others finish what they hold, then stop
                    return
                self._pulled = index + 1
            await self._run_item(index, item)

    async def _run_item(self, index: int, item: Item) -> None:
        agent, value = item
        if self._keeps():
            self._outcomes.append(None)
        labels = self.labels
        ctx = self.ctx.child(self.kind, index, labels[index] if labels is not None else None)
        try:
            key = self.key(value) if self.key is not None else None
        except Exception as exc:
            key, agent, value = None, _KeyFailed(exc), None
        await execute(
            agent,
            value,
            ctx,
            self._record,
            key=key,
            timeout=self.timeout,
            delay=self.stagger * index,
            stop_reason=self.judge.stop_reason,
        )

    # -- outcomes ----------------------------------------------------------------------------

    def _record(self, outcome: Outcome[Any]) -> None:
        if self._keeps():
            self._outcomes[outcome.index] = outcome
        if self._sink is not None:
            self._sink.put(outcome)
        self.judge.record(outcome)

    async def _drain(self, reason: str) -> None:
        """Record every input not yet read as skipped, so each input has its outcome."""
        while True:
            try:
                if self._iter is not None:
                    item = next(self._iter, _END)
                else:
                    assert self._aiter is not None
                    item = await anext(self._aiter, _END)
            except Exception as exc:
                if self._source_error is None:  # reported by run(), unless a cancellation is under way
                    self._source_error = (self._pulled, exc)
                return
            if item is _END:
                return
            index = self._pulled
            self._pulled += 1
            ctx = self.ctx.child(self.kind, index, self.labels[index] if self.labels is not None else None)
            try:
                key = self.key(item[1]) if self.key is not None else None
            except Exception:
                key = None  # the input is skipped either way; its key function's failure does not matter
            if self._keeps():
                self._outcomes.append(None)
            self.judge.unrun(ctx, self._record, reason, key=key)


class _Worker:
    """One worker of a fan-out, as the backoffs of the input it runs see it (``RESTING``).
    Several calls of one input may back off at once; the worker rests while any of them does."""

    __slots__ = ("backoffs", "fanout")

    def __init__(self, fanout: Fanout) -> None:
        self.fanout = fanout
        self.backoffs = 0

    def rest(self) -> None:
        self.backoffs += 1
        if self.backoffs == 1:
            self.fanout._rested()

    def wake(self) -> None:
        self.backoffs -= 1
        if self.backoffs == 0:
            self.fanout._resting -= 1


class _KeyFailed:
    """Stands in for the agent when the ``key`` function fails on an input: the input fails,
    without being admitted or retried (``composite`` keeps it away from the leaf boundary)."""

    composite = True

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    async def run(self, input: Any, ctx: Context) -> Any:
        raise self.exc
