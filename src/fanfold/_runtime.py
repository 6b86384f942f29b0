"""Running one task: the leaf boundary (admission, retries, timeouts) and the outcome it ends in.

Every task in the tree goes through :func:`execute`, which turns whatever happened into exactly
one :class:`Outcome` and reports it before returning (or before re-raising a cancellation).
Leaves go through :func:`run_leaf`, the one place where slots are held.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Hashable
from typing import Any

from fanfold._context import Context, RunState
from fanfold._errors import BudgetExhausted, FanoutFailed, Skip, TaskTimeout
from fanfold._events import FINISHED_EVENT, TaskQueued, TaskRetrying, TaskStarted
from fanfold._journal import digest as input_digest
from fanfold._journal import task_key
from fanfold._limits import Admission
from fanfold._outcome import ErrorInfo, Outcome, Status
from fanfold._retry import SIGNALS_ONLY, RetryPolicy, Timeouts, call_with_retries


def is_composite(agent: Any) -> bool:
    """Composites (patterns, teams) hold no slot; everything else is a leaf."""
    return getattr(agent, "composite", False) is True


async def run_leaf(agent: Any, value: Any, ctx: Context) -> Any:
    run = ctx.run
    timeouts: Timeouts | None = getattr(agent, "timeouts", None) or run.timeouts
    task_timeout = timeouts.task if timeouts is not None else None
    if task_timeout is None:
        return await _attempts(agent, value, ctx, timeouts)
    return await _within(task_timeout, _attempts(agent, value, ctx, timeouts), "task")


async def _attempts(agent: Any, value: Any, ctx: Context, timeouts: Timeouts | None) -> Any:
    run = ctx.run
    resources: tuple[str, ...] = getattr(agent, "resources", ())
    attempt_timeout = timeouts.attempt if timeouts is not None else None
    # The first attempt runs outside tenacity: most calls succeed, and they should cost nothing extra.
    try:
        return await _attempt(agent, value, ctx, resources, attempt_timeout, 1)
    except Exception as first:
        policy: RetryPolicy = getattr(agent, "retry", None) or run.retry or SIGNALS_ONLY
        if policy.attempts == 1 or not policy.should_retry(first):
            raise
        failed_first = first

    async def replay(n: int) -> Any:
        if n == 1:
            raise failed_first
        return await _attempt(agent, value, ctx, resources, attempt_timeout, n)

    def on_retry(n: int, delay: float, exc: BaseException) -> None:
        run.retries += 1
        if run.bus.active:
            run.bus.emit(TaskRetrying(run.run_id, ctx.path, run.now(), n + 1, delay, ErrorInfo.of(exc)))

    return await call_with_retries(replay, policy, on_retry)


async def _attempt(
    agent: Any, value: Any, ctx: Context, resources: tuple[str, ...], attempt_timeout: float | None, n: int
) -> Any:
    """One attempt: admitted by the limiter, holding its admission only while the agent runs."""
    run = ctx.run
    ctx.attempt = n
    limiter = run.limiter
    admission = Admission(resources)
    if not limiter.try_acquire(admission):
        await limiter.acquire(admission)
    began = run.clock()
    if n == 1:
        ctx.start = began - run.started
        if run.bus.active:
            run.bus.emit(TaskStarted(run.run_id, ctx.path, ctx.start, ctx.index))
    try:
        if attempt_timeout is None:
            return await agent.run(value, ctx)
        return await _within(attempt_timeout, agent.run(value, ctx), f"attempt {n}")
    finally:
        limiter.release(admission)
        run.busy += run.clock() - began
        run.leaf_calls += 1


async def _within(seconds: float, coro: Coroutine[Any, Any, Any], what: str) -> Any:
    """Await ``coro`` for at most ``seconds``; our own expiry becomes :class:`TaskTimeout`
    (a ``TimeoutError`` the agent raised itself stays what it is)."""
    scope = asyncio.timeout(seconds)
    try:
        async with scope:
            return await coro
    except TimeoutError:
        if scope.expired():
            raise TaskTimeout(f"{what} timed out after {seconds:g}s") from None
        raise


async def execute(
    agent: Any,
    value: Any,
    ctx: Context,
    report: Callable[[Outcome[Any]], None],
    *,
    key: Hashable | None = None,
    timeout: float | None = None,
    delay: float = 0.0,
    stop_reason: Callable[[], str | None] = lambda: None,
) -> Outcome[Any]:
    """Run one task and end it in exactly one outcome, handed to ``report`` (and to the events)
    before this returns, or before a cancellation propagates."""
    run = ctx.run
    run.tasks += 1
    bus = run.bus
    journal = run.journal if ctx.parent is not None else None  # the root's outcome is the run's status
    if journal is not None:
        journal_key, digest = task_key(ctx, key), input_digest(value)
        restored = journal.restore(ctx, journal_key, digest, key)
        if restored is not None:
            _finish(run, report, restored)
            return restored
    if bus.active:
        bus.emit(TaskQueued(run.run_id, ctx.path, run.now(), ctx.index))
    composite = is_composite(agent)
    try:
        if delay:
            await asyncio.sleep(delay)
        if composite:
            ctx.start = run.now()
            if bus.active:
                bus.emit(TaskStarted(run.run_id, ctx.path, ctx.start, ctx.index))
        call = agent.run(value, ctx) if composite else run_leaf(agent, value, ctx)
        result = await (call if timeout is None else _within(timeout, call, "task"))
        outcome = Outcome(
            ctx.index, Status.SUCCEEDED, result, key, ctx.path, ctx.attempt, ctx.start, run.now(), usage=ctx.usage
        )
    except asyncio.CancelledError:
        if run.deadline_passed():
            status, reason = Status.TIMED_OUT, "the run's deadline passed"
        else:
            status, reason = Status.CANCELLED, stop_reason() or "cancelled"
        end = None if ctx.start is None else run.now()
        cut: Outcome[Any] = Outcome(
            ctx.index, status, None, key, ctx.path, ctx.attempt, ctx.start, end, reason=reason, usage=ctx.usage
        )
        _finish(run, report, cut)
        raise
    except Skip as exc:
        outcome = _ended(ctx, Status.SKIPPED, exc, key, reason=exc.reason)
    except BudgetExhausted as exc:
        outcome = _ended(ctx, Status.SKIPPED, exc, key, reason=str(exc))
    except TaskTimeout as exc:
        outcome = _ended(ctx, Status.TIMED_OUT, exc, key)
    except FanoutFailed as exc:
        # A vote or race whose samples were all skipped for the budget is skipped for it too.
        budget = _budget_reason(exc)
        outcome = _ended(ctx, Status.FAILED if budget is None else Status.SKIPPED, exc, key, reason=budget)
    except Exception as exc:
        outcome = _ended(ctx, Status.FAILED, exc, key)
    if journal is not None and _final(outcome):
        durable = journal.record(outcome, journal_key, digest)
        try:
            await asyncio.shield(durable)
        except asyncio.CancelledError:
            _finish(run, report, outcome)  # it is written before the run ends (the journal's close)
            raise
    _finish(run, report, outcome)
    return outcome


def _final(outcome: Outcome[Any]) -> bool:
    """Whether a resumed run should keep this outcome rather than try again: not when the budget
    stopped the task (a resumed run may have budget left)."""
    if outcome.status is not Status.SKIPPED:
        return True
    exc = outcome.exception
    return not isinstance(exc, BudgetExhausted) and not (isinstance(exc, FanoutFailed) and outcome.reason is not None)


def _ended(
    ctx: Context, status: Status, exc: BaseException, key: Hashable | None, reason: str | None = None
) -> Outcome[Any]:
    end = ctx.run.now()
    return Outcome(
        ctx.index,
        status,
        None,
        key,
        ctx.path,
        ctx.attempt,
        ctx.start,
        end,
        error=ErrorInfo.of(exc),
        reason=reason,
        exception=exc,
        usage=ctx.usage,
    )


def _budget_reason(exc: FanoutFailed) -> str | None:
    """The budget's reason, if every input of the failed fan-out that did not succeed was
    skipped because the budget ran out."""
    unfinished = [o for o in exc.outcomes if o.status is not Status.SUCCEEDED]
    if unfinished and all(isinstance(o.exception, BudgetExhausted) for o in unfinished):
        return unfinished[0].reason
    return None


def _finish(run: RunState, report: Callable[[Outcome[Any]], None], outcome: Outcome[Any]) -> None:
    report(outcome)
    bus = run.bus
    if bus.active:
        bus.emit(FINISHED_EVENT[outcome.status](run.run_id, outcome.path, run.now(), outcome))


async def run_step(agent: Any, value: Any, ctx: Context) -> Any:
    """Run a single task that is not a fan-out input (a sequence step, a split, a judge): its
    outcome reaches the events, and anything but success is raised as it happened."""
    outcome = await execute(agent, value, ctx, _no_report)
    if outcome.status is not Status.SUCCEEDED:
        assert outcome.exception is not None
        raise outcome.exception
    return outcome.value


def _no_report(outcome: Outcome[Any]) -> None:
    pass
