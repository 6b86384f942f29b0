"""Agents from other frameworks, governed: what it costs, and what it buys.

1. Overhead: CPU per call of an agno ``Agent`` and of a LangChain ``ChatOpenAI`` run through
   ``ff.map`` on a client fanfold lends them (``ff.openai_client``: each request a leaf call),
   against calling the same agent directly with ``asyncio.gather`` on a plain ``AsyncOpenAI`` on
   aiohttp, over the same simulated provider (in a process of its own, so the CPU is the
   client's). Target: governed / direct <= 1.5 per call (the framework's own CPU dominates).
2. The agno claims example (``examples/agno_verify_claims.py``): a fanfold team hands 24 claims
   to one agno verifier; its wall time against verifying them one after another on the same
   agent. Target: sequential / team >= 5 (at most 8 at once, 24 calls of 200 ms).
3. 429s under a limit: 120 agno calls against a provider allowing 600 requests a minute;
   governed (fanfold learns the limit from the headers and paces the calls) against an
   ungoverned ``asyncio.gather`` (the SDK's own retries, 2 per call). Target: governed 429s
   <= a tenth of the ungoverned ones.

    .venv/bin/python benchmarks/adapters.py
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("AGNO_TELEMETRY", "false")

import openai
from agno.agent import Agent
from agno.models.openai import OpenAIChat
from langchain_openai import ChatOpenAI

import fanfold as ff
from _common import SimulatorProcess, check, info, title

CALLS = 300
CONCURRENCY = 50
KEY = "sim"


def plain(base_url: str, **options: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base_url, api_key=KEY, http_client=openai.DefaultAioHttpClient(), **options)


def lent(base_url: str) -> Any:
    return ff.openai_client("openai:sim-1", base_url=base_url, api_key=KEY)


def agno_agent(client: Any) -> Agent:
    return Agent(name="verifier", model=OpenAIChat(id="sim-1", async_client=client))


def chat(client: Any) -> ChatOpenAI:
    return ChatOpenAI(model="sim-1", api_key=KEY, root_async_client=client, async_client=client.chat.completions)


def cpu_per_call(main: Any) -> float:
    """Process CPU seconds per call of ``main()`` on a fresh loop, best of 3."""

    def once() -> float:
        began = time.process_time()
        asyncio.run(main())
        return (time.process_time() - began) / CALLS

    return min(once() for _ in range(3))


async def gather(call: Any) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> Any:
        async with gate:
            return await call(f"claim {i}")

    await asyncio.gather(*(one(i) for i in range(CALLS)))


def overhead(base_url: str) -> None:
    title(f"overhead: {CALLS} calls, {CONCURRENCY} at once; CPU per call, governed / direct")
    limits = ff.Limits(concurrency=CONCURRENCY)
    for label, make, method in (("agno Agent.arun", agno_agent, "arun"), ("LangChain ainvoke", chat, "ainvoke")):

        async def direct(make: Any = make, method: str = method) -> None:
            async with plain(base_url, max_retries=0) as client:
                await gather(getattr(make(client), method))

        async def governed(make: Any = make) -> None:
            async with lent(base_url) as client:
                result = await ff.run(ff.map(make(client)), [f"claim {i}" for i in range(CALLS)], limits=limits)
                assert result.summary.usage.requests == CALLS

        base, mine = cpu_per_call(direct), cpu_per_call(governed)
        info(f"{label:>20}: direct {base * 1e3:.2f} ms/call, governed {mine * 1e3:.2f} ms/call")
        check(f"{label} governed / direct CPU per call", mine / base, 1.5)


def claims_example() -> None:
    title("the agno claims example: a team of one agno verifier, against one claim after another")
    spec = importlib.util.spec_from_file_location(
        "agno_verify_claims", Path(__file__).parents[1] / "examples" / "agno_verify_claims.py"
    )
    assert spec is not None
    assert spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    sys.modules["agno_verify_claims"] = example
    spec.loader.exec_module(example)

    began = time.perf_counter()
    result, stats = asyncio.run(example.verify("agno", latency=0.2))
    team = time.perf_counter() - began
    info(f"team: {team:.2f} s, {result.output.answer}, at most {stats.peak_concurrency} calls at once")

    async def one_by_one() -> None:
        async with (
            ff.testing.SimulatedProvider(
                answer=example.answer, latency=ff.testing.Latency.fixed(0.2), limits=None
            ) as sim,
            plain(sim.openai_base_url) as client,
        ):
            agent = agno_agent(client)
            for claim in example.CLAIMS:
                await agent.arun(claim)

    began = time.perf_counter()
    asyncio.run(one_by_one())
    sequential = time.perf_counter() - began
    info(f"one after another: {sequential:.2f} s")
    check("one after another / team wall time", team / sequential, 1 / 5, unit="x (inverse)")


def throttling() -> None:
    title("429s: 120 agno calls, the provider allows 600 a minute")
    n = 120
    counts = {}
    for label in ("ungoverned", "governed"):
        with SimulatorProcess("--rpm", "600", "--latency", "0.05", "--latency-distribution", "fixed") as sim:

            async def main(label: str = label, base_url: str = sim.openai_base_url) -> None:
                if label == "ungoverned":
                    async with plain(base_url, max_retries=2) as client:
                        agent = agno_agent(client)
                        await asyncio.gather(*(agent.arun(f"c{i}") for i in range(n)))
                else:
                    async with lent(base_url) as client:
                        await ff.run(ff.map(agno_agent(client)), [f"c{i}" for i in range(n)])

            began = time.perf_counter()
            asyncio.run(main())
            stats = sim.stats()
            counts[label] = stats["by_status"].get("429", 0)
            ok = stats["by_status"].get("200", 0)
            info(f"{label:>11}: {counts[label]} 429s, {ok} answered, {time.perf_counter() - began:.1f} s")
    check("governed 429s / ungoverned 429s", counts["governed"] / max(1, counts["ungoverned"]), 0.1)


def main() -> None:
    with SimulatorProcess("--latency", "0", "--latency-distribution", "fixed") as sim:
        overhead(sim.openai_base_url)
    claims_example()
    throttling()


if __name__ == "__main__":
    main()
