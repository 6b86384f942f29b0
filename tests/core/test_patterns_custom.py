"""A custom agent that runs a pattern inside (``await spec.run(input, ctx)``): the inner pattern's
leaves are governed by the run (limits, retries, budget), its events come with the run's, and
its outcomes are named under the outer task's path."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

import fanfold as ff
from fanfold.testing import ConcurrencyProbe, EventLog

probe = ConcurrencyProbe()


async def formal(text: str) -> str:
    async with probe.inside():
        await asyncio.sleep(0)
        return f"Dear reader, {text}."


async def casual(text: str) -> str:
    async with probe.inside():
        await asyncio.sleep(0)
        return f"hey {text}"


class Shortest(ff.Pattern):
    """Two drafts in parallel, and the shorter wins: a pattern inside a custom agent."""

    name = "shortest"

    def __init__(self, *drafters: Any) -> None:
        self.drafts = ff.parallel(*drafters)

    async def run(self, text: str, ctx: ff.Context) -> str:
        drafts = await self.drafts.run(text, ctx)
        return min(drafts.values(), key=len)


def test_the_inner_patterns_leaves_share_the_runs_limits_and_their_paths_nest() -> None:
    probe.peak = 0
    log = EventLog()
    inputs = [f"note {i}" for i in range(6)]
    result = ff.run_sync(ff.map(Shortest(formal, casual)), inputs, limits=ff.Limits(concurrency=2), on_event=log)
    assert result.output == [f"hey note {i}" for i in range(6)]
    assert probe.peak == 2  # 12 leaves, never more than 2 at once, and no deadlock: the custom agent holds no slot
    assert probe.entered >= 12
    finished = {e.path: e.outcome for e in log.finished()}
    assert finished["map[3]/parallel[formal]"].status is ff.Status.SUCCEEDED
    assert finished["map[3]/parallel[casual]"].value == "hey note 3"
    assert [o.path for o in result.outcomes] == [f"map[{i}]" for i in range(6)]


def test_the_inner_patterns_leaves_are_retried_by_the_runs_policy() -> None:
    failures = {"left": 1}

    async def flaky(text: str) -> str:
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("reset")
        return text

    log = EventLog()
    policy = ff.RetryPolicy(retry_on=ConnectionError, attempts=2, initial=0)
    result = ff.run_sync(ff.map(Shortest(flaky, formal)), ["hi"], retry=policy, on_event=log)
    assert result.output == ["hi"]
    assert {e.path: e.outcome for e in log.finished()}["map[0]/parallel[flaky]"].attempts == 2


def test_the_inner_patterns_model_calls_count_against_the_runs_budget() -> None:
    calls = {"n": 0}

    async def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        calls["n"] += 1
        return ModelResponse(parts=[TextPart("a draft")])

    model = FunctionModel(respond)
    drafter = Shortest(ff.llm(model, name="first"), ff.llm(model, name="second"))
    log = EventLog()
    result = ff.run_sync(
        ff.map(drafter), range(4), budget=ff.Budget(requests=3), limits=ff.Limits(concurrency=1), on_event=log
    )
    assert calls["n"] == 3  # the budget held across the inner fan-outs
    assert result.summary.usage.requests == 3
    leaves = [e for e in log.finished() if "/parallel[" in e.path]
    assert len(leaves) == 8  # every inner leaf ended in one outcome, named under its map input
    skipped = [e for e in leaves if e.outcome.status is ff.Status.SKIPPED]
    assert len(skipped) == 5
    assert all("budget is exhausted" in (e.outcome.reason or "") for e in skipped)
