"""The leaf boundary: every leaf call is admitted, retried, timed out and counted here."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from fanfold._context import Context
from fanfold._errors import TaskTimeout
from fanfold._events import TaskRetrying, TaskStarted
from fanfold._limits import Admission
from fanfold._outcome import ErrorInfo
from fanfold._retry import SIGNALS_ONLY, RetryPolicy, Timeouts, call_with_retries


async def run_leaf(agent: Any, value: Any, ctx: Context) -> Any:
    state = ctx.run_state
    timeouts: Timeouts | None = getattr(agent, "timeouts", None) or state.timeouts
    task_timeout = timeouts.task if timeouts is not None else None
    if task_timeout is None:
        return await _attempts(agent, value, ctx, timeouts)
    return await within(task_timeout, _attempts(agent, value, ctx, timeouts), "task")


async def _attempts(agent: Any, value: Any, ctx: Context, timeouts: Timeouts | None) -> Any:
    state = ctx.run_state
    resources: tuple[str, ...] = getattr(agent, "resources", ())
    attempt_timeout = timeouts.attempt if timeouts is not None else None
    # The first attempt runs outside tenacity: most calls succeed, and they should cost nothing extra.
    try:
        return await _attempt(agent, value, ctx, resources, attempt_timeout, 1)
    except Exception as first:
        policy: RetryPolicy = getattr(agent, "retry", None) or state.retry or SIGNALS_ONLY
        if policy.attempts == 1 or not policy.should_retry(first):
            raise
        failed_first = first

    async def replay(n: int) -> Any:
        if n == 1:
            raise failed_first
        return await _attempt(agent, value, ctx, resources, attempt_timeout, n)

    def on_retry(n: int, delay: float, exc: BaseException) -> None:
        state.retries += 1
        if state.bus.active:
            state.bus.emit(TaskRetrying(state.run_id, ctx.path, state.now(), n + 1, delay, ErrorInfo.of(exc)))

    return await call_with_retries(replay, policy, on_retry)


async def _attempt(
    agent: Any, value: Any, ctx: Context, resources: tuple[str, ...], attempt_timeout: float | None, n: int
) -> Any:
    """One attempt: admitted by the limiter, holding its admission only while the agent runs."""
    state = ctx.run_state
    ctx.attempt = n
    limiter = state.limiter
    admission = Admission(resources)
    if not limiter.try_acquire(admission):
        await limiter.acquire(admission)
    began = state.clock()
    if n == 1:
        ctx.start = began - state.started
        if state.bus.active:
            state.bus.emit(TaskStarted(state.run_id, ctx.path, ctx.start, ctx.index))
    try:
        if attempt_timeout is None:
            return await agent.run(value, ctx)
        return await within(attempt_timeout, agent.run(value, ctx), f"attempt {n}")
    finally:
        limiter.release(admission)
        state.busy += state.clock() - began
        state.leaf_calls += 1


async def within(seconds: float, coro: Coroutine[Any, Any, Any], what: str) -> Any:
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
