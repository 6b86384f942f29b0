"""``ff.run(..., batch_api=True)`` with ff.llm Anthropic models: their requests through the
simulated provider's Message Batches."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

import fanfold as ff
from fanfold._llm import _batcher
from fanfold.testing import Faults, Latency, SimRequest, SimulatedProvider

PRICE = ff.Price(input=1.0, output=2.0)


# claude-sonnet-4-5's default max_tokens is its maximum output, too large to wait for: pydantic-ai
# streams its requests, and a batch item's answer is replayed as a stream.
MODELS = ["anthropic:sim-1", "anthropic:claude-sonnet-4-5"]


def _agent(sim: SimulatedProvider, model: str = "anthropic:sim-1", **options: Any) -> Any:
    return ff.llm(model, base_url=sim.anthropic_base_url, api_key="sk-test", price=PRICE, **options)


def _sent(sim: SimulatedProvider) -> int:
    """Requests the provider ran in its message batches (succeeded or errored)."""
    counts = [batch["request_counts"] for batch in sim.batches["batches"]]
    return sum(c["succeeded"] + c["errored"] for c in counts)


@pytest.mark.parametrize("model", MODELS)
def test_requests_go_in_one_message_batch_at_half_the_price(model: str) -> None:
    async def main() -> None:
        async with SimulatedProvider(latency=Latency.fixed(0)) as sim:
            inputs = [f"question {i}" for i in range(20)]
            batched = await ff.run(ff.map(_agent(sim, model)), inputs, batch_api=True)
            assert sim.stats.requests == 0  # nothing through POST /v1/messages
            assert sim.batches["created"] == 1
            assert sim.batches["batches"][0]["type"] == "message_batch"
            assert sim.batches["answered"] == 20
            direct = await ff.run(ff.map(_agent(sim, model)), inputs)
            assert batched.outputs == direct.outputs  # the same answers
            assert batched.summary.usage.requests == direct.summary.usage.requests == 20
            assert batched.summary.usage.input_tokens == direct.summary.usage.input_tokens
            assert batched.summary.usage.output_tokens == direct.summary.usage.output_tokens
            assert batched.summary.usage.cost == pytest.approx(direct.summary.usage.cost * 0.5)

    asyncio.run(main())


@pytest.mark.parametrize("model", MODELS)
def test_structured_output_goes_through_the_message_batch_too(model: str) -> None:
    class Verdict(BaseModel):
        grade: int
        reason: str

    async def main() -> None:
        async with SimulatedProvider(latency=Latency.fixed(0)) as sim:
            result = await ff.run(ff.map(_agent(sim, model, output_type=Verdict)), ["a", "b", "c"], batch_api=True)
            assert all(isinstance(out, Verdict) for out in result.outputs)
            assert sim.stats.requests == 0
            assert sim.batches["answered"] == 3

    asyncio.run(main())


def test_errored_items_are_outcomes_retried_or_failed_and_each_request_is_counted_once() -> None:
    overloaded: set[str] = set()

    def fault(number: int, request: SimRequest) -> str | None:
        if request.last_user_text == "broken":
            return "500"  # every time: fails after its attempts
        if request.last_user_text == "busy" and "busy" not in overloaded:
            overloaded.add("busy")
            return "529"  # once: its retry goes in a second batch and succeeds
        return None

    async def main() -> None:
        async with SimulatedProvider(latency=Latency.fixed(0), faults=Faults(script=fault)) as sim:
            agent = _agent(sim, retry=ff.RetryPolicy(retry_on=Exception, attempts=2, initial=0.01))
            result = await ff.run(ff.map(agent), ["fine", "busy", "broken"], batch_api=True)
            fine, busy, broken = result.outcomes
            assert fine.ok
            assert busy.ok
            assert busy.retries == 1
            assert not broken.ok
            assert "500" in str(broken.error)
            assert sim.batches["created"] == 2  # the first three, then the two retries
            assert sim.stats.requests == 0
            # every request the provider ran is counted once in usage: 3, and 2 retries
            assert _sent(sim) == result.summary.usage.requests == 5

    asyncio.run(main())


def test_outcomes_come_as_each_batch_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_batcher, "SIZE", 3)  # six inputs: two batches

    async def main() -> None:
        async with SimulatedProvider(latency=Latency.fixed(0), batch_delay=math.inf) as sim:
            inputs = [f"question {i}" for i in range(6)]
            seen: list[Any] = []
            async with ff.start(ff.map(_agent(sim)), inputs, batch_api=True) as run, httpx.AsyncClient() as http:
                while sim.batches["created"] < 2:  # both held by the simulator
                    assert not run.done, "the run ended without its two batches"
                    await asyncio.sleep(0)
                first, second = (batch["id"] for batch in sim.batches["batches"])
                await http.post(f"{sim.url}/_sim/batches/{first}/release")
                async for outcome in run.as_completed():
                    seen.append(outcome)
                    if len(seen) == 3:  # the first batch's three, while the second is still held
                        states = {b["id"]: b["processing_status"] for b in sim.batches["batches"]}
                        assert states == {first: "ended", second: "in_progress"}
                        await http.post(f"{sim.url}/_sim/batches/{second}/release")
            assert len(seen) == 6
            assert all(o.ok for o in seen)

    asyncio.run(main())


def test_the_budget_is_reserved_at_the_batch_price() -> None:
    async def main() -> None:
        async with SimulatedProvider(latency=Latency.fixed(0), batch_delay=math.inf) as sim:
            agent = _agent(sim, model_settings={"max_tokens": 100})
            # 4 requests at (about 2 + 100 tokens) x half price fit in the budget, at full price they would not
            budget = ff.Budget(cost=4 * 0.5 * (2 * 1.0 + 100 * 2.0) / 1e6 * 1.2)
            running = asyncio.create_task(ff.run(ff.map(agent), ["a", "b", "c", "d"], batch_api=True, budget=budget))
            while sim.batches["created"] == 0 and not running.done():  # the batch is held until released
                await asyncio.sleep(0)
            sim.release_batches()
            result = await running
            assert result.complete
            assert sim.batches["created"] == 1  # every request reserved and queued at once: one batch
            assert sim.batches["answered"] == 4
            assert result.summary.usage.cost <= 4 * 0.5 * (2 * 1.0 + 100 * 2.0) / 1e6 * 1.2

    asyncio.run(main())
