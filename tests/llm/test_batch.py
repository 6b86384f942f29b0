"""``ff.run(..., batch_api=True)``: ff.llm requests through the simulated provider's Batch API."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from pydantic import BaseModel

import fanfold as ff
from fanfold.testing import Faults, Latency, SimulatedProvider

PRICE = ff.Price(input=1.0, output=2.0)


def _agent(sim: SimulatedProvider, **options: Any) -> Any:
    return ff.llm("openai-chat:sim-1", base_url=sim.openai_base_url, api_key="sk-test", price=PRICE, **options)


def test_requests_go_in_one_batch_at_half_the_price() -> None:
    async def main() -> None:
        async with SimulatedProvider(latency=Latency.fixed(0)) as sim:
            inputs = [f"question {i}" for i in range(20)]
            batched = await ff.run(ff.map(_agent(sim)), inputs, batch_api=True)
            assert sim.stats.requests == 0  # nothing through chat completions
            assert sim.batches["created"] == 1
            assert sim.batches["answered"] == 20
            direct = await ff.run(ff.map(_agent(sim)), inputs)
            assert batched.outputs == direct.outputs  # the same answers
            assert batched.summary.usage.requests == direct.summary.usage.requests == 20
            assert batched.summary.usage.input_tokens == direct.summary.usage.input_tokens
            assert batched.summary.usage.cost == pytest.approx(direct.summary.usage.cost * 0.5)

    asyncio.run(main())


def test_structured_output_goes_through_the_batch_too() -> None:
    class Verdict(BaseModel):
        grade: int
        reason: str

    async def main() -> None:
        async with SimulatedProvider(latency=Latency.fixed(0)) as sim:
            agent = _agent(sim, output_type=Verdict)
            result = await ff.run(ff.map(agent), ["a", "b", "c"], batch_api=True)
            assert all(isinstance(out, Verdict) for out in result.outputs)
            assert sim.stats.requests == 0
            assert sim.batches["answered"] == 3

    asyncio.run(main())


def test_a_failed_line_is_that_inputs_failed_outcome() -> None:
    async def main() -> None:
        async with SimulatedProvider(latency=Latency.fixed(0), faults=Faults(rate_500=1.0)) as sim:
            agent = _agent(sim, retry=ff.RetryPolicy(retry_on=Exception, attempts=1))
            outcomes = [o async for o in ff.as_completed(ff.map(agent), ["a", "b"], batch_api=True)]
            assert len(outcomes) == 2
            assert all(not o.ok for o in outcomes)
            assert all("500" in str(o.error) for o in outcomes)
            assert sim.batches["created"] == 1

    asyncio.run(main())


def test_tools_and_other_providers_are_not_batched() -> None:
    def lookup(word: str) -> str:
        """Look a word up."""
        return word

    async def main() -> None:
        async with SimulatedProvider(latency=Latency.fixed(0)) as sim:
            agent = _agent(sim, tools=[lookup])
            await ff.run(ff.map(agent), ["a"], batch_api=True)
            responses = ff.llm("openai-responses:sim-1", base_url=sim.openai_base_url, api_key="sk-test")
            await ff.run(ff.map(responses), ["a"], batch_api=True)
            assert sim.batches["created"] == 0
            assert sim.stats.requests >= 2

    asyncio.run(main())


def test_the_budget_is_reserved_at_the_batch_price() -> None:
    async def main() -> None:
        async with SimulatedProvider(latency=Latency.fixed(0), batch_delay=math.inf) as sim:
            agent = _agent(sim, output_tokens=100)

            async def release() -> None:
                while sim.batches["created"] == 0:  # the batch is held until released
                    await asyncio.sleep(0)
                sim.release_batches()

            releaser = asyncio.create_task(release())
            # 4 requests at (about 2 + 100 tokens) x half price fit in the budget, at full price they would not
            budget = ff.Budget(cost=4 * 0.5 * (2 * 1.0 + 100 * 2.0) / 1e6 * 1.2)
            result = await ff.run(ff.map(agent), ["a", "b", "c", "d"], batch_api=True, budget=budget)
            await releaser
            assert result.complete
            assert sim.batches["created"] == 1  # every request reserved and queued at once: one batch
            assert sim.batches["answered"] == 4
            assert result.summary.usage.cost <= 4 * 0.5 * (2 * 1.0 + 100 * 2.0) / 1e6 * 1.2

    asyncio.run(main())


def test_batch_api_must_be_a_bool() -> None:
    with pytest.raises(ff.UsageError, match="batch_api='yes'"):
        ff.run_sync(ff.map(lambda x: x), [1], batch_api="yes")  # type: ignore[arg-type]
