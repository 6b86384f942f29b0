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

3. Scale: a plan that splits 20k and 200k rows (the cap raised) under a run deadline of 5 s,
   members of 1 s at concurrency 500, each size in a fresh process. Targets: the deadline holds
   within a second, and the 200k peak RSS is within 3x the 20k peak (the runs are pulled by a
   window and made on demand; past 10,000 runs the runs never started are counted per subtask,
   not given an outcome each).
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
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


SCALE_DEADLINE = 5.0


def scale_child(n: int) -> None:
    """Run a team over ``n`` rows under the deadline; print the overrun and the peak RSS."""

    async def check(row: int) -> int:
        await asyncio.sleep(1.0)
        return row

    team = ff.team(scripted, {"member": check}, caps=ff.TeamCaps(max_subtasks=n))
    began = time.perf_counter()
    result = ff.run_sync(
        team, ff.Brief("check", list(range(n))), deadline=SCALE_DEADLINE, limits=ff.Limits(concurrency=500)
    )
    wall = time.perf_counter() - began
    answer = result.output  # None when the run's deadline cut the team before it merged
    done = -1 if answer is None else len(answer.results)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"overrun": wall - SCALE_DEADLINE, "peak_mb": peak_mb, "done": done, "status": result.status}))


def scale() -> None:
    title(f"team at scale: a split of 20k and 200k rows, deadline {SCALE_DEADLINE:g}s, members of 1 s")
    figures = {}
    for n in (20_000, 200_000):
        command = [sys.executable, __file__, "--scale", str(n)]
        figures[n] = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
        f = figures[n]
        info(
            f"{n:>8,} runs: {f['peak_mb']:6.1f} MB peak, {f['done']:,} done ({f['status']}), "
            f"overrun {f['overrun']:+.2f}s"
        )
    check("team at 200k: deadline overrun", max(figures[200_000]["overrun"], 0.0), 1.0, unit="s")
    check("team peak RSS 200k / 20k", figures[200_000]["peak_mb"] / figures[20_000]["peak_mb"], 3.0)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--scale"]:
        scale_child(int(sys.argv[2]))
    else:
        main()
        scale()
