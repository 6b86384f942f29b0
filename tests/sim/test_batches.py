"""The simulated provider's OpenAI Batch API, driven by the official ``openai`` SDK."""

from __future__ import annotations

import asyncio
import functools
import json
import math
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest
from openai import AsyncOpenAI, BadRequestError

from fanfold._errors import UsageError
from fanfold.testing import Faults, Latency, SimulatedProvider

T = TypeVar("T")


def sync(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """Run an async test on its own event loop."""

    @functools.wraps(test)
    def run() -> None:
        asyncio.run(test())

    return run


def _lines(n: int, model: str = "sim-1") -> bytes:
    return "".join(
        json.dumps(
            {
                "custom_id": f"item-{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": model, "messages": [{"role": "user", "content": f"question {i}"}]},
            }
        )
        + "\n"
        for i in range(n)
    ).encode()


async def _wait_done(client: AsyncOpenAI, batch_id: str) -> Any:
    while True:  # the simulator finishes a batch of delay 0 at its next turn; poll until it has
        batch = await client.batches.retrieve(batch_id)
        if batch.status in ("completed", "expired", "cancelled", "failed"):
            return batch


@sync
async def test_a_batch_answers_each_line_as_chat_completions_would() -> None:
    async with SimulatedProvider(latency=Latency.fixed(0)) as sim:
        client = AsyncOpenAI(base_url=sim.openai_base_url, api_key="sk-test")
        file = await client.files.create(file=("in.jsonl", _lines(3)), purpose="batch")
        assert file.purpose == "batch"
        assert file.bytes == len(_lines(3))
        batch = await client.batches.create(
            input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        assert batch.status in ("validating", "in_progress")
        done = await _wait_done(client, batch.id)
        assert done.status == "completed"
        assert done.error_file_id is None
        assert done.request_counts is not None
        assert done.request_counts.completed == 3
        assert done.output_file_id is not None
        content = await client.files.content(done.output_file_id)
        lines = [json.loads(line) for line in content.text.splitlines()]
        assert sorted(line["custom_id"] for line in lines) == ["item-0", "item-1", "item-2"]
        # the same answer the live route gives the same request
        live = await client.chat.completions.create(model="sim-1", messages=[{"role": "user", "content": "question 1"}])
        one = next(line for line in lines if line["custom_id"] == "item-1")["response"]
        assert one["status_code"] == 200
        assert one["body"]["choices"][0]["message"]["content"] == live.choices[0].message.content
        assert one["body"]["usage"]["prompt_tokens"] == live.usage.prompt_tokens  # type: ignore[union-attr]
        assert sim.batches["created"] == 1
        assert sim.batches["answered"] == 3
        await client.close()


@sync
async def test_faulted_lines_go_to_the_error_file() -> None:
    async with SimulatedProvider(latency=Latency.fixed(0), faults=Faults(rate_500=1.0)) as sim:
        client = AsyncOpenAI(base_url=sim.openai_base_url, api_key="sk-test")
        file = await client.files.create(file=("in.jsonl", _lines(2)), purpose="batch")
        batch = await client.batches.create(
            input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        done = await _wait_done(client, batch.id)
        assert done.status == "completed"
        assert done.output_file_id is None
        assert done.request_counts is not None
        assert done.request_counts.failed == 2
        assert done.error_file_id is not None
        errors = [json.loads(line) for line in (await client.files.content(done.error_file_id)).text.splitlines()]
        assert {line["response"]["status_code"] for line in errors} == {500}
        await client.close()


@sync
async def test_a_held_batch_is_in_progress_until_released_and_can_be_cancelled() -> None:
    async with SimulatedProvider(latency=Latency.fixed(0), batch_delay=math.inf) as sim:
        client = AsyncOpenAI(base_url=sim.openai_base_url, api_key="sk-test")
        file = await client.files.create(file=("in.jsonl", _lines(2)), purpose="batch")
        first = await client.batches.create(
            input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        second = await client.batches.create(
            input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        assert (await client.batches.retrieve(first.id)).status in ("validating", "in_progress")
        cancelled = await client.batches.cancel(second.id)
        assert cancelled.status == "cancelling"
        assert (await _wait_done(client, second.id)).status == "cancelled"
        assert (await client.batches.retrieve(first.id)).status == "in_progress"
        sim.release_batches()
        assert (await _wait_done(client, first.id)).status == "completed"
        await client.close()


@sync
async def test_a_batch_past_its_expiry_expires_with_every_line_failed() -> None:
    async with SimulatedProvider(latency=Latency.fixed(0), batch_delay=math.inf, batch_expiry=0) as sim:
        client = AsyncOpenAI(base_url=sim.openai_base_url, api_key="sk-test")
        file = await client.files.create(file=("in.jsonl", _lines(2)), purpose="batch")
        batch = await client.batches.create(
            input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        done = await _wait_done(client, batch.id)
        assert done.status == "expired"
        assert done.output_file_id is None
        assert done.error_file_id is not None
        errors = [json.loads(line) for line in (await client.files.content(done.error_file_id)).text.splitlines()]
        assert [line["error"]["code"] for line in errors] == ["batch_expired", "batch_expired"]
        assert sim.batches["answered"] == 0
        await client.close()


@sync
async def test_bad_batch_requests_are_named() -> None:
    async with SimulatedProvider(latency=Latency.fixed(0)) as sim:
        client = AsyncOpenAI(base_url=sim.openai_base_url, api_key="sk-test")
        with pytest.raises(BadRequestError, match="no such file"):
            await client.batches.create(
                input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h"
            )
        with pytest.raises(BadRequestError, match="purpose"):
            await client.files.create(file=("in.jsonl", _lines(1)), purpose="assistants")
        await client.close()
    with pytest.raises(UsageError, match="batch_delay"):
        SimulatedProvider(batch_delay=-1)
