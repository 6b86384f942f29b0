"""Retry and timeout configuration, and the retry loop (on tenacity) around one leaf call."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import tenacity

from fanfold._errors import Retry, Signal, UsageError

T = TypeVar("T")

RetryOn = type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by attempts and by total time.

    ``retry_on`` is required: the exception types to retry, or a predicate. ``ff.Retry`` raised by
    an agent is always retried, and a delay hint on the exception (``ff.Retry(after=...)`` or any
    exception with a numeric ``retry_after`` attribute, as a Retry-After header gives) replaces
    the computed backoff. Backoff ``n`` is drawn uniformly from ``[0, min(max_delay, initial * 2**(n-1))]``.
    ``timeout`` bounds the total time across attempts: no retry starts whose wait would pass it.
    Waiting out a backoff holds no concurrency slot. The last exception passes through unchanged.

    >>> policy = ff.RetryPolicy(retry_on=(TimeoutError, ConnectionError), attempts=5, timeout=60)
    """

    retry_on: RetryOn
    attempts: int = 3
    initial: float = 0.5
    max_delay: float = 30.0
    timeout: float | None = None

    def __post_init__(self) -> None:
        on = self.retry_on
        valid = (
            (isinstance(on, type) and issubclass(on, BaseException))
            or (isinstance(on, tuple) and all(isinstance(t, type) and issubclass(t, BaseException) for t in on))
            or (callable(on) and not isinstance(on, type))
        )
        if not valid:
            raise UsageError(
                f"RetryPolicy(retry_on={on!r}): pass an exception type, a tuple of them, or a function exc -> bool"
            )
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) or self.attempts < 1:
            raise UsageError(f"RetryPolicy(attempts={self.attempts!r}): pass a whole number >= 1 (1 means no retry)")
        for name in ("initial", "max_delay"):
            if getattr(self, name) < 0:
                raise UsageError(f"RetryPolicy({name}={getattr(self, name)!r}): pass a number of seconds >= 0")
        if self.timeout is not None and self.timeout <= 0:
            raise UsageError(f"RetryPolicy(timeout={self.timeout!r}): pass seconds > 0, or None for no bound")

    def should_retry(self, exc: BaseException) -> bool:
        if isinstance(exc, Retry):
            return True
        if isinstance(exc, Signal) or not isinstance(exc, Exception):
            return False  # Skip, CancelledError, KeyboardInterrupt: never retried
        on = self.retry_on
        if isinstance(on, (type, tuple)):
            return isinstance(exc, on)
        return bool(on(exc))


# Used when a run gives no policy: only an explicit ff.Retry from the agent is retried.
SIGNALS_ONLY = RetryPolicy(retry_on=(), attempts=3)


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeouts:
    """Time bounds for leaf calls: ``attempt`` bounds each attempt, ``task`` the whole call with
    its retries. Either passing gives the outcome ``timed_out``. (The run's ``deadline`` bounds
    everything.)"""

    attempt: float | None = None
    task: float | None = None

    def __post_init__(self) -> None:
        for name in ("attempt", "task"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or value <= 0):
                raise UsageError(f"Timeouts({name}={value!r}): pass seconds > 0, or None for no bound")


class Resting(Protocol):
    """Told when a call starts and ends waiting out a backoff: the fan-out that runs the call
    lets another input use its place while it waits (see :mod:`fanfold._fanout`)."""

    def rest(self) -> None: ...

    def wake(self) -> None: ...


# Set by a fan-out's worker for the input it runs; a backoff in any call under it tells it.
RESTING: contextvars.ContextVar[Resting | None] = contextvars.ContextVar("fanfold_resting", default=None)


async def backoff_sleep(seconds: float) -> None:
    """Wait out a backoff, telling the fan-out above (if any) that this input holds no place."""
    resting = RESTING.get()
    if resting is None:
        await asyncio.sleep(seconds)
        return
    resting.rest()
    try:
        await asyncio.sleep(seconds)
    finally:
        resting.wake()


def delay_hint(exc: BaseException | None) -> float | None:
    """The delay an exception asks for (``retry_after``), if it names a usable one."""
    hint = getattr(exc, "retry_after", None)
    if isinstance(hint, (int, float)) and not isinstance(hint, bool) and hint >= 0:
        return float(hint)
    return None


class _HintedWait(tenacity.wait.wait_base):
    """Full-jitter exponential backoff, unless the exception carries a Retry-After hint."""

    def __init__(self, policy: RetryPolicy, hint: Callable[[BaseException | None], float | None]) -> None:
        self._jitter = tenacity.wait_random_exponential(multiplier=policy.initial, max=policy.max_delay)
        self._hint = hint

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        hint = self._hint(outcome.exception() if outcome is not None else None)
        return hint if hint is not None else self._jitter(retry_state)


async def call_with_retries(
    attempt: Callable[[int], Awaitable[T]],
    policy: RetryPolicy,
    on_retry: Callable[[int, float, BaseException], None],
    sleep: Callable[[float], Awaitable[None]] = backoff_sleep,
    hint: Callable[[BaseException | None], float | None] = delay_hint,
) -> T:
    """Call ``attempt(n)`` for n = 1, 2, ... until it succeeds or the policy gives up.

    ``on_retry(n, delay, exc)`` is told before each backoff. The last exception is re-raised.
    ``hint(exc)`` may name the delay before the next attempt (default: the exception's
    ``retry_after``); ``None`` means the policy's jittered backoff.
    """
    stop: tenacity.stop.stop_base = tenacity.stop_after_attempt(policy.attempts)
    if policy.timeout is not None:
        stop = stop | tenacity.stop_before_delay(policy.timeout)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        delay = state.upcoming_sleep
        assert exc is not None
        on_retry(state.attempt_number, delay, exc)

    retrying = tenacity.AsyncRetrying(
        stop=stop,
        wait=_HintedWait(policy, hint),
        retry=tenacity.retry_if_exception(policy.should_retry),
        before_sleep=before_sleep,
        reraise=True,
        sleep=sleep,
    )
    async for try_ in retrying:
        with try_:
            return await attempt(try_.retry_state.attempt_number)
    raise AssertionError("unreachable: tenacity re-raises the last exception")  # pragma: no cover
