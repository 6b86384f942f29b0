"""The shipped test doubles do what they say."""

import asyncio

import pytest

import fanfold as ff
from fanfold.testing import Action, ConcurrencyProbe, EventLog, ScriptedError, VirtualClock, act


def test_virtual_clock_makes_long_sleeps_instant_and_restores_the_loop_policy() -> None:
    before = asyncio.get_event_loop_policy()

    async def nap(x: int) -> int:
        await asyncio.sleep(3600)
        return x

    with VirtualClock() as clock:
        result = ff.run_sync(ff.map(nap, window=2), range(4))
    assert result.output == [0, 1, 2, 3]
    assert clock.now == pytest.approx(7200)  # two waves of an hour, on the virtual clock
    assert asyncio.get_event_loop_policy() is before


def test_virtual_clock_still_waits_for_real_work_in_threads() -> None:
    def blocking(x: int) -> int:
        return x * 2

    with VirtualClock():
        assert ff.run_sync(ff.map(blocking), [1, 2]).output == [2, 4]


def test_event_log_counts_statuses_and_peak_running() -> None:
    log = EventLog()

    async def step(x: int) -> int:
        await asyncio.sleep(0)
        return x

    ff.run_sync(ff.map(step), range(6), limits=ff.Limits(concurrency=3), on_event=log)
    assert log.statuses()[ff.Status.SUCCEEDED] == 7  # six inputs and the map itself
    assert log.max_running() == 4  # three leaves at the limit, and the map around them


def test_act_scripts_failures_then_success() -> None:
    policy = ff.RetryPolicy(retry_on=ScriptedError, attempts=3, initial=0)
    result = ff.run_sync(act, Action(value="v", fail_attempts=2), retry=policy)
    assert result.output == "v"
    assert result.outcomes[0].attempts == 3


def test_probe_tracks_peaks_per_resource() -> None:
    probe = ConcurrencyProbe()

    async def main() -> None:
        async with probe.inside("a"), probe.inside("a", "b"):
            assert probe.now == 2

    asyncio.run(main())
    assert (probe.peak, probe.peaks["a"], probe.peaks["b"], probe.now) == (2, 2, 1, 0)
