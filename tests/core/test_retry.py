import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fanfold as ff
from fanfold import events
from fanfold.testing import Action, EventLog, ScriptedError, VirtualClock, act

FAST = {"initial": 0.001, "max_delay": 0.002}


def test_retry_on_is_required() -> None:
    with pytest.raises(TypeError, match="retry_on"):
        ff.RetryPolicy()  # type: ignore[call-arg]


@pytest.mark.parametrize("bad", [3, "ValueError", [ValueError]])
def test_retry_on_must_be_types_or_a_predicate(bad: object) -> None:
    with pytest.raises(ff.UsageError, match="retry_on"):
        ff.RetryPolicy(retry_on=bad)  # type: ignore[arg-type]


def test_retryable_failures_are_retried_until_success() -> None:
    policy = ff.RetryPolicy(retry_on=ScriptedError, attempts=4, **FAST)
    result = ff.run_sync(ff.map(act), [Action(value="ok", fail_attempts=3)], retry=policy)
    assert result.outcomes[0].status is ff.Status.SUCCEEDED
    assert result.outcomes[0].attempts == 4
    assert result.summary.retries == 3


def test_the_last_exception_passes_through_unchanged_when_attempts_run_out() -> None:
    policy = ff.RetryPolicy(retry_on=ScriptedError, attempts=2, **FAST)
    result = ff.run_sync(ff.map(act), [Action.failing("flaky")], retry=policy)
    outcome = result.outcomes[0]
    assert outcome.status is ff.Status.FAILED
    assert outcome.attempts == 2
    assert isinstance(outcome.exception, ScriptedError)
    assert outcome.error == ff.ErrorInfo("ScriptedError", "flaky (attempt 2)")


def test_exceptions_not_named_are_not_retried() -> None:
    policy = ff.RetryPolicy(retry_on=ConnectionError, attempts=5, **FAST)
    result = ff.run_sync(ff.map(act), [Action.failing()], retry=policy)
    assert result.outcomes[0].attempts == 1


def test_a_predicate_chooses_what_to_retry() -> None:
    policy = ff.RetryPolicy(retry_on=lambda exc: "retry me" in str(exc), attempts=3, **FAST)
    result = ff.run_sync(ff.map(act), [Action.failing("retry me"), Action.failing("fatal")], retry=policy)
    assert [o.attempts for o in result.outcomes] == [3, 1]


def test_retry_signal_carries_its_delay_hint(clock: VirtualClock) -> None:
    async def busy(x: int, ctx: ff.Context) -> int:
        if ctx.attempt == 1:
            raise ff.Retry("503", after=0.01)
        return x

    log = EventLog()
    result = ff.run_sync(ff.map(busy), [5], on_event=log)  # no policy: an explicit Retry is still honoured
    assert result.output == [5]
    (retrying,) = log.of_type(events.TaskRetrying)
    assert isinstance(retrying, events.TaskRetrying)
    assert retrying.delay == 0.01
    assert retrying.attempt == 2
    assert retrying.error.message == "503"


def test_an_exception_with_retry_after_is_honoured(clock: VirtualClock) -> None:
    class RateLimited(Exception):
        retry_after = 0.02

    async def limited(x: int, ctx: ff.Context) -> int:
        if ctx.attempt == 1:
            raise RateLimited("429")
        return x

    log = EventLog()
    ff.run_sync(ff.map(limited), [1], retry=ff.RetryPolicy(retry_on=RateLimited), on_event=log)
    delays = [e.delay for e in log.of_type(events.TaskRetrying)]  # type: ignore[attr-defined]
    assert delays == [0.02]
    assert clock.now == pytest.approx(0.02)  # waited exactly as long as the provider asked


