"""Entry points: ``run`` (await a result), ``start`` (a handle: events, streaming, cancel),
``as_completed`` (outcomes as they finish) and their sync twins, all over one implementation."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator, Sized
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generic, TypeVar, Unpack

from fanfold._agent import agent_name, as_agent
from fanfold._context import Context, RunState
from fanfold._errors import RunFailed, UsageError
from fanfold._events import Event, EventBus, RunFinished, RunStarted
from fanfold._hedge import SCOPE
from fanfold._hedge import counts as hedge_counts
from fanfold._journal import describe, open_journal
from fanfold._options import RunOptions, Settings, check_options, signature_with_options
from fanfold._outcome import ErrorInfo, Outcome, Status, Summary
from fanfold._records import open_store
from fanfold._task import execute
from fanfold._tracing import open_tracer

T = TypeVar("T")


class RunStatus(enum.StrEnum):
    SUCCEEDED = "succeeded"  # the root finished (a collecting fan-out succeeds with failed items)
    FAILED = "failed"  # the root failed: ff.run raises RunFailed
    PARTIAL = "partial"  # the deadline passed: unfinished inputs are marked timed out or skipped
    CANCELLED = "cancelled"  # the run was cancelled through its handle


@dataclass(frozen=True, slots=True)
class Result(Generic[T]):
    """What a run produced.

    ``output`` is the root agent's value (for ``map``: the successful results in input order).
    ``outcomes`` has one :class:`Outcome` per input of the top fan-out, in input order (for a
    root that is not a fan-out: its one outcome). ``summary`` adds them up.
    """

    run_id: str
    status: RunStatus
    output: T | None
    outcomes: list[Outcome[Any]]
    summary: Summary
    channels: dict[str, Any] = field(default_factory=dict)
    error: ErrorInfo | None = None
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    @property
    def outputs(self) -> list[Any]:
        """The values of the successful outcomes, in input order."""
        return [o.value for o in self.outcomes if o.status is Status.SUCCEEDED]

    @property
    def complete(self) -> bool:
        return self.status is RunStatus.SUCCEEDED

    def failures(self) -> list[Outcome[Any]]:
        """Outcomes that failed or timed out."""
        return [o for o in self.outcomes if o.status in (Status.FAILED, Status.TIMED_OUT)]

    def __repr__(self) -> str:  # a result may hold a million outcomes: show their count, not them
        return (
            f"Result(run_id={self.run_id!r}, status={self.status.value!r}, "
            f"outcomes=<{len(self.outcomes)}>, summary={self.summary})"
        )


def _journal_config(options: Settings, spec: Any, input: Any) -> dict[str, Any]:
    """What the run record keeps of the run: plain data, no secrets. Each task's entry
    identifies its own input (a digest); the record says what the inputs were."""
    settings = {
        name: repr(getattr(options, name))
        for name in ("limits", "retry", "timeouts", "deadline", "budget")
        if getattr(options, name) is not None
    }
    inputs: dict[str, Any] = {"type": type(input).__name__}
    if isinstance(input, Sized) and not isinstance(input, str | bytes):
        inputs["count"] = len(input)
    return {"spec": describe(spec), "inputs": inputs, "options": settings, "metadata": options.metadata or {}}


class Run:
    """A started run: its events, its outcomes as they finish, cancellation, and its result.

    Use through ``ff.start``::

        async with ff.start(ff.map(grade), essays) as run:
            async for event in run.events():
                ...
        result = await run.result()
    """

    def __init__(self, spec: Any, input: Any, options: Settings, *, keep_given: bool = True) -> None:
        self._spec = as_agent(spec, "run")
        self._input = input
        self._options = options
        self._keep_given = keep_given  # False: ``keep`` was left to default, and streaming turns it off
        self._bus = EventBus(options.callbacks)
        self._state: RunState | None = None
        self._task: asyncio.Task[Result[Any]] | None = None
        self._running: asyncio.Task[Any] | None = None  # the task _main runs in (ff.run has no handle task)
        self._cancel_requested = False
        self._started = False

    # -- the handle ------------------------------------------------------------------------

    async def __aenter__(self) -> Run:
        self._prepare()
        # The run's one task; __aexit__ always waits for it, so it never outlives the block.
        self._task = asyncio.get_running_loop().create_task(self._main())
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        task = self._task
        assert task is not None
        if et is not None and not task.done():
            self.cancel()
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            task.cancel()  # our caller is cancelled: take the run down with it, then go
            await asyncio.wait({task})
            raise
        if et is None and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]

    @property
    def run_id(self) -> str:
        return self._started_state().run_id

    @property
    def done(self) -> bool:
        return self._task is not None and self._task.done()

    def events(self) -> AsyncIterator[Event]:
        """Every event from now until the run finishes. Call it before the first ``await`` in
        the ``async with`` block to see them all."""
        return self._bus.stream()

    def as_completed(self) -> AsyncIterator[Outcome[Any]]:
        """Outcomes of the top fan-out as they finish (completion order, each with its
        ``index``). While the consumer lags, the run stops reading new inputs.

        Streaming hands the outcomes to you, so the run stops keeping them: ``result()`` then
        has the summary's counts and no ``outcomes``, and memory stays flat however many inputs
        stream through. Pass ``keep=True`` to ``ff.start`` to have both (the result then holds
        every outcome: about 0.35 KB each).
        """
        sink = self._started_state().root_sink
        if not self._keep_given:
            sink.keep = False
        return sink.stream()

    def cancel(self) -> None:
        """Cancel every task of the run; ``result()`` then returns the partial result."""
        self._cancel_requested = True
        # A task cancelled before its first step never enters _main's handlers; _main checks the
        # flag when it starts instead.
        task = self._task or self._running
        if task is not None and self._started:
            task.cancel()

    async def result(self) -> Result[Any]:
        """Wait for the run to end. Raises :class:`RunFailed` when the root failed."""
        self._started_state()
        assert self._task is not None
        return _raise_if_failed(await asyncio.shield(self._task), self._bus)

    def _started_state(self) -> RunState:
        if self._state is None:
            raise UsageError("this run has not started; use it as 'async with ff.start(spec, input) as run:'")
        return self._state

    # -- the run itself --------------------------------------------------------------------

    def _prepare(self) -> None:
        options = self._options
        if options.progress:
            from fanfold._progress import ProgressDisplay

            display = ProgressDisplay()
            self._bus.subscribe(display)
            self._display: ProgressDisplay | None = display
        else:
            self._display = None
        self._state = state = RunState(options, self._bus)
        if options.batch_api:  # read by the LLM wing (fanfold._llm._batch.BATCH_API)
            state.services["fanfold:batch_api"] = True
        tracing = options.tracing
        if tracing is not None:  # the run is a span, each task one inside it (the _observe wing)
            state.tracer = open_tracer(tracing, state)

    async def _main(self) -> Result[Any]:
        state = self._state
        assert state is not None
        options = self._options
        store = None if options.store is None else open_store(options.store)
        try:
            if store is None:
                return await self._body()
            try:
                journal = await open_journal(
                    store,
                    state.run_id,
                    agent_name(self._spec),
                    _journal_config(options, self._spec, self._input),
                    options.resume is not None,
                    lambda: state.ledger.spent,
                    take_over=options.take_over,
                )
            except BaseException:
                self._bus.close()  # the run never began: end the streams its consumers wait on
                state.root_sink.close()
                raise
            state.journal = journal
            self._running = asyncio.current_task()
            journal.on_cancel = self.cancel  # a cancel request in the store (`fanfold dashboard`)
            journal.start()
            ended = False
            try:
                try:
                    result = await self._body()
                finally:
                    await journal.aclose()
                if journal.failure is not None:  # unfinished, and resumable: the lease is given up below
                    raise journal.failure
                # The record's summary counts every attempt's usage; this result's, this attempt's.
                await journal.end(result.status.value, result.summary.as_dict())
                ended = True
                return result
            finally:
                if not ended:  # shows as interrupted at once, rather than when the lease lapses
                    await journal.end(None, None)
        finally:
            await state.aclose()
            if store is not None and store is not options.store:
                await store.close()  # we opened it from a path or URL; a Store passed in is the caller's

    async def _body(self) -> Result[Any]:
        self._started = True
        state = self._state
        assert state is not None
        sink = state.root_sink
        bus = self._bus
        if self._display is not None:
            self._display.start()
        if bus.active:
            bus.emit(RunStarted(state.run_id, "", 0.0, state.started_wall))
        root = Context(state, None, "", "", 0)
        root_outcome: Outcome[Any] | None = None

        def report(outcome: Outcome[Any]) -> None:
            nonlocal root_outcome
            root_outcome = outcome
            if not sink.fed:  # the root is no fan-out: its own outcome is the run's one outcome
                sink.put(outcome)
                sink.outcomes = [outcome]

        status = RunStatus.FAILED
        try:
            if self._cancel_requested:  # cancelled before it began: begin, so each input gets its outcome
                asyncio.current_task().cancel()  # type: ignore[union-attr]
            async with asyncio.timeout_at(state.deadline):
                token = SCOPE.set(self._options.hedge)  # the run's hedge: for every leaf without one
                try:
                    await execute(self._spec, self._input, root, report)
                finally:
                    SCOPE.reset(token)
                if self._cancel_requested:
                    await asyncio.sleep(0)  # deliver a cancel that came after the root's last await
        except TimeoutError:
            if not state.deadline_passed():
                raise
            status = RunStatus.PARTIAL
        except asyncio.CancelledError:
            if not self._cancel_requested:
                self._finish(state, RunStatus.CANCELLED, None)
                raise
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            status = RunStatus.CANCELLED
        else:
            assert root_outcome is not None
            status = RunStatus.SUCCEEDED if root_outcome.ok else RunStatus.FAILED
        return self._finish(state, status, root_outcome)

    def _finish(self, state: RunState, status: RunStatus, root: Outcome[Any] | None) -> Result[Any]:
        sink = state.root_sink
        counts = sink.counts
        summary = Summary(
            total=sum(counts.values()),
            counts=dict(counts),
            wall=state.now(),
            busy=state.busy,
            retries=state.retries,
            tasks=state.tasks,
            leaf_calls=state.leaf_calls,
            usage=state.ledger.spent,
            resumed=sink.resumed,
            **hedge_counts(state),
        )
        error = root.error if root is not None and status is RunStatus.FAILED else None
        result: Result[Any] = Result(
            state.run_id,
            status,
            root.value if root is not None else None,
            sink.outcomes,
            summary,
            {name: cell.value for name, cell in state.channels.items()},
            error,
            root.exception if error is not None and root is not None else None,
        )
        if self._bus.active:
            self._bus.emit(RunFinished(state.run_id, "", summary.wall, status.value, summary))
        self._bus.close()
        sink.close()
        state.close()
        if self._display is not None:
            self._display.stop()
        return result


def _raise_if_failed(result: Result[Any], bus: EventBus) -> Result[Any]:
    if result.status is RunStatus.FAILED:
        raise RunFailed(f"run {result.run_id} failed: {result.error}", result) from result.exception
    if bus.broken is not None:
        callback, exc = bus.broken
        raise RunFailed(
            f"run {result.run_id}: the on_event callback {callback!r} raised {type(exc).__name__}: {exc}; "
            "it was dropped and the run finished without it (error.result has every outcome); fix the callback",
            result,
        ) from exc
    return result


def start(spec: Any, input: Any = None, **options: Unpack[RunOptions]) -> Run:
    """Start a run and get its handle; use it as ``async with ff.start(spec, input) as run``.

    Takes the same options as :func:`run`. Leaving the block waits for the run (or cancels it,
    if the block raised). ``keep`` defaults to keeping every outcome for ``result()``, unless
    the outcomes are streamed through ``run.as_completed()``: then none are kept, unless
    ``keep=True`` is passed.
    """
    return Run(spec, input, check_options(options), keep_given="keep" in options)


start.__signature__ = signature_with_options(start)  # type: ignore[attr-defined]


async def run(spec: Any, input: Any = None, **options: Unpack[RunOptions]) -> Result[Any]:
    """Run an agent or pattern on ``input`` and return its :class:`Result`.

    The options, each a keyword (``start``, ``as_completed`` and the sync twins take them too):

    - ``limits``: a :class:`Limits`, what runs at once (default: 64 leaf calls);
    - ``retry``, ``timeouts``: a :class:`RetryPolicy` and :class:`Timeouts`, the defaults for
      every leaf call;
    - ``deadline``: seconds the whole run may take: when it passes, unfinished work is cancelled
      and the partial result returned (status ``partial``);
    - ``on_event``: a callback (or a list of them) that receives every event;
    - ``progress``: ``True`` shows a live display;
    - ``keep``: ``False`` keeps no outcomes in memory (for streaming with ``as_completed``);
    - ``run_id``: the run's id (default: a fresh one);
    - ``limiter``: a :class:`Limiter` shared with other runs, in place of one made from ``limits``;
    - ``budget``: a :class:`Budget`, what model calls may spend (tokens, dollars, requests): calls
      it cannot cover are not made, and their inputs end ``skipped`` with the reason;
    - ``store``: journals the run (a :class:`Store`, a SQLite file path, a ``postgresql://`` URL,
      or ``"memory"``): every task's outcome is durable before it is reported;
    - ``resume``: a run id: continues a run that crashed or was stopped; journaled tasks are not
      run again, their outcomes come back with ``resumed=True``;
    - ``take_over``: with ``resume``, take the run from an owner known dead without waiting for
      its lease to lapse (refused, with ``RunOwned``, while that owner is alive on this host);
    - ``metadata``: JSON data kept with the run's record;
    - ``trace``: ``True`` or a :class:`Tracing`: OpenTelemetry spans and metrics of the run (the
      run, each task, each model request), after the GenAI semantic conventions;
    - ``backend``: where sync function agents run: ``"threads"`` (the default), ``"processes"``,
      ``"ray"`` (or :class:`Processes`, :class:`Ray`); the scheduler and governor stay here;
    - ``hedge``: an ``ff.Hedge``: a backup call for any leaf call slower than its trigger, timed
      from admission, capped per run (``Summary.hedges``, ``Summary.hedges_won``);
    - ``batch_api``: ``True`` sends the model requests of ``ff.llm`` OpenAI and Anthropic agents
      without tools through the provider's batch endpoint (OpenAI's Batch API, Anthropic's Message
      Batches), at half the price, for work that can wait (a journaled run resumes by polling its batches).

    Raises :class:`RunFailed` when the root task fails; ``error.result`` keeps what finished. A
    keyword that is no option raises :class:`UsageError` (also a ``TypeError``) naming it.
    """
    handle = Run(spec, input, check_options(options))
    handle._prepare()
    return _raise_if_failed(await handle._main(), handle._bus)


run.__signature__ = signature_with_options(run)  # type: ignore[attr-defined]


async def as_completed(spec: Any, input: Any = None, **options: Unpack[RunOptions]) -> AsyncIterator[Outcome[Any]]:
    """Yield the top fan-out's outcomes as they finish, each with its ``index``, keeping none::

    async for outcome in ff.as_completed(ff.map(grade), essays):
        print(outcome.index, outcome.status, outcome.value)
    """
    options.setdefault("keep", False)
    async with start(spec, input, **options) as handle:
        async for outcome in handle.as_completed():
            yield outcome
        await handle.result()


as_completed.__signature__ = signature_with_options(as_completed)  # type: ignore[attr-defined]
