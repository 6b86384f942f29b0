"""The simulated provider's Anthropic Message Batches, driven by the official ``anthropic`` SDK."""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import pytest
from anthropic import AnthropicError, AsyncAnthropic, BadRequestError

from fanfold.testing import Faults, Latency, SimRequest, SimulatedProvider


def sync(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """Run an async test on its own event loop."""

    @functools.wraps(test)
    def run() -> None:
        asyncio.run(test())

    return run


def _params(question: str) -> dict[str, Any]:
    return {"model": "sim-1", "max_tokens": 200, "messages": [{"role": "user", "content": question}]}


def _requests(n: int) -> list[Any]:
    return [{"custom_id": f"item-{i}", "params": _params(f"question {i}")} for i in range(n)]


async def _ended(client: AsyncAnthropic, batch_id: str) -> Any:
    while True:  # the simulator ends a batch of delay 0 at its next turn; poll until it has
        batch = await client.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended":
            return batch


async def _results(client: AsyncAnthropic, batch_id: str) -> dict[str, Any]:
    return {line.custom_id: line.result async for line in await client.messages.batches.results(batch_id)}


@sync
async def test_a_batch_answers_each_request_as_the_messages_api_would() -> None:
    async with SimulatedProvider(latency=Latency.fixed(0)) as sim:
        client = AsyncAnthropic(base_url=sim.anthropic_base_url, api_key="sk-test")
        batch = await client.messages.batches.create(requests=_requests(3))
        assert batch.type == "message_batch"
        assert batch.processing_status == "in_progress"
        assert batch.request_counts.processing == 3
        assert batch.results_url is None
        done = await _ended(client, batch.id)
        assert done.ended_at is not None
        assert done.expires_at > done.created_at
        assert (done.request_counts.succeeded, done.request_counts.processing) == (3, 0)
        results = await _results(client, batch.id)
        assert sorted(results) == ["item-0", "item-1", "item-2"]
        assert {result.type for result in results.values()} == {"succeeded"}
        # the same answer the live route gives the same request
        live = await client.messages.create(**_params("question 1"))
        message = results["item-1"].message
        assert message.content[0].text == live.content[0].text
        assert message.usage.input_tokens == live.usage.input_tokens
        assert sim.batches["created"] == 1
        assert sim.batches["answered"] == 3
        listed = [b.id async for b in client.messages.batches.list()]
        assert listed == [batch.id]
        await client.close()


@sync
async def test_faulted_and_invalid_requests_are_errored_results() -> None:
    def fault(number: int, request: SimRequest) -> str | None:
        return "529" if "overload" in request.last_user_text else None

    async with SimulatedProvider(latency=Latency.fixed(0), faults=Faults(script=fault)) as sim:
        client = AsyncAnthropic(base_url=sim.anthropic_base_url, api_key="sk-test")
        bad = {"custom_id": "no-max-tokens", "params": {"model": "sim-1", "messages": []}}
        requests: list[Any] = [
            {"custom_id": "fine", "params": _params("fine")},
            {"custom_id": "busy", "params": _params("overload")},
            bad,
        ]
        batch = await client.messages.batches.create(requests=requests)
        done = await _ended(client, batch.id)
        assert (done.request_counts.succeeded, done.request_counts.errored) == (1, 2)
        results = await _results(client, batch.id)
        assert results["fine"].type == "succeeded"
        assert results["busy"].type == "errored"
        assert results["busy"].error.error.type == "overloaded_error"
        assert results["no-max-tokens"].error.error.type == "invalid_request_error"
        assert "max_tokens" in results["no-max-tokens"].error.error.message
        assert sim.batches["answered"] == 1
        await client.close()


@sync
async def test_a_held_batch_is_in_progress_until_released_and_a_canceled_one_ends_canceled() -> None:
    async with SimulatedProvider(latency=Latency.fixed(0), batch_delay=math.inf) as sim:
        client = AsyncAnthropic(base_url=sim.anthropic_base_url, api_key="sk-test")
        first = await client.messages.batches.create(requests=_requests(2))
        second = await client.messages.batches.create(requests=_requests(2))
        with pytest.raises(AnthropicError, match="results_url"):  # the SDK refuses before it ends
            await client.messages.batches.results(first.id)
        canceling = await client.messages.batches.cancel(second.id)
        assert canceling.processing_status == "canceling"
        assert canceling.cancel_initiated_at is not None
        canceled = await _ended(client, second.id)
        assert canceled.request_counts.canceled == 2
        assert {r.type for r in (await _results(client, second.id)).values()} == {"canceled"}
        assert (await client.messages.batches.retrieve(first.id)).processing_status == "in_progress"
        async with httpx.AsyncClient() as http:  # one batch released by the simulator's control route
            response = await http.post(f"{sim.url}/_sim/batches/{first.id}/release")
            assert response.status_code == 200
        assert (await _ended(client, first.id)).request_counts.succeeded == 2
        assert sim.batches["answered"] == 2
        await client.close()


@sync
async def test_a_batch_past_its_expiry_ends_with_every_request_expired() -> None:
    async with SimulatedProvider(latency=Latency.fixed(0), batch_delay=math.inf, batch_expiry=0) as sim:
        client = AsyncAnthropic(base_url=sim.anthropic_base_url, api_key="sk-test")
        batch = await client.messages.batches.create(requests=_requests(2))
        done = await _ended(client, batch.id)
        assert done.request_counts.expired == 2
        assert {r.type for r in (await _results(client, batch.id)).values()} == {"expired"}
        assert sim.batches["answered"] == 0
        await client.close()


@sync
async def test_bad_batches_are_named() -> None:
    async with SimulatedProvider(latency=Latency.fixed(0)) as sim:
        client = AsyncAnthropic(base_url=sim.anthropic_base_url, api_key="sk-test")
        with pytest.raises(BadRequestError, match="custom_id='a/b'"):
            await client.messages.batches.create(requests=[{"custom_id": "a/b", "params": _params("x")}])  # type: ignore[typeddict-item]
        twice = [{"custom_id": "a", "params": _params("x")}, {"custom_id": "a", "params": _params("y")}]
        with pytest.raises(BadRequestError, match="unique"):
            await client.messages.batches.create(requests=twice)  # type: ignore[arg-type]
        with pytest.raises(BadRequestError, match="non-empty"):
            await client.messages.batches.create(requests=[])
        assert sim.batches["created"] == 0
        await client.close()
