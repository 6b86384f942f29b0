"""The leaf boundary: one retry rule for every kind of leaf call, and one admitted-call path
that a new kind of leaf plugs into (here a made-up "remote" kind, as a backend would add)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest

import fanfold as ff
from fanfold import events
from fanfold._leaf import LeafCall, call_leaf
from fanfold.testing import Action, ConcurrencyProbe, EventLog, ScriptedError, VirtualClock, act

FAST = {"initial": 0.0, "max_delay": 0.0}


# -- the retry rule for function agents: its own, else the run's, else SIGNALS_ONLY -------------


def test_a_function_agent_with_no_policy_of_its_own_takes_the_runs() -> None:
    run_policy = ff.RetryPolicy(retry_on=ScriptedError, attempts=4, **FAST)
    result = ff.run_sync(ff.map(act), [Action(value=1, fail_attempts=3)], retry=run_policy)
    assert result.outcomes[0].status is ff.Status.SUCCEEDED
    assert result.outcomes[0].attempts == 4


def test_a_function_agents_own_policy_wins_over_the_runs() -> None:
    own = ff.agent(act.fn, retry=ff.RetryPolicy(retry_on=ScriptedError, attempts=2, **FAST))
    run_policy = ff.RetryPolicy(retry_on=ScriptedError, attempts=5, **FAST)
    result = ff.run_sync(ff.map(own), [Action(value=1, fail_attempts=3)], retry=run_policy)
    assert result.outcomes[0].status is ff.Status.FAILED
    assert result.outcomes[0].attempts == 2


def test_with_no_policy_anywhere_a_function_agent_retries_only_signals() -> None:
    result = ff.run_sync(ff.map(act), [Action(value=1, fail_attempts=1)])
    assert result.outcomes[0].status is ff.Status.FAILED
    assert result.outcomes[0].attempts == 1


def test_a_function_agents_own_timeouts_win_over_the_runs(clock: VirtualClock) -> None:
    own = ff.agent(act.fn, timeouts=ff.Timeouts(task=2))
    result = ff.run_sync(ff.map(own), [Action(hang=True)], timeouts=ff.Timeouts(task=50))
    assert result.outcomes[0].status is ff.Status.TIMED_OUT
    assert str(result.outcomes[0].error) == "TaskTimeout: task timed out after 2s"
    assert clock.now == pytest.approx(2)


# -- a new kind of leaf plugs into the same path ------------------------------------------------


class Flaky(ConnectionError):
    pass


class Remote(LeafCall):
    """A made-up kind: a remote call on the resource "remote" that spends 10 tokens of the
    budget, fails its first attempt, and is retried by its kind's default policy."""

    __slots__ = ("probe", "value")

    default_retry = ff.RetryPolicy(retry_on=Flaky, attempts=3, initial=0.0, max_delay=0.0)

    def __init__(self, ctx: ff.Context, value: int, probe: ConcurrencyProbe) -> None:
        super().__init__(ctx, ("remote",))
        self.value = value
        self.probe = probe

    def begin(self) -> tuple[float, float]:
        return 10.0, 0.0

    def send(self) -> Awaitable[Any]:
        return self._send()

    async def _send(self) -> int:
        async with self.probe.inside("remote"):
            for _ in range(3):
                await asyncio.sleep(0)  # give way: other calls get their chance to overlap
            if self.attempt == 1:
                raise Flaky("dropped")
            return self.value * 2

    def answered(self, result: Any) -> None:
        self.spent = ff.Usage(requests=1, input_tokens=10)

    def failed(self, exc: BaseException) -> None:
        if self.began is not None:  # it went out: the request counts
            self.spent = ff.Usage(requests=1)


class CallsRemote:
    """A composite (it holds no slot) making one remote call per input, as an LLM agent makes
    model requests."""

    composite = True

    def __init__(self) -> None:
        self.probe = ConcurrencyProbe()

    async def run(self, value: int, ctx: ff.Context) -> Any:
        return await call_leaf(Remote(ctx, value, self.probe))


def test_a_new_kind_of_leaf_is_admitted_retried_and_counted_by_the_boundary() -> None:
    remote = CallsRemote()
    log = EventLog()
    limits = ff.Limits(concurrency=8, resources={"remote": 2})
    result = ff.run_sync(ff.map(remote), range(6), limits=limits, on_event=log)
    assert result.output == [0, 2, 4, 6, 8, 10]
    assert remote.probe.peaks["remote"] == 2  # its resource's limit held
    assert result.summary.retries == 6  # its kind's default policy: one retry each
    assert result.summary.leaf_calls == 12  # every attempt admitted and counted
    assert len(log.of_type(events.TaskRetrying)) == 6
    # what each attempt spent is charged to its task and to the run
    assert all(o.usage == ff.Usage(requests=2, input_tokens=10) for o in result.outcomes)
    assert result.summary.usage == ff.Usage(requests=12, input_tokens=60)


def test_a_new_kind_of_leaf_reserves_from_the_budget_and_is_skipped_when_it_runs_out() -> None:
    remote = CallsRemote()
    result = ff.run_sync(ff.map(remote), range(6), budget=ff.Budget(requests=4), limits=ff.Limits(concurrency=1))
    # each input takes two requests (a failed one and its retry): two inputs fit in four
    assert [o.status for o in result.outcomes] == [ff.Status.SUCCEEDED] * 2 + [ff.Status.SKIPPED] * 4
    assert result.summary.usage.requests == 4


def test_the_runs_policy_replaces_a_kinds_default() -> None:
    remote = CallsRemote()
    result = ff.run_sync(ff.map(remote), [1], retry=ff.RetryPolicy(retry_on=ValueError, attempts=3))
    assert result.outcomes[0].status is ff.Status.FAILED
    assert isinstance(result.outcomes[0].exception, Flaky)
    assert result.summary.leaf_calls == 1


class Block(CallsRemote):
    """A composite that takes the admitted path around a block, as a stream does."""

    async def run(self, value: int, ctx: ff.Context) -> Any:
        async with Remote(ctx, value, self.probe) as leaf, self.probe.inside("remote"):
            if value < 0:
                raise ScriptedError("broken stream")
            leaf.answered(value)
        return value


def test_a_block_takes_the_same_path_once_and_is_not_retried() -> None:
    block = Block()
    result = ff.run_sync(
        ff.map(block),
        [1, -1, 2],
        limits=ff.Limits(resources={"remote": 1}),
        budget=ff.Budget(tokens=1_000),
        retry=ff.RetryPolicy(retry_on=ScriptedError, attempts=3),
    )
    assert [o.status for o in result.outcomes] == [ff.Status.SUCCEEDED, ff.Status.FAILED, ff.Status.SUCCEEDED]
    assert result.summary.retries == 0
    assert result.summary.leaf_calls == 3
    assert block.probe.peaks["remote"] == 1
    # the failed block went out and counts; every reservation was settled
    assert result.summary.usage == ff.Usage(requests=3, input_tokens=20)
