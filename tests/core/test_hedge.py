"""Hedging (ff.Hedge): a backup call for a slow leaf call, timed from its admission, capped per
run, through the one leaf boundary; the first success wins and the loser is cancelled and counted.
Timings run on a virtual clock: sleeps take no real time and happen in a deterministic order."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction
from math import ceil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fanfold as ff
from fanfold import events
from fanfold._hedge import Book, quantile_of
from fanfold.testing import EventLog, VirtualClock


class Straggler:
    """An agent whose first call on some inputs is slow; later calls (a backup) are fast.
    It counts calls, and calls cancelled (the losers)."""

    def __init__(self, slow: set[int], fast: float = 1.0, slow_for: float = 100.0) -> None:
        self.slow, self.fast, self.slow_for = slow, fast, slow_for
        self.calls: Counter[int] = Counter()
        self.cancelled = 0

    async def __call__(self, x: int) -> int:
        self.calls[x] += 1
        try:
            await asyncio.sleep(self.slow_for if x in self.slow and self.calls[x] == 1 else self.fast)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return x * 10


def test_a_call_waiting_for_admission_triggers_no_backup(clock: VirtualClock) -> None:
    # Concurrency 1: input 9 waits 9 s to be admitted, far past the 2 s trigger; each call then
    # runs 1 s. Timed from admission, nothing is hedged.
    straggler = Straggler(slow=set())
    hedged = ff.agent(straggler, hedge=ff.Hedge(after=2.0, max_extra=1.0))
    result = ff.run_sync(ff.map(hedged), range(10), limits=ff.Limits(concurrency=1))
    assert result.output == [x * 10 for x in range(10)]
    assert result.summary.hedges == 0
    assert sum(straggler.calls.values()) == 10 == result.summary.leaf_calls
    assert clock.now == pytest.approx(10.0)


def test_a_slow_call_is_hedged_the_backup_wins_and_the_loser_is_cancelled_and_counted(clock: VirtualClock) -> None:
    straggler = Straggler(slow={3, 7})
    log = EventLog()
    hedged = ff.agent(straggler, name="straggler", hedge=ff.Hedge(after=2.0, max_extra=0.5))
    result = ff.run_sync(ff.map(hedged), range(10), on_event=log)
    assert result.output == [x * 10 for x in range(10)]
    assert (result.summary.hedges, result.summary.hedges_won) == (2, 2)
    assert straggler.calls == Counter({x: 2 if x in (3, 7) else 1 for x in range(10)})
    assert straggler.cancelled == 2  # the slow first calls, cancelled when their backups answered
    assert result.summary.leaf_calls == 12  # the losers are counted
    assert clock.now == pytest.approx(3.0)  # 2 s to the trigger, 1 s for the backup
    started = log.of_type(events.HedgeStarted)
    assert sorted(e.path for e in started) == ["map[3]", "map[7]"]
    assert {e.resource for e in started} == {"agent:straggler"}
    assert [e.after for e in started] == [2.0, 2.0]
    assert sorted(e.path for e in log.of_type(events.HedgeWon)) == ["map[3]", "map[7]"]
    assert result.summary.as_dict()["hedges"] == 2


def test_a_backup_that_is_slower_loses_and_is_cancelled(clock: VirtualClock) -> None:
    calls = Counter[int]()

    async def second_is_slower(x: int) -> str:
        calls[x] += 1
        n = calls[x]
        await asyncio.sleep(3.0 if n == 1 else 50.0)
        return f"call {n}"

    hedged = ff.agent(second_is_slower, hedge=ff.Hedge(after=2.0, max_extra=None, max_hedges=5))
    result = ff.run_sync(ff.map(hedged), range(3))
    assert result.output == ["call 1"] * 3
    assert (result.summary.hedges, result.summary.hedges_won) == (3, 0)
    assert result.summary.leaf_calls == 6
    assert clock.now == pytest.approx(3.0)


def test_when_the_first_call_fails_the_backup_decides(clock: VirtualClock) -> None:
    calls = Counter[int]()

    async def first_fails_late(x: int) -> str:
        calls[x] += 1
        if calls[x] == 1:
            await asyncio.sleep(2.5)
            raise ValueError("first call failed")
        await asyncio.sleep(1.0)
        return "backup"

    hedged = ff.agent(first_fails_late, hedge=ff.Hedge(after=2.0, max_extra=None, max_hedges=1))
    result = ff.run_sync(ff.map(hedged), [1, 2])
    # Input 1 is hedged (the backup answers); input 2 finds the cap reached and fails.
    by_input = {o.index: o for o in result.outcomes}
    assert by_input[0].value == "backup"
    assert by_input[1].status is ff.Status.FAILED
    assert "first call failed" in str(by_input[1].error)
    assert result.summary.hedges_won == 1


def test_the_trigger_is_a_quantile_learnt_per_resource(clock: VirtualClock) -> None:
    # Calls take 1 s, one in ten of the first 20 takes 4 s; the 20 samples put p90 at 4 s...
    slow_at = {5, 15}
    calls = Counter[int]()

    async def work(x: int) -> int:
        calls[x] += 1
        first = calls[x] == 1
        await asyncio.sleep(4.0 if x in slow_at else 40.0 if x == 30 and first else 1.0)
        return x

    log = EventLog()
    hedge = ff.Hedge(after="p80", max_extra=1.0, min_samples=20)
    result = ff.run_sync(
        ff.map(ff.agent(work, resources=["db"]), hedge=hedge),
        range(31),
        limits=ff.Limits(concurrency=2),  # room for the backup
        on_event=log,
    )
    assert result.output == list(range(31))
    # Nothing is hedged before 20 calls are learnt; then p80 of (28 x 1 s, 2 x 4 s) is 1 s, and
    # only the 40 s straggler (input 30) runs past it.
    started = log.of_type(events.HedgeStarted)
    assert [(e.path, e.resource) for e in started] == [("map[30]", "db")]
    assert started[0].after == pytest.approx(1.0, abs=0.01)  # a call is late just past the quantile
    assert result.summary.hedges_won == 1


@settings(max_examples=40, deadline=None)
@given(
    slow=st.sets(st.integers(0, 59), max_size=60),
    after=st.sampled_from([2.0, 0.0, "p50", "p90"]),
    max_extra=st.sampled_from([0.0, 0.05, 0.1, 0.5]),
    max_hedges=st.none() | st.integers(0, 10),
)
def test_the_cap_holds_and_every_call_is_counted(
    slow: set[int], after: float | str, max_extra: float, max_hedges: int | None
) -> None:
    straggler = Straggler(slow=slow)
    hedge = ff.Hedge(after=after, max_extra=max_extra, max_hedges=max_hedges, min_samples=5)
    with VirtualClock():
        result = ff.run_sync(ff.map(ff.agent(straggler), hedge=hedge), range(60), limits=ff.Limits(concurrency=8))
    assert result.output == [x * 10 for x in range(60)]
    hedges = result.summary.hedges
    assert hedges <= max_extra * 60
    if max_hedges is not None:
        assert hedges <= max_hedges
    # Every call made is counted; a backup cancelled while it waited for admission made none.
    assert 60 <= sum(straggler.calls.values()) == result.summary.leaf_calls <= 60 + hedges
    assert result.summary.hedges_won <= hedges


def test_the_runs_hedge_applies_to_leaves_without_their_own(clock: VirtualClock) -> None:
    straggler = Straggler(slow={1})
    result = ff.run_sync(ff.map(straggler), range(4), hedge=ff.Hedge(after=2.0, max_extra=None, max_hedges=1))
    assert (result.summary.hedges, result.summary.hedges_won) == (1, 1)
    assert clock.now == pytest.approx(3.0)
    never = ff.agent(Straggler(slow={1}), hedge=ff.Hedge(after=2.0, max_hedges=0))  # its own wins
    run_hedge = ff.Hedge(after=2.0, max_extra=None, max_hedges=1)
    assert ff.run_sync(ff.map(never), range(4), hedge=run_hedge).summary.hedges == 0


def test_a_backup_waits_for_admission_like_any_call(clock: VirtualClock) -> None:
    straggler = Straggler(slow={0, 1, 2})
    hedge = ff.Hedge(after=2.0, max_extra=1.0)
    result = ff.run_sync(ff.map(ff.agent(straggler), hedge=hedge), range(3), limits=ff.Limits(concurrency=3))
    assert result.summary.hedges == 3
    # Concurrency 3, all three slow: the backups wait for admission like any call (they hold no
    # slot meanwhile), the first calls answer first, and every call that was made is counted.
    assert clock.now == pytest.approx(100.0)
    assert result.summary.hedges_won == 0
    assert sum(straggler.calls.values()) == result.summary.leaf_calls


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"after": "x95"}, "after='x95'"),
        ({"after": "p100"}, "after='p100'"),
        ({"after": -1}, "after=-1"),
        ({"max_extra": -0.1}, "max_extra=-0.1"),
        ({"max_hedges": 1.5}, "max_hedges=1.5"),
        ({"max_extra": None}, "no cap"),
        ({"min_samples": 0}, "min_samples=0"),
    ],
)
def test_bad_hedges_are_named(options: dict[str, object], message: str) -> None:
    with pytest.raises(ff.UsageError, match=message):
        ff.Hedge(**options)  # type: ignore[arg-type]


def test_hedge_must_be_a_hedge() -> None:
    with pytest.raises(ff.UsageError, match=r"map\(hedge=2.0\)"):
        ff.map(str.upper, hedge=2.0)  # type: ignore[arg-type]
    with pytest.raises(ff.UsageError, match=r"run\(hedge='p95'\)"):
        ff.run_sync(ff.map(str.upper), ["a"], hedge="p95")  # type: ignore[arg-type]


def test_a_backup_is_admitted_ahead_of_inputs_waiting_to_start(clock: VirtualClock) -> None:
    # Two slots, ten inputs in flight: eight wait for a slot while input 0 runs slow (100 s).
    # At 2.5 s its backup asks for a slot: it takes the next one freed (at 3 s), not the one
    # after the eight waiting inputs (at 9 s), and answers at 4 s.
    straggler = Straggler(slow={0})
    hedged = ff.agent(straggler, hedge=ff.Hedge(after=2.5, max_extra=None, max_hedges=1))
    result = ff.run_sync(ff.map(hedged), range(12), limits=ff.Limits(concurrency=2, window=10))
    assert result.output == [x * 10 for x in range(12)]
    assert (result.summary.hedges, result.summary.hedges_won) == (1, 1)
    first = result.outcomes[0]
    assert first.end is not None
    assert first.start is not None
    assert first.end - first.start == pytest.approx(4.0)


def test_the_first_answers_of_a_fan_out_do_not_set_the_trigger(clock: VirtualClock) -> None:
    # A hundred calls start together; call x answers at 1 + x/100 s, except three stragglers
    # (50 s); backups take 1 s. The first twenty answers are the fastest: their p95 (1.19 s)
    # would hedge average calls and spend the cap (5) before the stragglers are reached. A p95
    # needs 95% of the calls answered: only the calls past it are hedged, the stragglers too.
    calls = Counter[int]()
    stragglers = {97, 98, 99}

    async def work(x: int) -> int:
        calls[x] += 1
        await asyncio.sleep(50.0 if x in stragglers and calls[x] == 1 else 1.0 + x / 100 if calls[x] == 1 else 1.0)
        return x

    log = EventLog()
    hedge = ff.Hedge(after="p95", max_extra=0.05, min_samples=20)
    result = ff.run_sync(
        ff.map(ff.agent(work), hedge=hedge), range(100), limits=ff.Limits(concurrency=200), on_event=log
    )
    assert result.output == list(range(100))
    hedged = sorted(int(e.path[4:-1]) for e in log.of_type(events.HedgeStarted))
    assert stragglers <= set(hedged)
    assert min(hedged) >= 94  # only calls past the p95 of all of them
    assert result.summary.hedges <= 5
    assert clock.now < 4.0  # the stragglers' backups answered (the stragglers would take 50 s)


def test_calls_admitted_one_after_another_are_weighed_against_every_call_still_running(clock: VirtualClock) -> None:
    # Two hundred calls admitted a millisecond apart (a first stage staggers them), each taking
    # 1.0 to 1.1 s, three stragglers 50 s. The first twenty answers come while nearly every call
    # still runs: a call admitted early is as old as any, but the calls admitted a moment after
    # it are nearly as old, and they weigh too. Counting only the calls admitted before it spent
    # the cap (10) on average calls among the first fifty, and two stragglers were never hedged.
    calls = Counter[int]()
    stragglers = {50, 120, 180}

    def latency(x: int) -> float:
        return 1.0 + 0.1 * ((x * 0.6180339887) % 1.0)  # spread evenly over [1.0, 1.1)

    async def stagger(x: int) -> int:
        await asyncio.sleep(x / 1000)
        return x

    async def work(x: int) -> int:
        calls[x] += 1
        await asyncio.sleep(50.0 if x in stragglers and calls[x] == 1 else latency(x))
        return x

    log = EventLog()
    hedged_work = ff.agent(work, hedge=ff.Hedge(after="p95", max_extra=0.05, min_samples=20))
    result = ff.run_sync(
        ff.map(ff.sequence(ff.agent(stagger), hedged_work)), range(200), limits=ff.Limits(concurrency=500), on_event=log
    )
    assert result.output == list(range(200))
    hedged = {int(e.path[4:].split("]")[0]) for e in log.of_type(events.HedgeStarted)}
    assert stragglers <= hedged
    slowest = sorted(latency(x) for x in range(200))[int(0.9 * 200)]
    assert all(latency(x) >= slowest for x in hedged - stragglers)  # only calls in the slowest 10%
    assert clock.now < 5.0  # every straggler's backup answered


def test_a_thousand_calls_in_flight_are_watched_by_one_watcher(
    clock: VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The trigger is the same for every call of a resource and only its oldest calls can be
    # past it: the book looks at them a few dozen times in a wave of a thousand calls, not once
    # per call per answer (which costs the loop more than the hedge saves, as calls answer).
    looks = 0
    look = Book._look

    def counted(self: Book, watched: tuple[object, ff.Hedge]) -> None:
        nonlocal looks
        looks += 1
        look(self, watched)

    monkeypatch.setattr(Book, "_look", counted)

    calls = Counter[int]()

    async def work(x: int) -> int:
        calls[x] += 1
        await asyncio.sleep(10.0 if x % 50 == 7 and calls[x] == 1 else 1.0 + (x * 0.6180339887) % 0.2)
        return x

    hedge = ff.Hedge(after="p95", max_extra=0.05)
    result = ff.run_sync(ff.map(ff.agent(work), hedge=hedge), range(1000), limits=ff.Limits(concurrency=1000))
    assert result.summary.succeeded == 1000
    assert result.summary.hedges_won >= 20  # each straggler's backup answered first
    assert clock.now < 3.0
    assert looks <= 100


class _Asking:
    """A resource's book with answers (and calls still running) put in by hand."""

    def __init__(self, answers: list[float], running: Sequence[float] = ()) -> None:
        self.book = Book()
        for seconds in answers:
            self.book.admitted("r", 0.0)
            self.book.ended("r", 0.0, seconds)
        for began in running:
            self.book.admitted("r", began)

    def late(self, after: str, elapsed: float, now: float = 0.0) -> bool:
        """Whether a call that has run ``elapsed`` seconds by ``now`` is past the trigger."""
        trigger = self.book.trigger("r", quantile_of(after), now)
        return trigger is not None and elapsed > trigger


