"""A provider that sends no rate-limit headers, in virtual time: the governor learns its limit
from 429s alone, follows it when it changes, and tells it from 429s that come at random.

The provider here is the simulator's own limiter (continuously refilled buckets that charge a
refused request, as OpenAI does) behind a pydantic-ai ``FunctionModel``: the whole governed
path runs (admission, pacing, pauses, retries), on the fake clock, in a second or two.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage

import fanfold as ff
from fanfold import events
from fanfold._sim import Latency, SimLimits
from fanfold._sim._buckets import ProviderLimiter
from fanfold.testing import EventLog, VirtualClock

NETWORK = 0.003  # seconds each way: a refusal comes back at once, an answer after its latency


class Provider:
    """Answers in about half a second, or refuses (a 429 with the provider's Retry-After) when
    its limit is spent, or at random with ``random_429s`` (``retry-after: 1``, as the simulator
    injects them). No rate-limit headers. Counts what it served and refused per second."""

    def __init__(self, requests_per_minute: float | None, *, random_429s: float = 0.0, seed: int = 2) -> None:
        limits = SimLimits(requests_per_minute=requests_per_minute) if requests_per_minute else None
        self.limiter = ProviderLimiter(limits, now=0.0) if limits else None
        self.random_429s = random_429s
        self.latency = Latency(median=0.5, sigma=0.3)
        self.rng = random.Random(seed)
        self.served: Counter[int] = Counter()
        self.refused: Counter[int] = Counter()

    def set_limit(self, requests_per_minute: float) -> None:
        assert self.limiter is not None
        self.limiter.set_limits(SimLimits(requests_per_minute=requests_per_minute), asyncio.get_running_loop().time())

    async def respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        await asyncio.sleep(NETWORK)
        now = asyncio.get_running_loop().time()
        latency = self.latency.draw(self.rng)
        refusal = None
        if self.limiter is not None:
            verdict = self.limiter.admit(0, 0, now)
            if not verdict.admitted:
                refusal = f"{max(1, round(verdict.retry_after * 1000))}"
        if refusal is None and self.rng.random() < self.random_429s:
            refusal = "1000"
        if refusal is not None:
            self.refused[int(now)] += 1
            await asyncio.sleep(NETWORK)
            raise ModelHTTPError(429, "sim", body="rate limited", headers={"retry-after-ms": refusal})
        await asyncio.sleep(latency)
        self.served[int(now)] += 1
        return ModelResponse(parts=[TextPart("ok")], usage=RequestUsage(input_tokens=3, output_tokens=30))

    def per_second(self, counts: Counter[int]) -> list[int]:
        return [counts.get(second, 0) for second in range(max(counts, default=0) + 1)]


def seconds_to(served: list[int], since: int, per_second: float) -> int:
    """Whole seconds from ``since`` to the first second that served >= 90% of ``per_second``."""
    return next(second - since + 1 for second in range(since, len(served)) if served[second] >= 0.9 * per_second)


def test_a_limit_halved_and_restored_mid_run_is_followed_with_few_429s(clock: VirtualClock) -> None:
    # unknown_limit.py's case without headers: 1,200 requests/min, halved at 15 s, restored at 35 s.
    provider = Provider(1_200)
    calls = 900

    async def main() -> ff.Result[Any]:
        async def change_limit() -> None:
            await asyncio.sleep(15.0)
            provider.set_limit(600)
            await asyncio.sleep(20.0)
            provider.set_limit(1_200)

        async with asyncio.TaskGroup() as group:
            group.create_task(change_limit())
            return await ff.run(ff.map(ff.llm(FunctionModel(provider.respond))), range(calls))

    result = asyncio.run(main())
    assert result.summary.succeeded == calls
    refused = sum(provider.refused.values())
    assert refused <= 0.02 * calls, provider.per_second(provider.refused)  # the code before: 50
    served = provider.per_second(provider.served)
    assert seconds_to(served, 15, 10.0) <= 10  # to 90% of the halved limit (before: 13 s)
    assert seconds_to(served, 35, 20.0) <= 10  # and of the restored one


def test_429s_at_random_one_call_in_four_seldom_pause_the_resource(clock: VirtualClock) -> None:
    # No limit at all, and a quarter of the calls refused at random (faults.py's storm, 429s
    # only): they come back at once while the answers take half a second, which once looked
    # like a burst; by send time they are one call in four, never in a long row.
    log = EventLog()
    provider = Provider(None, random_429s=0.25, seed=4)
    result = ff.run_sync(ff.map(ff.llm(FunctionModel(provider.respond))), range(600), on_event=log)
    assert result.summary.succeeded == 600
    pauses = [event for event in log.of_type(events.Throttled) if event.pause > 0]
    assert len(pauses) <= 2, [(round(event.at, 2), event.pause) for event in pauses]
