"""A team at scale: a plan of many runs holds a window of tasks, and its deadline holds."""

from __future__ import annotations

import asyncio
from typing import Any

import fanfold as ff
from fanfold._teams._schedule import Schedule
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
    assert len(answer.results) + len(answer.missing) == N
    assert not answer.complete
    assert 0 < len(answer.results) <= 18 * 500
    assert most <= 500
    assert max(tasks_alive) < 2_000  # a window of workers, not a task per run
