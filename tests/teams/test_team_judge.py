"""A team's plan is judged as every fan-out is: for the same outcomes in the same order, a map
and a team reach the same verdict, and every run ends in the same outcome. And the teams wing
stays light: it imports neither the LLM wing nor pydantic-ai."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fanfold as ff

SETTINGS = settings(
    max_examples=int(os.environ.get("FANFOLD_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

policies = st.one_of(
    st.just(ff.Collect()),
    st.just(ff.FailFast()),
    st.builds(ff.MaxFailures, st.integers(0, 3)),
    st.builds(ff.MaxFailureRate, st.sampled_from([0.0, 0.25, 0.5]), st.integers(1, 4)),
    st.builds(ff.Quorum, st.integers(1, 5)),
)


class Turns(ff.FailurePolicy):
    """A policy around another that has runs end in order: run ``i`` ends only once the judge
    has looked at the outcome of run ``i - 1``."""

    def __init__(self, inner: ff.FailurePolicy, size: int) -> None:
        self.inner = inner
        self.turns = [asyncio.Event() for _ in range(size)]
        if self.turns:
            self.turns[0].set()

    def check(self, tally: ff.Tally, *, final: bool) -> ff.Verdict | None:
        if not final and tally.finished < len(self.turns):
            self.turns[tally.finished].set()
        return self.inner.check(tally, final=final)

    async def end(self, script: list[str], i: int) -> int:
        """Run ``i``, ended as ``script[i]`` says once its turn comes."""
        await self.turns[i].wait()
        if script[i] == "fail":
            raise ValueError(f"run {i} failed")
        if script[i] == "timeout":
            raise ff.TaskTimeout(f"run {i} timed out")
        if script[i] == "skip":
            raise ff.Skip(f"run {i} not needed")
        return 10 * i


def outcome_of(spec: Any, given: Any) -> tuple[ff.Result[Any], list[ff.Outcome[Any]]]:
    """The run's result, and the fan-out's outcomes (a team's runs are inside its one outcome)."""
    try:
        result = ff.run_sync(spec, given)
    except ff.RunFailed as failed:
        result = failed.result
    if isinstance(result.exception, ff.FanoutFailed):
        return result, result.exception.outcomes
    if isinstance(result.output, ff.TeamResult):
        return result, result.output.outcomes
    return result, result.outcomes


@SETTINGS
@given(script=st.lists(st.sampled_from(["ok", "fail", "timeout", "skip"]), min_size=1, max_size=10), policy=policies)
def test_a_map_and_a_team_reach_the_same_verdict_for_the_same_outcomes(
    script: list[str], policy: ff.FailurePolicy
) -> None:
    size = len(script)
    mapped = Turns(policy, size)

    async def work(i: int) -> int:
        return await mapped.end(script, i)

    as_map, map_outcomes = outcome_of(ff.map(work, policy=mapped, window=size), list(range(size)))

    planned = Turns(policy, size)

    async def member(i: int) -> int:
        return await planned.end(script, i)

    def plan(request: ff.PlanRequest) -> dict[str, Any]:
        return {"subtasks": [{"id": "run", "member": "member", "split": {"by": "each"}}]}

    team = ff.team(plan, [member], policy=planned)
    as_team, team_outcomes = outcome_of(team, ff.Brief("", list(range(size))))

    assert len(map_outcomes) == len(team_outcomes) == size
    assert [(o.status, o.reason) for o in map_outcomes] == [(o.status, o.reason) for o in team_outcomes]
    assert as_map.status is as_team.status
    if as_map.status is ff.RunStatus.FAILED:
        assert str(as_map.exception).removeprefix("map failed: ") == str(as_team.exception).removeprefix(
            "team failed: "
        )
        assert type(as_map.exception.__cause__) is type(as_team.exception.__cause__)
    else:
        assert isinstance(as_team.output, ff.TeamResult)
        assert as_team.output.answer == as_map.output


def test_the_teams_wing_imports_neither_the_llm_wing_nor_pydantic_ai() -> None:
    # fanfold/__init__ imports every wing; the teams modules are imported here on their own.
    src = Path(ff.__file__).parent
    script = f"""
import sys, types
package = types.ModuleType("fanfold")
package.__path__ = [{str(src)!r}]
sys.modules["fanfold"] = package
import fanfold._teams._team, fanfold._teams._delegate, fanfold._teams._schedule
heavy = sorted(m for m in sys.modules if m.split(".")[0] == "pydantic_ai" or m.startswith("fanfold._llm"))
print(heavy)
"""
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"