@settings(max_examples=25, deadline=None)
@given(initial=st.floats(0.0001, 0.002), max_delay=st.floats(0.0001, 0.003), attempts=st.integers(2, 5))
def test_backoff_is_full_jitter_within_the_exponential_ceiling(initial: float, max_delay: float, attempts: int) -> None:
    log = EventLog()
    policy = ff.RetryPolicy(retry_on=ScriptedError, attempts=attempts, initial=initial, max_delay=max_delay)
    ff.run_sync(ff.map(act), [Action.failing()], retry=policy, on_event=log)
    retries = log.of_type(events.TaskRetrying)
    assert len(retries) == attempts - 1
    for event in retries:
        assert isinstance(event, events.TaskRetrying)
        ceiling = min(max_delay, initial * 2 ** (event.attempt - 2))
        assert 0 <= event.delay <= ceiling + 1e-12


def test_waiting_out_a_backoff_holds_no_slot(clock: VirtualClock) -> None:
    finished: list[int] = []

    async def first_backs_off(x: int, ctx: ff.Context) -> int:
        if x == 0 and ctx.attempt == 1:
            raise ff.Retry("later", after=0.05)
        finished.append(x)
        return x

    ff.run_sync(ff.map(first_backs_off, window=2), [0, 1], limits=ff.Limits(concurrency=1))
    assert finished == [1, 0]  # input 1 ran while input 0 waited out its backoff
    assert clock.now == pytest.approx(0.05)


def test_total_time_bound_stops_retries() -> None:
    async def always_busy(x: int) -> int:
        raise ff.Retry("busy", after=10)

    policy = ff.RetryPolicy(retry_on=ff.Retry, attempts=100, timeout=1)
    result = ff.run_sync(ff.map(always_busy), [1], retry=policy)
    assert result.outcomes[0].attempts == 1  # the first wait would pass the bound: no retry at all


def test_attempt_timeout_times_out_one_attempt_and_retry_recovers(clock: VirtualClock) -> None:
    async def slow_first(x: int, ctx: ff.Context) -> int:
        if ctx.attempt == 1:
            await asyncio.Event().wait()
        return x

    result = ff.run_sync(
        ff.map(slow_first),
        [3],
        timeouts=ff.Timeouts(attempt=0.01),
        retry=ff.RetryPolicy(retry_on=TimeoutError, **FAST),
    )
    assert result.output == [3]
    assert result.outcomes[0].attempts == 2


def test_task_timeout_gives_timed_out_outcome(clock: VirtualClock) -> None:
    result = ff.run_sync(ff.map(act), [Action(hang=True), Action(value=1)], timeouts=ff.Timeouts(task=0.01))
    first = result.outcomes[0]
    assert first.status is ff.Status.TIMED_OUT
    assert first.error is not None
    assert first.error.message == "task timed out after 0.01s"
    assert result.outcomes[1].status is ff.Status.SUCCEEDED


def test_per_input_timeout_on_a_pattern_bounds_composite_children(clock: VirtualClock) -> None:
    spec = ff.map(ff.map(act), timeout=0.01)
    result = ff.run_sync(spec, [[Action(hang=True)], [Action(value=2)]])
    assert [o.status for o in result.outcomes] == [ff.Status.TIMED_OUT, ff.Status.SUCCEEDED]


def test_an_agents_own_timeout_error_is_a_failure_not_a_timeout() -> None:
    def raises_timeout(_: object) -> None:
        raise TimeoutError("the agent's own")

    result = ff.run_sync(ff.map(raises_timeout), [1], timeouts=ff.Timeouts(task=5))
    assert result.outcomes[0].status is ff.Status.FAILED


def test_agent_level_settings_override_the_runs() -> None:
    @ff.agent(retry=ff.RetryPolicy(retry_on=ScriptedError, attempts=3, **FAST))
    async def flaky(action: Action, ctx: ff.Context) -> object:
        return await act.run(action, ctx)

    result = ff.run_sync(ff.map(flaky), [Action(value=1, fail_attempts=2)])
    assert result.outcomes[0].attempts == 3
