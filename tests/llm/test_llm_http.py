"""LLM agents against the simulated provider over real HTTP: every wire format, limits learnt
from headers, 429s, injected faults, budgets, and keys kept out of what a run reports."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from pydantic import BaseModel

import fanfold as ff
from fanfold import events
from fanfold.testing import EventLog, Faults, Latency, SimLimits, SimRequest, SimulatedProvider

KEY = "sk-test-do-not-leak-0123456789"


class Verdict(BaseModel):
    claim: str
    supported: bool


def verdict(request: SimRequest) -> dict[str, Any] | str:
    """Answers that depend on the input, so tests can tell the answers apart."""
    if request.output_schema is None:
        return f"echo: {request.last_user_text}"
    return {"claim": request.last_user_text, "supported": "true" in request.last_user_text}


T = TypeVar("T")


def served(body: Callable[[SimulatedProvider], Awaitable[T]], **options: Any) -> tuple[T, SimulatedProvider]:
    """Run ``body`` against a simulated provider serving in the same event loop."""
    options.setdefault("answer", verdict)
    options.setdefault("latency", Latency.fixed(0.01))

    async def main() -> tuple[T, SimulatedProvider]:
        async with SimulatedProvider(**options) as sim:
            return await body(sim), sim

    return asyncio.run(main())


def agent(sim: SimulatedProvider, model: str = "openai-chat:sim-1", **options: Any) -> ff.LLMAgent:
    base = sim.anthropic_base_url if model.startswith("anthropic") else sim.openai_base_url
    return ff.llm(model, base_url=base, api_key=KEY, **options)


@pytest.mark.parametrize("model", ["openai-chat:sim-1", "openai:sim-1", "anthropic:sim-1"])
def test_structured_output_and_usage_over_every_wire_format(model: str) -> None:
    claims = ["water is wet: true", "the moon is cheese: false"]
    result, sim = served(lambda sim: ff.run(ff.map(agent(sim, model, output_type=Verdict)), claims))
    assert [v.supported for v in result.output] == [True, False]
    assert [v.claim for v in result.output] == claims
    usage = result.summary.usage
    assert usage.requests == 2 == sim.stats.requests
    assert usage.input_tokens == sim.stats.input_tokens
    assert usage.output_tokens == sim.stats.output_tokens


def test_plain_text_answers_in_input_order() -> None:
    questions = [f"q{i}" for i in range(20)]
    result, _ = served(lambda sim: ff.run(ff.map(agent(sim)), questions, limits=ff.Limits(concurrency=8)))
    assert result.output == [f"echo: {q}" for q in questions]


def test_the_run_not_the_sdks_connection_pool_bounds_concurrency() -> None:
    # The SDK's default pool holds 1,000 connections; a run allowed more runs more at once. The
    # answers take long enough (4 s) for well over 1,000 requests to be sent before the first
    # one returns; with the SDK's pool, the 1,001st waits for a connection whatever the speed.
    calls, model = 1_100, "openai-chat:sim-1"
    limits = ff.Limits(concurrency=calls, resources={model: ff.RateLimit(concurrency=calls)})
    result, sim = served(
        lambda sim: ff.run(ff.map(agent(sim, model)), range(calls), limits=limits), latency=Latency.fixed(4.0)
    )
    assert result.summary.succeeded == calls
    assert sim.stats.peak_concurrency > 1_000


@pytest.mark.parametrize("model", ["openai-chat:sim-1", "anthropic:sim-1"])
def test_a_provider_limit_is_learnt_from_its_headers(model: str) -> None:
    # The provider allows 600 a minute in slices of a fifth of a second; fanfold is told nothing.
    log = EventLog()
    result, sim = served(
        lambda sim: ff.run(ff.map(agent(sim, model)), range(30), on_event=log, limits=ff.Limits(concurrency=30)),
        limits=SimLimits(requests_per_minute=600, burst=0.2),
    )
    assert result.summary.succeeded == 30
    # Only the first round (of the ramp's initial concurrency) can meet the limit before the
    # headers teach it; then none does, and nothing fails. (Which wall-clock second a 429 falls
    # in depends on the machine's speed, so it is not asserted.)
    assert sim.stats.by_status.get(429, 0) <= ff.RateLimit().initial_concurrency
    assert all(t.limits.get("requests_per_minute") == 600 for t in log.of_type(events.Throttled))


def test_429s_pause_the_resource_and_every_call_succeeds() -> None:
    # fanfold is told a limit ten times the provider's, and not to learn: the 429s hold it back.
    wrong = ff.Limits(resources={"openai-chat:sim-1": ff.RateLimit(requests_per_minute=6000, learn=False)})
    log = EventLog()
    result, sim = served(
        lambda sim: ff.run(ff.map(agent(sim)), range(12), limits=wrong, on_event=log),
        limits=SimLimits(requests_per_minute=600, burst=0.1),
    )
    assert result.summary.succeeded == 12
    assert result.summary.usage.throttled == sim.stats.by_status.get(429, 0) > 0
    assert len(log.of_type(events.Throttled)) == result.summary.usage.throttled


def test_injected_faults_are_retried_until_each_call_succeeds() -> None:
    # One at a time, each input's first request meets a fault, and its retry succeeds.
    kinds = {1: "500", 3: "529", 5: "malformed", 7: "429", 9: "timeout"}
    inputs = ["a", "b", "c", "d", "e"]
    result, sim = served(
        lambda sim: ff.run(
            ff.map(agent(sim)), inputs, limits=ff.Limits(concurrency=1), timeouts=ff.Timeouts(attempt=0.5)
        ),
        faults=Faults(script=lambda n, request: kinds.get(n), hang=30.0),
        latency=Latency.fixed(0.0),
    )
    assert result.output == [f"echo: {x}" for x in inputs]
    assert result.summary.retries == 5
    assert sim.stats.requests == 10
    assert sorted(sim.stats.faults) == ["429", "500", "529", "malformed", "timeout"]


def test_a_request_budget_stops_calls_at_the_provider() -> None:
    result, sim = served(lambda sim: ff.run(ff.map(agent(sim)), range(20), budget=ff.Budget(requests=5)))
    assert sim.stats.requests == 5
    assert result.summary.succeeded == 5
    assert result.summary.counts[ff.Status.SKIPPED] == 15


def test_the_api_key_never_reaches_events_outcomes_or_errors() -> None:
    log = EventLog()
    once = ff.RetryPolicy(retry_on=Exception, attempts=2, initial=0.01)
    result, _ = served(
        lambda sim: ff.run(ff.map(agent(sim, retry=once)), ["a", "b"], on_event=log),
        faults=Faults(script=lambda n, request: "500"),  # every call fails: errors reach the outcomes
    )
    assert result.summary.failed == 2
    reported = [repr(e) for e in log.events] + [repr(o) + str(o.error) for o in result.outcomes]
    assert not [text for text in reported if KEY in text]
