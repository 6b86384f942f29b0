"""Property-based tests for the invariants in DESIGN.md."""

import asyncio
import os
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fanfold as ff
from fanfold.testing import Action, ConcurrencyProbe, EventLog, VirtualClock, act

SETTINGS = settings(
    max_examples=int(os.environ.get("FANFOLD_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

action = st.one_of(
    st.builds(Action, value=st.integers(0, 9), yields=st.integers(0, 3)),
    st.builds(Action, fail_attempts=st.sampled_from([-1, 1]), yields=st.integers(0, 2)),
    st.builds(Action, hang=st.just(True)),
    st.builds(Action, skip=st.just(True)),
)
policies = st.sampled_from([ff.Collect(), ff.FailFast(), ff.MaxFailures(1), ff.Quorum(2), ff.MaxFailureRate(0.3, 3)])


@SETTINGS
@given(
    actions=st.lists(action, max_size=25),
    policy=policies,
    window=st.integers(1, 6),
    concurrency=st.integers(1, 4),
    retry=st.booleans(),
    deadline=st.one_of(st.none(), st.floats(0.001, 0.01)),
)
def test_every_input_ends_in_exactly_one_outcome_in_input_order(
    actions: list[Action],
    policy: ff.FailurePolicy,
    window: int,
    concurrency: int,
    retry: bool,
    deadline: float | None,
) -> None:
    log = EventLog()
    options: dict[str, object] = {
        "limits": ff.Limits(concurrency=concurrency),
        "timeouts": ff.Timeouts(task=0.003),
        "on_event": log,
        "deadline": deadline,
    }
    if retry:
        options["retry"] = ff.RetryPolicy(retry_on=RuntimeError, attempts=2, initial=0.001, max_delay=0.002)
    try:
        with VirtualClock():  # timeouts, backoffs and the deadline race in a deterministic order
            result = ff.run_sync(ff.map(act, policy=policy, window=window), actions, **options)
    except ff.RunFailed as failed:
        result = failed.result
    outcomes = result.outcomes
    assert [o.index for o in outcomes] == list(range(len(actions)))
    assert sum(result.summary.counts.values()) == result.summary.total == len(actions)
    assert Counter(o.status for o in outcomes) == Counter({s: n for s, n in result.summary.counts.items() if n})
    for outcome, planned in zip(outcomes, actions, strict=True):
        if outcome.ok:
            assert outcome.value == planned.value
            assert not planned.hang
            assert not planned.skip
        if planned.hang:
            assert outcome.status is not ff.Status.SUCCEEDED
    # the events agree: one terminal event per top-level input, none twice
    top = Counter(e.path for e in log.finished() if e.path.startswith("map["))
    assert set(top.values()) <= {1}
    assert len(top) == len(actions)


@SETTINGS
@given(
    shape=st.lists(st.lists(st.integers(0, 3), max_size=5), max_size=6),
    concurrency=st.integers(1, 3),
    db=st.integers(1, 2),
    inner_vote=st.booleans(),
)
def test_concurrency_never_exceeds_a_limit_and_nested_limits_never_deadlock(
    shape: list[list[int]], concurrency: int, db: int, inner_vote: bool
) -> None:
    probe = ConcurrencyProbe()

    @ff.agent(resources=["db"])
    async def query(yields: int) -> int:
        async with probe.inside("db"):
            for _ in range(yields):
                await asyncio.sleep(0)
        return yields

    @ff.agent
    async def think(yields: int) -> int:
        async with probe.inside():
            for _ in range(yields):
                await asyncio.sleep(0)
        return yields

    leaf = ff.parallel(query, think)
    inner = ff.vote(leaf, n=2, early_stop=False) if inner_vote else leaf
    spec = ff.map(ff.map(inner, window=3), window=2)
    result = ff.run_sync(spec, shape, limits=ff.Limits(concurrency=concurrency, resources={"db": db}))
    assert probe.peak <= concurrency
    assert probe.peaks["db"] <= db
    assert result.summary.counts[ff.Status.SUCCEEDED] == len(shape)
    assert probe.entered == sum(len(row) for row in shape) * 2 * (2 if inner_vote else 1)


@SETTINGS
@given(rows=st.integers(0, 6), per_row=st.integers(1, 4), cancel_after=st.integers(0, 20))
def test_no_task_is_left_running_after_a_cancel(rows: int, per_row: int, cancel_after: int) -> None:
    probe = ConcurrencyProbe()

    async def work(x: int) -> int:
        async with probe.inside():
            await asyncio.sleep(0)
            if x % 3 == 0:
                await asyncio.Event().wait()
        return x

    async def main() -> ff.Result[object]:
        inputs = [list(range(r * per_row, (r + 1) * per_row)) for r in range(rows)]
        async with ff.start(ff.map(ff.map(work)), inputs) as run:
            for _ in range(cancel_after):  # let the run get to some point, then cancel it there
                await asyncio.sleep(0)
            run.cancel()
            result = await run.result()
        assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
        return result

    result = asyncio.run(main())
    assert probe.now == 0
    assert len(result.outcomes) == rows
    assert sum(result.summary.counts.values()) == rows


@SETTINGS
@given(values=st.lists(st.integers(), max_size=40), window=st.integers(1, 8))
def test_map_preserves_input_order_for_any_completion_order(values: list[int], window: int) -> None:
    async def jittery(x: int) -> int:
        for _ in range(abs(x) % 4):
            await asyncio.sleep(0)
        return x

    assert ff.run_sync(ff.map(jittery, window=window), values).output == values


@SETTINGS
@given(
    answers=st.lists(st.sampled_from("abc"), min_size=1, max_size=9),
    delays=st.lists(st.integers(0, 4), min_size=9, max_size=9),
)
def test_stopping_a_vote_early_never_changes_its_decision(answers: list[str], delays: list[int]) -> None:
    async def sample(_: object, ctx: ff.Context) -> str:
        for _ in range(delays[ctx.index]):  # samples finish in a random order
            await asyncio.sleep(0)
        return answers[ctx.index]

    early = ff.run_sync(ff.vote(sample, n=len(answers)), None).output
    full = ff.run_sync(ff.vote(sample, n=len(answers), early_stop=False), None).output
    assert early == full == majority(answers)


def majority(answers: list[str]) -> str:
    counts = Counter(answers)
    best = max(counts.values())
    return next(a for a in answers if counts[a] == best)  # ties: first in sample order
