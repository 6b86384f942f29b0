"""Fan-out: 10,000 model calls of 1 s at 2,000 at once, where the client's CPU is the limit.

The simulated provider runs in its own process (2 cores are shared by both), and so does each
way of making the calls, so that no way inherits another's heap (garbage collection scans the
whole heap, and its cost per call grows with what earlier ways left behind). The ways:

- fanfold: ``ff.map`` of ``ff.llm``, on the client fanfold builds (the SDK's aiohttp transport);
- the same requests through pydantic-ai's direct API (``pydantic_ai.direct.model_request``, the
  request fanfold sends for an agent with no tools and text output), and through ``Agent.run``,
  semaphore-gated, on the same transport with the same 2,000 connections;
- raw ``chat.completions.create`` calls on the OpenAI SDK's aiohttp transport, and on its
  default transport (httpx), both with 2,000 connections; and on the default transport as the
  SDK configures it out of the box, whose pool of 1,000 connections halves the concurrency.

fanfold and the direct API are interleaved, best of three (noise on a shared machine only
adds). Targets: fanfold adds <= 100 us of CPU per call over the direct API, and serves >= 3x
the requests/s of the default transport at the same concurrency. Each way's time in garbage
collection is reported, and the fraction of the ideal throughput (2,000 calls/s).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2
import openai
from pydantic_ai import Agent, ModelRequest
from pydantic_ai.direct import model_request
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

import fanfold as ff
from _common import SimulatorProcess, check, gated_gather, info, title

CALLS = int(os.environ.get("CALLS", "10000"))
SLOW_CALLS = CALLS * 2 // 5  # the slow ways: fewer calls give their rate as well
CONCURRENCY = 2_000
REPEATS = 3
LATENCY = 1.0
# The baselines make no retries, and with 2,000 calls queued on a CPU-bound loop a new connection
# can take longer than the SDK's default 5 s to connect: wait for it rather than fail the run.
PATIENT = openai.Timeout(600.0, connect=120.0)
POOL = httpx2.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
SIM_ARGS = ("--latency", str(LATENCY), "--latency-distribution", "fixed", "--output-tokens", "20")


def prompts(n: int) -> list[str]:
    return [f"Label ticket #{i}: the nightly export stalls." for i in range(n)]


def sdk_client(base_url: str, http_client: Any) -> openai.AsyncOpenAI:
    """The OpenAI SDK's client for the simulator: no retries of its own, patient connects."""
    return openai.AsyncOpenAI(
        base_url=base_url, api_key="sk-bench", max_retries=0, timeout=PATIENT, http_client=http_client
    )


async def agent_run(base_url: str, n: int) -> None:
    async with sdk_client(base_url, openai.DefaultAioHttpClient(limits=POOL)) as client:
        agent: Agent[None, str] = Agent(OpenAIChatModel("sim-1", provider=OpenAIProvider(openai_client=client)))

        async def call(prompt: str) -> Any:
            return (await agent.run(prompt)).output

        assert len(await gated_gather(call, prompts(n), CONCURRENCY)) == n


async def direct_api(base_url: str, n: int) -> None:
    async with sdk_client(base_url, openai.DefaultAioHttpClient(limits=POOL)) as client:
        model = OpenAIChatModel("sim-1", provider=OpenAIProvider(openai_client=client))

        async def call(prompt: str) -> Any:
            return (await model_request(model, [ModelRequest.user_text_prompt(prompt)])).text

        assert len(await gated_gather(call, prompts(n), CONCURRENCY)) == n


async def with_fanfold(base_url: str, n: int) -> None:
    agent = ff.llm("openai-chat:sim-1", base_url=base_url, api_key="sk-bench")
    # The concurrency is given, as for the direct calls: with none known and no rate-limit
    # headers, fanfold would first ramp up to it (a safety the direct calls do without).
    known = {"openai-chat:sim-1": ff.RateLimit(concurrency=CONCURRENCY)}
    limits = ff.Limits(concurrency=CONCURRENCY, resources=known)
    result = await ff.run(ff.map(agent), prompts(n), limits=limits)
    assert result.summary.succeeded == n, result.summary


def raw_sdk(http_client: Callable[[], Any]) -> Callable[[str, int], Awaitable[None]]:
    """Chat completions straight through the OpenAI SDK, on the transport ``http_client()`` makes."""

    async def main(base_url: str, n: int) -> None:
        async with sdk_client(base_url, http_client()) as client:

            async def call(prompt: str) -> Any:
                return await client.chat.completions.create(
                    model="sim-1", messages=[{"role": "user", "content": prompt}]
                )

            await gated_gather(call, prompts(n), CONCURRENCY)

    return main


