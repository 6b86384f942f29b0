"""Fan-out: 10,000 model calls of 1 s at 2,000 at once, where the client's CPU is the limit.

The simulated provider runs in its own process (2 cores are shared by both). Measured in one run,
interleaved, best of three (garbage collection makes single runs vary by about 0.5 ms of CPU per
call): the same calls made directly through pydantic-ai, once with ``Agent.run`` and once with
its direct API (``pydantic_ai.direct.model_request``, the request fanfold sends for an agent with
no tools and text output), both semaphore-gated on the SDK's aiohttp transport; then through
fanfold (``ff.map`` of ``ff.llm``); then raw SDK calls on the OpenAI SDK's default transport and
on its aiohttp one. Targets: fanfold adds <= 100 us of CPU per call over direct pydantic-ai (both
ways are checked), and serves >= 3x the requests/s of the default transport. The fraction of the
ideal throughput (2,000 calls/s) is reported.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import openai
from pydantic_ai import Agent, ModelRequest
from pydantic_ai.direct import model_request
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

import fanfold as ff
from _common import SimulatorProcess, check, gated_gather, info, title

CALLS = int(os.environ.get("CALLS", "10000"))
BASELINE_CALLS = CALLS * 2 // 5  # the default transport is slow: fewer calls give its rate as well
CONCURRENCY = 2_000
REPEATS = 3
LATENCY = 1.0
# The baselines make no retries, and with 2,000 calls queued on a CPU-bound loop a new connection
# can take longer than the SDK's default 5 s to connect: wait for it rather than fail the run.
PATIENT = openai.Timeout(600.0, connect=120.0)
SIM_ARGS = ("--latency", str(LATENCY), "--latency-distribution", "fixed", "--output-tokens", "20")


def prompts(n: int) -> list[str]:
    return [f"Label ticket #{i}: the nightly export stalls." for i in range(n)]


def measure(main: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """Wall seconds and process CPU seconds of ``main()`` on a fresh event loop."""

    async def clocked() -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        await main()
        return time.perf_counter() - wall, time.process_time() - cpu

    return asyncio.run(clocked())


def sdk_client(sim: SimulatorProcess, http_client: Any) -> openai.AsyncOpenAI:
    """The OpenAI SDK's client for the simulator: no retries of its own, patient connects."""
    return openai.AsyncOpenAI(
        base_url=sim.openai_base_url, api_key="sk-bench", max_retries=0, timeout=PATIENT, http_client=http_client
    )


def direct(sim: SimulatorProcess) -> tuple[float, float]:
    async def main() -> None:
        client = sdk_client(sim, openai.DefaultAioHttpClient())
        async with client:
            agent: Agent[None, str] = Agent(OpenAIChatModel("sim-1", provider=OpenAIProvider(openai_client=client)))

            async def call(prompt: str) -> Any:
                return (await agent.run(prompt)).output

            answers = await gated_gather(call, prompts(CALLS), CONCURRENCY)
            assert len(answers) == CALLS

    return measure(main)


def direct_api(sim: SimulatorProcess) -> tuple[float, float]:
    """The same requests through pydantic-ai's direct API, as fanfold sends a text agent's."""

    async def main() -> None:
        client = sdk_client(sim, openai.DefaultAioHttpClient())
        async with client:
            model = OpenAIChatModel("sim-1", provider=OpenAIProvider(openai_client=client))

            async def call(prompt: str) -> Any:
                return (await model_request(model, [ModelRequest.user_text_prompt(prompt)])).text

            answers = await gated_gather(call, prompts(CALLS), CONCURRENCY)
            assert len(answers) == CALLS

    return measure(main)


def with_fanfold(sim: SimulatorProcess) -> tuple[float, float]:
    async def main() -> None:
        agent = ff.llm("openai-chat:sim-1", base_url=sim.openai_base_url, api_key="sk-bench")
        # The concurrency is given, as for the direct calls: with none known and no rate-limit
        # headers, fanfold would first ramp up to it (a safety the direct calls do without).
        known = {"openai-chat:sim-1": ff.RateLimit(concurrency=CONCURRENCY)}
        limits = ff.Limits(concurrency=CONCURRENCY, resources=known)
        result = await ff.run(ff.map(agent), prompts(CALLS), limits=limits)
        assert result.summary.succeeded == CALLS, result.summary

    return measure(main)


def raw_sdk(sim: SimulatorProcess, http_client: Any) -> tuple[float, float]:
    """Chat completions straight through the OpenAI SDK, on the given transport (None: its default)."""

    async def main() -> None:
        client = sdk_client(sim, http_client)
        async with client:

            async def call(prompt: str) -> Any:
                return await client.chat.completions.create(
                    model="sim-1", messages=[{"role": "user", "content": prompt}]
                )

            await gated_gather(call, prompts(BASELINE_CALLS), CONCURRENCY)

    return measure(main)


def main() -> None:
    title(f"fan-out: {CALLS:,} calls of {LATENCY:g}s at {CONCURRENCY:,} at once")
    with SimulatorProcess(*SIM_ARGS) as sim:
        # Interleaved and repeated, the best of each kept: noise on a shared machine only adds.
        runs = [(direct(sim), direct_api(sim), with_fanfold(sim)) for _ in range(REPEATS)]
        direct_wall, direct_cpu = (min(run[0][i] for run in runs) for i in (0, 1))
        api_wall, api_cpu = (min(run[1][i] for run in runs) for i in (0, 1))
        ff_wall, ff_cpu = (min(run[2][i] for run in runs) for i in (0, 1))
        default_wall, _ = raw_sdk(sim, None)
        aiohttp_wall, _ = raw_sdk(sim, openai.DefaultAioHttpClient())
        stats = sim.stats()
    assert stats["by_status"].get("200", 0) == 3 * REPEATS * CALLS + 2 * BASELINE_CALLS, stats["by_status"]
    ideal = CONCURRENCY / LATENCY
    ways = (
        ("pydantic-ai Agent.run", direct_wall, direct_cpu),
        ("pydantic-ai direct API", api_wall, api_cpu),
        ("fanfold", ff_wall, ff_cpu),
    )
    for name, wall, cpu in ways:
        rate = CALLS / wall
        info(
            f"{name}: {wall:.1f}s, {rate:.0f} calls/s ({rate / ideal:.0%} of the ideal), "
            f"{cpu / CALLS * 1e6:.0f} us of CPU per call"
        )
    default_rate, aiohttp_rate = BASELINE_CALLS / default_wall, BASELINE_CALLS / aiohttp_wall
    info(f"raw OpenAI SDK, {BASELINE_CALLS:,} calls: {default_rate:.0f} calls/s on its default transport,")
    info(f"  {aiohttp_rate:.0f} calls/s on its aiohttp transport (the one fanfold uses)")
    check(
        "CPU fanfold adds per call, over pydantic-ai's Agent.run", (ff_cpu - direct_cpu) / CALLS * 1e6, 100, unit=" us"
    )
    check("CPU fanfold adds per call, over pydantic-ai's direct API", (ff_cpu - api_cpu) / CALLS * 1e6, 100, unit=" us")
    check("the default transport's calls/s, per fanfold's", default_rate / (CALLS / ff_wall), 1 / 3)


if __name__ == "__main__":
    main()
