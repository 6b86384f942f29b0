"""A team at scale: a plan of many runs holds a window of tasks, and its deadline holds."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fanfold as ff
from fanfold._teams._plan import Work, check_plan
from fanfold._teams._schedule import DETAIL, Schedule
from fanfold.testing import VirtualClock

N = 200_000


def splitter(request: ff.PlanRequest) -> dict[str, Any]:
    return {"subtasks": [{"id": "check", "member": "check", "split": {"by": "each"}}]}


async def check(row: int) -> int:
    await asyncio.sleep(1.0)
    return row


def test_a_plan_of_200k_runs_keeps_its_deadline_and_a_bounded_window(monkeypatch: Any) -> None:
    most = 0
    running = 0

    async def counted(row: int) -> int:
        nonlocal most, running
        running += 1
        most = max(most, running)
        try:
            return await check(row)
        finally:
            running -= 1

    tasks_alive: list[int] = []
    run = Schedule.run

    async def watched(self: Schedule) -> Any:
        async def sample() -> None:
            while True:
                tasks_alive.append(len(asyncio.all_tasks()))
                await asyncio.sleep(0.5)

        sampler = asyncio.get_running_loop().create_task(sample())
        try:
            return await run(self)
        finally:
            sampler.cancel()

    monkeypatch.setattr(Schedule, "run", watched)
    team = ff.team(splitter, {"check": counted}, caps=ff.TeamCaps(max_subtasks=N))
    with VirtualClock() as clock:
        result = ff.run_sync(
            team, ff.Brief("check each", list(range(N))), deadline=20, limits=ff.Limits(concurrency=500)
        )
    answer = result.output
    # The team stops at its cutoff (a tenth of the time left kept to merge), inside the deadline.
    assert clock.now <= 20
    # Every run ends in exactly one outcome, counted; the runs never started are one range.
    assert sum(answer.counts.values()) == N
    assert answer.counts[ff.Status.SUCCEEDED] == len(answer.results)
    started = len(answer.results) + len(answer.missing) - 1
    assert answer.missing[f"check[{started}:{N}]"].startswith("timed_out: the team's deadline passed")
    assert answer.outcomes == []  # past DETAIL runs, no outcome per run
    assert not answer.complete
    assert 0 < len(answer.results) <= 18 * 500
    assert most <= 500
    assert max(tasks_alive) < 2_000  # a window of workers, not a task per run


def test_a_plan_expands_its_runs_on_demand() -> None:
    rows = list(range(2_000_000))
    members = {"check": check}
    caps = ff.TeamCaps(max_subtasks=len(rows))
    plan = {"subtasks": [{"id": "check", "member": "check", "split": {"by": "each"}}]}
    _, (runs,) = check_plan(plan, members=members, rows=rows, caps=caps, llm_leader=False)
    assert len(runs) == len(rows)
    assert runs.parts is rows  # checked by its count: no part, no run made yet
    assert runs.work(1_999_999) == Work("check", 1_999_999, "check", "", 1_999_999, (), False, True)
    chunked = {"subtasks": [{"id": "check", "member": "check", "split": {"by": "chunks", "size": 3}}]}
    _, (runs,) = check_plan(chunked, members=members, rows=rows, caps=caps, llm_leader=False)
    assert len(runs) == 666_667
    assert runs.work(666_666).input == [1_999_998, 1_999_999]


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.integers(), max_size=40), size=st.integers(1, 12), index=st.integers(-50, 50))
def test_chunks_are_the_slices_of_the_rows(rows: list[int], size: int, index: int) -> None:
    slices = [rows[i : i + size] for i in range(0, len(rows), size)]
    chunks = ff.Split(by="chunks", size=size).parts(rows)
    assert len(chunks) == len(slices)
    assert list(chunks) == slices == ff.Split(by="chunks", size=size).apply(rows)
    if -len(slices) <= index < len(slices):
        assert chunks[index] == slices[index]
    else:
        with pytest.raises(IndexError):
            chunks[index]


def small_team_stopped_by_its_deadline(n: int) -> ff.TeamResult[Any]:
    team = ff.team(splitter, {"check": check}, caps=ff.TeamCaps(max_subtasks=n), deadline=2.5)
    with VirtualClock():
        return ff.run_sync(team, ff.Brief("check each", list(range(n))), limits=ff.Limits(concurrency=10)).output


def test_a_plan_within_detail_keeps_one_outcome_per_run() -> None:
    answer = small_team_stopped_by_its_deadline(DETAIL)
    assert len(answer.outcomes) == len(answer.results) + len(answer.missing) == DETAIL
    assert answer.counts == {ff.Status.SUCCEEDED: 20, ff.Status.TIMED_OUT: DETAIL - 20}
    assert answer.missing[f"check[{DETAIL - 1}]"] == "timed_out: the team's deadline passed before it could start"


def test_past_detail_the_runs_never_started_are_counted_as_one_range() -> None:
    answer = small_team_stopped_by_its_deadline(DETAIL + 1)
    assert answer.outcomes == []
    assert answer.counts == {ff.Status.SUCCEEDED: 20, ff.Status.TIMED_OUT: DETAIL - 19}
    assert len(answer.results) == 20
    # the 10 runs cut while running, one each; then the runs never pulled, as one range
    assert list(answer.missing)[:10] == [f"check[{i}]" for i in range(20, 30)]
    assert answer.missing[f"check[30:{DETAIL + 1}]"] == (
        f"timed_out: the team's deadline passed before it could start ({DETAIL + 1 - 30:,} runs)"
    )
