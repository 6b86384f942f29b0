"""Unknown limit: fanfold is told nothing, and the provider changes its limit mid-run.

The simulated provider allows 1,200 requests/min; fanfold has no limit configured and learns it
from the rate-limit headers (and its 429s). 15 s in, the provider halves the limit; 20 s later it
restores it. Targets: >= 90% of the new limit reached within 10 s of each change, <= 2% of calls
answered 429, none failed. Then the same with a provider that sends no rate-limit headers: only
its 429s teach fanfold, judged by when the refused calls were sent. A provider past its limit
refuses everything that arrives, so calls refused in a row are the limit met (three, where 429s
are otherwise rare); while paced, so is the first 429 after 24 calls sent without one. The first
breach ends the adaptive-concurrency start; from then on fanfold paces requests at a rate learnt
at each breach (the calls the provider accepted since the last one), climbs back to it in 3 s
and probes beyond. The provider charges refused requests (as OpenAI does), so every 429 costs a
request. The 429s are split into those spent finding the limit (before it is halved) and the
rest.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import fanfold as ff
from _common import SimulatorProcess, check, info, title

CALLS = 900
RPM, HALVED = 1_200, 600
HALVE_AT, RESTORE_AT = 15.0, 35.0
SIM_ARGS = ("--rpm", str(RPM), "--latency", "0.5", "--latency-sigma", "0.3", "--output-tokens", "30", "--seed", "2")


async def run(sim: SimulatorProcess) -> tuple[ff.Result[Any], float, float]:
    agent = ff.llm("openai-chat:sim-1", base_url=sim.openai_base_url, api_key="sk-bench")

    async def change_limits() -> tuple[float, float]:
        await asyncio.sleep(HALVE_AT)
        halved = time.time()
        await asyncio.to_thread(sim.set_limits, requests_per_minute=HALVED)
        await asyncio.sleep(RESTORE_AT - HALVE_AT)
        restored = time.time()
        await asyncio.to_thread(sim.set_limits, requests_per_minute=RPM)
        return halved, restored

    async with asyncio.TaskGroup() as group:
        changes = group.create_task(change_limits())
        result = await ff.run(ff.map(agent), (f"question {i}" for i in range(CALLS)))
    halved, restored = changes.result()
    return result, halved, restored


def reached(timeline: list[int], since: int, per_second: float) -> float | None:
    """Seconds from ``since`` to the first whole second that served >= 90% of ``per_second``."""
    for second in range(since, len(timeline) - 1):
        if timeline[second] >= 0.9 * per_second:
            return float(second - since + 1)
    return None


def main() -> None:
    for headers in os.environ.get("HEADERS", "--rate-limit-headers,--no-rate-limit-headers").split(","):
        case(headers)


def case(headers: str) -> None:
    said = "with" if headers == "--rate-limit-headers" else "without"
    title(
        f"unknown limit, {said} rate-limit headers: {CALLS} calls, {RPM} requests/min halved at {HALVE_AT:g}s, "
        f"restored at {RESTORE_AT:g}s"
    )
    with SimulatorProcess(*SIM_ARGS, headers) as sim:
        result, halved, restored = asyncio.run(run(sim))
        stats = sim.stats()
    timeline = list(stats["timeline_ok"])
    first = stats["first_arrival"]
    # The first whole second after each change (the timeline counts seconds from the first request).
    halve_second, restore_second = int(halved - first) + 1, int(restored - first) + 1
    to_half = reached(timeline, halve_second, HALVED / 60)
    to_full = reached(timeline, restore_second, RPM / 60)
    rejected = stats["by_status"].get("429", 0)
    info(f"fanfold: {result.summary}")
    info(f"requests served per second: {timeline}")
    info(f"429s per second: {list(stats['timeline_429'])}")
    early = sum(list(stats["timeline_429"])[:halve_second])
    info(
        f"{rejected} of {stats['requests']} requests answered 429: {early} while finding the limit "
        f"(before it was halved), {rejected - early} after"
    )
    check("seconds to 90% of the halved limit", to_half if to_half is not None else 99.0, 10.0, unit="s")
    check("seconds to 90% of the restored limit", to_full if to_full is not None else 99.0, 10.0, unit="s")
    check("calls answered 429", rejected / CALLS * 100, 2.0, unit="%")
    check("calls failed", result.summary.failed + result.summary.counts[ff.Status.TIMED_OUT], 0, unit="")


if __name__ == "__main__":
    main()