_quantiles = st.sampled_from(["p50", "p80", "p90", "p95", "p99"])
_latencies = st.lists(st.floats(0.01, 10.0), min_size=1, max_size=600)


@settings(max_examples=60, deadline=None)
@given(answers=_latencies, after=_quantiles)
def test_with_no_call_running_the_trigger_is_the_answers_own_quantile(answers: list[float], after: str) -> None:
    asking = _Asking(answers)
    latest = sorted(answers[-512:])  # the book keeps the latest 512
    quantile = latest[ceil(Fraction(after[1:]) / 100 * len(latest)) - 1]
    assert not asking.late(after, quantile)  # as slow as the quantile is not late...
    assert asking.late(after, quantile + 0.002)  # ...just past it is


@settings(max_examples=60, deadline=None)
@given(
    answers=_latencies,
    running=st.lists(st.floats(-100.0, 0.0), max_size=300),  # admitted before now (0)
    after=_quantiles,
    elapsed=st.floats(0.0, 12.0),
)
def test_calls_still_running_never_make_a_call_late_sooner(
    answers: list[float], running: list[float], after: str, elapsed: float
) -> None:
    # A running call is at least as slow as its time so far: it can only push the quantile out.
    if _Asking(answers, running).late(after, elapsed):
        assert _Asking(answers).late(after, elapsed)


def test_a_backup_that_answers_none_wins(clock: VirtualClock) -> None:
    calls = Counter[int]()

    async def none_at_last(x: int) -> None:
        calls[x] += 1
        await asyncio.sleep(100.0 if calls[x] == 1 else 1.0)

    hedged = ff.agent(none_at_last, hedge=ff.Hedge(after=2.0, max_extra=None, max_hedges=1))
    result = ff.run_sync(ff.map(hedged), [0])
    assert result.output == [None]
    assert result.summary.hedges_won == 1
    assert clock.now == pytest.approx(3.0)
