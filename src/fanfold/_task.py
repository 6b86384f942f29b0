"""Running one task, and the outcome it ends in.

Every task in the tree goes through :func:`execute`, which turns whatever happened into exactly
one :class:`Outcome` and reports it before returning (or before re-raising a cancellation).
Leaves go through :func:`fanfold._leaf.run_leaf`, the one place where slots are held.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Hashable
from typing import Any

from fanfold._agent import is_composite
from fanfold._context import Context
from fanfold._errors import BudgetExhausted, FanoutFailed, Skip, TaskTimeout
from fanfold._events import FINISHED_EVENT, TaskQueued, TaskStarted
from fanfold._journal import digest as input_digest
from fanfold._journal import task_key
from fanfold._leaf import run_leaf, within
from fanfold._outcome import Call, ErrorInfo, Outcome, Status, settle_hedges


def execute(
    agent: Any,
    value: Any,
    ctx: Context,
    report: Callable[[Outcome[Any]], None],
    *,
    key: Hashable | None = None,
    timeout: float | None = None,
    delay: float = 0.0,
    stop_reason: Callable[[], str | None] = lambda: None,
) -> Coroutine[Any, Any, Outcome[Any]]:
    """Run one task and end it in exactly one outcome, handed to ``report`` (and to the events)
    before this returns, or before a cancellation propagates. A traced run runs it inside the
    task's span (a plain function, not a coroutine: untraced, it costs one check, no frame)."""
    tracer = ctx.run_state.tracer
    if tracer is None:
        return _execute(agent, value, ctx, report, key, timeout, delay, stop_reason)
    return tracer.execute(_execute, agent, value, ctx, report, key, timeout, delay, stop_reason)


async def _execute(
    agent: Any,
    value: Any,
    ctx: Context,
    report: Callable[[Outcome[Any]], None],
    key: Hashable | None,
    timeout: float | None,
    delay: float,
    stop_reason: Callable[[], str | None],
) -> Outcome[Any]:
    state = ctx.run_state
    state.tasks += 1
    bus = state.bus
    journal = state.journal if ctx.parent is not None else None  # the root's outcome is the run's status
    if journal is not None:
        journal_key, digest = task_key(ctx, key), input_digest(value)
        restored = journal.restore(ctx, journal_key, digest, key)
        if restored is not None:
            ctx.replay(journal.published_of(restored))
            _finish(ctx, report, restored)
            return restored
    if bus.tasks:
        bus.emit(TaskQueued(state.run_id, ctx.path, state.now(), ctx.index))
    composite = is_composite(agent)
    try:
        if delay:
            await asyncio.sleep(delay)
        if composite:
            ctx.start = state.now()
            if bus.tasks:
                bus.emit(TaskStarted(state.run_id, ctx.path, ctx.start, ctx.index))
        call = agent.run(value, ctx) if composite else run_leaf(agent, value, ctx)
        result = await (call if timeout is None else within(timeout, call, "task"))
        ctx.commit()  # its publishes count, and a sequence step's state flows on, only on success
        outcome = Outcome(
            ctx.index,
            Status.SUCCEEDED,
            result,
            key,
            ctx.path,
            ctx.attempt,
            ctx.start,
            state.now(),
            usage=ctx.usage,
            retries=ctx.retries,
            calls=_calls(ctx),
        )
    except asyncio.CancelledError:
        if state.deadline_passed():
            status, reason = Status.TIMED_OUT, "the run's deadline passed"
        else:
            status, reason = Status.CANCELLED, stop_reason() or "cancelled"
        end = None if ctx.start is None else state.now()
        cut: Outcome[Any] = Outcome(
            ctx.index,
            status,
            None,
            key,
            ctx.path,
            ctx.attempt,
            ctx.start,
            end,
            reason=reason,
            usage=ctx.usage,
            retries=ctx.retries,
            calls=_calls(ctx),
        )
        _finish(ctx, report, cut)
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
        durable = journal.record(outcome, journal_key, digest, ctx.published)
        try:
            await asyncio.shield(durable)
        except asyncio.CancelledError:
            _finish(ctx, report, outcome)  # it is written before the run ends (the journal's close)
            raise
    _finish(ctx, report, outcome)
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
    end = ctx.run_state.now()
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
        retries=ctx.retries,
        calls=_calls(ctx),
    )


def _calls(ctx: Context) -> tuple[Call, ...] | None:
    """The task's own timed leaf calls (None: it made none, as most tasks)."""
    calls = ctx.calls
    return None if calls is None else settle_hedges(calls)


def _budget_reason(exc: FanoutFailed) -> str | None:
    """The budget's reason, if every input of the failed fan-out that did not succeed was
    skipped because the budget ran out."""
    unfinished = [o for o in exc.outcomes if o.status is not Status.SUCCEEDED]
    if unfinished and all(isinstance(o.exception, BudgetExhausted) for o in unfinished):
        return unfinished[0].reason
    return None


def _finish(ctx: Context, report: Callable[[Outcome[Any]], None], outcome: Outcome[Any]) -> None:
    ctx.hand_up()  # what its subtree published is journaled with its parent's outcome too
    report(outcome)
    state = ctx.run_state
    bus = state.bus
    if bus.tasks:
        bus.emit(FINISHED_EVENT[outcome.status](state.run_id, outcome.path, state.now(), outcome))


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