# name -> (how, calls made)
WAYS: dict[str, tuple[Callable[[str, int], Awaitable[None]], int]] = {
    "fanfold": (with_fanfold, CALLS),
    "pydantic-ai direct API": (direct_api, CALLS),
    "pydantic-ai Agent.run": (agent_run, SLOW_CALLS),
    "raw SDK, aiohttp transport": (raw_sdk(lambda: openai.DefaultAioHttpClient(limits=POOL)), CALLS),
    "raw SDK, default transport": (raw_sdk(lambda: openai.DefaultAsyncHttpxClient(limits=POOL)), SLOW_CALLS),
    "raw SDK, default transport and pool": (raw_sdk(lambda: None), SLOW_CALLS),
}


def child(way: str, base_url: str) -> None:
    """Make one way's calls in this fresh process; print its wall, CPU and GC seconds."""
    how, n = WAYS[way]
    collecting = [0.0, 0.0]  # seconds in garbage collection, when the current one began

    def on_gc(phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            collecting[1] = time.perf_counter()
        else:
            collecting[0] += time.perf_counter() - collecting[1]

    async def clocked() -> dict[str, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        await how(base_url, n)
        return {"calls": n, "wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}

    gc.callbacks.append(on_gc)
    figures = asyncio.run(clocked())
    print(json.dumps({**figures, "gc": collecting[0]}))


def measure(way: str, sim: SimulatorProcess) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", way, sim.openai_base_url], capture_output=True, text=True, check=True
    )
    figures: dict[str, float] = json.loads(done.stdout)
    return figures


def main() -> None:
    title(f"fan-out: {CALLS:,} calls of {LATENCY:g}s at {CONCURRENCY:,} at once, each way in a process of its own")
    with SimulatorProcess(*SIM_ARGS) as sim:
        runs: dict[str, list[dict[str, float]]] = {way: [] for way in WAYS}
        for _ in range(REPEATS):  # interleaved, so that a noisy spell hits both
            for way in ("pydantic-ai direct API", "fanfold"):
                runs[way].append(measure(way, sim))
        for way in WAYS:
            if not runs[way]:
                runs[way].append(measure(way, sim))
        stats = sim.stats()
    made = sum(run["calls"] for way in WAYS for run in runs[way])
    assert stats["by_status"].get("200", 0) == made, stats["by_status"]
    ideal = CONCURRENCY / LATENCY
    best: dict[str, dict[str, float]] = {}
    for way, figures in runs.items():
        calls = figures[0]["calls"]
        wall, cpu, collecting = (min(run[key] for run in figures) for key in ("wall", "cpu", "gc"))
        outside_gc = min(run["cpu"] - run["gc"] for run in figures)
        best[way] = {"rate": calls / wall, "cpu": cpu / calls * 1e6, "outside_gc": outside_gc / calls * 1e6}
        rate = calls / wall
        of = f"best of {len(figures)}" if len(figures) > 1 else "one run"
        info(
            f"{way} ({calls:,} calls, {of}): {rate:.0f} calls/s ({rate / ideal:.0%} of the ideal), "
            f"{cpu / calls * 1e6:.0f} us of CPU per call, {collecting / calls * 1e6:.0f} of them in GC"
        )
    fanfold, api = best["fanfold"], best["pydantic-ai direct API"]
    check("CPU fanfold adds per call, over pydantic-ai's direct API", fanfold["cpu"] - api["cpu"], 100, unit=" us")
    info(f"  outside garbage collection: {fanfold['outside_gc'] - api['outside_gc']:+.0f} us per call")
    agent_run = best["pydantic-ai Agent.run"]
    check("CPU fanfold adds per call, over pydantic-ai's Agent.run", fanfold["cpu"] - agent_run["cpu"], 100, unit=" us")
    default = best["raw SDK, default transport"]["rate"]
    check("the default transport's calls/s at 2,000 connections, per fanfold's", default / fanfold["rate"], 1 / 3)
    pooled = best["raw SDK, default transport and pool"]["rate"]
    info(f"fanfold / the default transport as the SDK sets it up (1,000 connections): {fanfold['rate'] / pooled:.2f}x")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3])
    else:
        main()
