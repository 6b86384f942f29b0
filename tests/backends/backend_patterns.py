"""The same patterns on any backend: a map, a vote and a team whose members are sync function
agents, each checked against what it gives on threads."""

from __future__ import annotations

import os
from typing import Any

import backend_work as work

import fanfold as ff


class Scripted:
    """A leader in plain code (it stays on the driver: a team is a composite)."""

    def __init__(self, plan: Any) -> None:
        self.plan = plan

    async def __call__(self, request: ff.PlanRequest) -> Any:
        return self.plan


def check_map_vote_and_team(backend: Any) -> None:
    mapped = ff.run_sync(ff.map(work.double), range(20), backend=backend)
    assert mapped.output == [2 * i for i in range(20)]
    assert mapped.summary.succeeded == 20

    pids = ff.run_sync(ff.map(work.pid), range(8), backend=backend).output
    assert os.getpid() not in pids  # the work ran elsewhere

    voted = ff.run_sync(ff.vote(work.pick, n=5), 3, backend=backend)
    assert voted.output == "yes"

    plan = {
        "subtasks": [
            {"id": "doubled", "member": "double", "split": {"by": "each"}},
            {"id": "where", "member": "pid", "input": 0},
        ]
    }
    teamed = ff.run_sync(ff.team(Scripted(plan), [work.double, work.pid]), ff.Brief("go", [1, 2, 3]), backend=backend)
    answer = teamed.output.answer
    assert answer[:3] == [2, 4, 6]
    assert answer[3] != os.getpid()
    assert teamed.output.complete
