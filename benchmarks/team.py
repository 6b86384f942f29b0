"""Team: a leader delegating 50 tasks of 200 ms to one member, against a hand-written ``ff.map``
over the same 50 calls.

1. Planned: a scripted leader returns a plan with one subtask split ``each`` over the 50 tasks.
2. Delegated: an ``ff.llm`` leader (pydantic-ai's ``FunctionModel``, no network) answers with 50
   ``delegate`` tool calls to the same member in one response, then with its final answer.

The baseline is ``ff.map(member)`` over the same 50 inputs, timed in the same run, with the same
limits and an event log attached. A team's time excludes its planning: it is the whole run's
time less the span from the run's start to the first delegation being queued (the planning call,
or the leader's first model call). Targets: team / map <= 1.1, and >= 45 delegations running at
once, counted from the events. Each timing is the best of 3, interleaved.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

import fanfold as ff
from _common import check, info, title
from fanfold import events
from fanfold.testing import EventLog

N = 50
LATENCY = 0.200
REPEATS = 3
LIMITS = ff.Limits(concurrency=64)


async def member(task: str) -> str:
    await asyncio.sleep(LATENCY)
    return f"done {task}"


TASKS = [f"task {i}" for i in range(N)]


async def scripted(request: ff.PlanRequest) -> dict[str, Any]:
    return {"subtasks": [{"id": "member", "member": "member", "split": {"by": "each"}}]}


def delegating(messages: list[ModelMessage], agent: AgentInfo) -> ModelResponse:
    last = messages[-1]
    if isinstance(last, ModelRequest) and any(isinstance(p, ToolReturnPart) for p in last.parts):
        return ModelResponse(parts=[TextPart("all done")])
    return ModelResponse(parts=[ToolCallPart("delegate", {"member": "member", "task": task}) for task in TASKS])


Measure = tuple[float, int]  # seconds (planning excluded), most delegations at once


async def run_map() -> Measure:
    log = EventLog()
    began = time.perf_counter()
    result = await ff.run(ff.map(member), TASKS, limits=LIMITS, on_event=log)
    elapsed = time.perf_counter() - began
    assert result.summary.succeeded == N, result.summary
    return elapsed, log.max_running("map")


async def run_team(team: Any, input: Any) -> Measure:
    log = EventLog()
    began = time.perf_counter()
    result = await ff.run(team, input, limits=LIMITS, on_event=log)
    elapsed = time.perf_counter() - began
    assert len(result.output.results) == N, result.output
    first = next(e.at for e in log.of_type(events.TaskQueued) if e.path.startswith("member["))
    return elapsed - first, log.max_running("member")


def best(runs: dict[str, Callable[[], Awaitable[Measure]]]) -> dict[str, Measure]:
    """Each run's best time of ``REPEATS``, interleaved so that drift hits all alike; and its
    least concurrency seen."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    peaks: dict[str, list[int]] = {name: [] for name in runs}
    for _ in range(REPEATS):
        for name, run in runs.items():
            seconds, peak = asyncio.run(run())
            times[name].append(seconds)
            peaks[name].append(peak)
    return {name: (min(times[name]), min(peaks[name])) for name in runs}


def main() -> None:
    title(f"team: a leader delegating {N} tasks of {LATENCY * 1e3:.0f} ms to one member, vs ff.map")
    planned = ff.team(scripted, [member])
    delegated = ff.team(ff.llm(FunctionModel(delegating), name="leader"), [member], mode="delegate")
    figures = best(
        {
            "map": run_map,
            "planned": lambda: run_team(planned, ff.Brief("do every task", TASKS)),
            "delegated": lambda: run_team(delegated, "do every task"),
        }
    )
    baseline, _ = figures["map"]
    info(f"baseline: ff.map over the {N} calls {baseline:.3f}s (ideal {LATENCY:.3f}s)")
    for name in ("planned", "delegated"):
        seconds, peak = figures[name]
        info(f"{name}: {seconds:.3f}s after planning, {peak} delegations running at once")
    for name in ("planned", "delegated"):
        seconds, peak = figures[name]
        check(f"{name} team / map", seconds / baseline, 1.1)
        print(f"{'PASS' if peak >= 45 else 'MISS'} {name} team: delegations at once: {peak} (target >= 45)", flush=True)


if __name__ == "__main__":
    main()
