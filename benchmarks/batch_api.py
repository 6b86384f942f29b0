"""Batch endpoints at half price: the cost of N model requests sent through the provider's batch
endpoint (``ff.run(..., batch_api=True)``) against the same requests sent directly, on the
simulated provider (the same answers, so the same tokens), and how many requests each batch
carried; for an OpenAI model (the Batch API) and an Anthropic model (Message Batches).

Target, for each: cost ratio batch / direct <= 0.5 (the batch price), the same tokens, and N
requests in ceil(N / window) batches at most (each fan-out window fills a batch).
"""

from __future__ import annotations

import asyncio
import math
import time

import fanfold as ff
from _common import check, info, title
from fanfold.testing import Latency, SimulatedProvider

N = 2_000
PRICE = ff.Price(input=0.25, output=2.0)  # dollars per million tokens
LIMITS = ff.Limits(concurrency=1_000)  # a fan-out window of 1,000: batches of up to 1,000
MODELS = {"openai": "openai-chat:sim-1", "anthropic": "anthropic:sim-1"}


async def measure(provider: str) -> tuple[ff.Usage, ff.Usage, int, float, float]:
    async with SimulatedProvider(latency=Latency.fixed(0.001)) as sim:
        base_url = sim.anthropic_base_url if provider == "anthropic" else sim.openai_base_url
        agent = ff.llm(MODELS[provider], base_url=base_url, api_key="sk-bench", price=PRICE)
        inputs = [f"question {i}" for i in range(N)]
        began = time.perf_counter()
        direct = await ff.run(ff.map(agent), inputs, limits=LIMITS)
        direct_s = time.perf_counter() - began
        began = time.perf_counter()
        batched = await ff.run(ff.map(agent), inputs, limits=LIMITS, batch_api=True)
        batched_s = time.perf_counter() - began
        assert batched.outputs == direct.outputs
        return direct.summary.usage, batched.summary.usage, sim.batches["created"], direct_s, batched_s


def main() -> None:
    for provider, endpoint in (("openai", "the Batch API"), ("anthropic", "Message Batches")):
        title(f"batch API, {provider}: {N:,} ff.llm requests, direct vs through {endpoint} (simulated provider)")
        direct, batched, batches, direct_s, batched_s = asyncio.run(measure(provider))
        info(f"{'direct':>10}: {direct}  ({direct_s:.2f}s)")
        info(f"{'batch API':>10}: {batched}  ({batched_s:.2f}s, {batches} batches, {N / batches:,.0f} requests/batch)")
        ratio = batched.cost / direct.cost
        info(f"{'cost ratio':>10}: {ratio!r} (exact)")
        # Two sums of 2,000 float costs differ in their last bits (0.5000000000000008 here): compared at 1e-12.
        check(f"{provider} cost, batch API / direct", round(ratio, 12), 0.5)
        check(
            f"{provider} tokens, batch API / direct",
            (batched.input_tokens + batched.output_tokens) / (direct.input_tokens + direct.output_tokens),
            1.0,
        )
        check(f"{provider} batches / ceil(N / window)", batches / math.ceil(N / 1_000), 1.0)


if __name__ == "__main__":
    main()
