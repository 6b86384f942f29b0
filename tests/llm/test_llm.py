"""LLM agents on pydantic-ai's test models: output, usage, retries, throttling and budgets."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic_ai import Agent
from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel
from pydantic_ai.usage import RequestUsage

import fanfold as ff
from fanfold import events
from fanfold.testing import EventLog, VirtualClock


class Grade(BaseModel):
    score: int


def answering(*script: Any, usage: RequestUsage | None = None) -> FunctionModel:
    """A model that plays ``script`` in order (then repeats its last entry): an exception is
    raised, a dict is the structured output, a string is text."""
    calls = {"n": 0}

    async def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        step = script[min(calls["n"], len(script) - 1)]
        calls["n"] += 1
        if isinstance(step, BaseException):
            raise step
        spent = usage or RequestUsage(input_tokens=100, output_tokens=10)
        if isinstance(step, dict):
            return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, step)], usage=spent)
        return ModelResponse(parts=[TextPart(step)], usage=spent)

    model = FunctionModel(respond)
    model.calls = calls  # type: ignore[attr-defined]
    return model


def throttle(ms: int = 500) -> ModelHTTPError:
    """A 429 that breaches the limit: the provider says none of it remains."""
    return ModelHTTPError(429, "m", headers={"retry-after-ms": str(ms), "x-ratelimit-remaining-requests": "0"})


def test_structured_output_and_usage_per_outcome_and_run() -> None:
    grader = ff.llm(answering({"score": 4}), output_type=Grade, instructions="Grade it.")
    result = ff.run_sync(ff.map(grader), ["essay one", "essay two"])
    assert result.output == [Grade(score=4), Grade(score=4)]
    assert all(o.usage == ff.Usage(requests=1, input_tokens=100, output_tokens=10) for o in result.outcomes)
    assert result.summary.usage == ff.Usage(requests=2, input_tokens=200, output_tokens=20)


def test_invalid_output_goes_back_to_the_model_and_is_counted_apart() -> None:
    grader = ff.llm(answering({"score": "not a number"}, {"score": 2}), output_type=Grade)
    result = ff.run_sync(grader, "essay")
    assert result.output == Grade(score=2)
    assert result.outcomes[0].usage is not None
    assert result.outcomes[0].usage.output_retries == 1
    assert result.summary.usage.requests == 2
    assert result.summary.usage.output_retries == 1


def test_a_429_is_retried_and_pauses_the_whole_resource(clock: VirtualClock) -> None:
    log = EventLog()
    model = answering("ok", throttle(2000), "ok")
    result = ff.run_sync(ff.map(ff.llm(model)), ["a", "b", "c"], limits=ff.Limits(concurrency=1), on_event=log)
    assert result.output == ["ok", "ok", "ok"]
    throttled = log.of_type(events.Throttled)
    assert len(throttled) == 1
    assert throttled[0].pause == pytest.approx(2.0)
    # Nothing was admitted to the resource during the pause: the next call came after it.
    calls = log.of_type(events.ModelCalled)
    assert [c.status for c in calls] == ["ok", "429", "ok", "ok"]
    assert calls[2].at - calls[2].seconds >= throttled[0].at + 2.0 - 1e-9
    assert result.summary.usage.throttled == 1
    assert result.summary.retries == 1


def test_rejected_requests_are_not_retried() -> None:
    model = answering(ModelHTTPError(400, "m", body="bad request"))
    result = ff.run_sync(ff.map(ff.llm(model)), ["a"])
    assert result.outcomes[0].status is ff.Status.FAILED
    assert model.calls["n"] == 1  # type: ignore[attr-defined]


def test_server_errors_are_retried_with_backoff(clock: VirtualClock) -> None:
    model = answering(ModelHTTPError(503, "m"), ModelHTTPError(500, "m"), "fine")
    result = ff.run_sync(ff.llm(model), "q")
    assert result.output == "fine"
    assert result.outcomes[0].usage == ff.Usage(requests=3, input_tokens=100, output_tokens=10)


def test_requests_per_minute_are_paced_by_a_continuous_bucket(clock: VirtualClock) -> None:
    log = EventLog()
    limits = ff.Limits(resources={"function": ff.RateLimit(requests_per_minute=60, burst=2)})
    result = ff.run_sync(ff.map(ff.llm(answering("ok"))), range(10), limits=limits, on_event=log)
    assert result.summary.succeeded == 10
    starts = sorted(c.at - c.seconds for c in log.of_type(events.ModelCalled))
    # One at once (a gradual start), then one a second: never more than the bucket allows.
    assert starts == pytest.approx([1.0 * i for i in range(10)])


def test_tokens_per_minute_count_the_estimate_and_settle_on_usage(clock: VirtualClock) -> None:
    log = EventLog()
    model = answering("ok", usage=RequestUsage(input_tokens=50, output_tokens=50))
    agent = ff.llm(model, model_settings={"max_tokens": 100})
    limits = ff.Limits(resources={"function": ff.RateLimit(output_tokens_per_minute=6000)})  # 100 a second
    ff.run_sync(ff.map(agent), range(5), limits=limits, on_event=log)
    starts = sorted(c.at - c.seconds for c in log.of_type(events.ModelCalled))
    # Each reserves its max_tokens (100) and gives back the 50 it did not use when it ends.
    assert starts[0] == pytest.approx(0.45)  # a gradual start: half a second of refill, less what it starts with
    assert all(later - earlier <= 1.0 + 1e-9 for earlier, later in itertools.pairwise(starts))
    assert starts[-1] < 4.0  # faster than 100 tokens per call would allow: the unused half came back


def test_one_resource_is_shared_by_every_agent_calling_the_model(clock: VirtualClock) -> None:
    model = answering("ok")
    first, second = ff.llm(model, name="first"), ff.llm(model, name="second")
    limits = ff.Limits(resources={"function": ff.RateLimit(requests_per_minute=60, burst=1)})
    log = EventLog()
    ff.run_sync(ff.parallel(first, second, ff.map(first)), ["a"], limits=limits, on_event=log)
    starts = sorted(c.at - c.seconds for c in log.of_type(events.ModelCalled))
    assert {c.resource for c in log.of_type(events.ModelCalled)} == {"function:" + model.model_name}
    assert starts == pytest.approx([0.0, 1.0, 2.0])


def test_request_budget_is_never_overshot_and_the_rest_is_skipped() -> None:
    model = answering("ok")
    result = ff.run_sync(
        ff.map(ff.llm(model)), range(20), budget=ff.Budget(requests=7), limits=ff.Limits(concurrency=5)
    )
    assert model.calls["n"] == 7  # type: ignore[attr-defined]
    assert result.summary.counts[ff.Status.SUCCEEDED] == 7
    assert result.summary.counts[ff.Status.SKIPPED] == 13
    skipped = [o for o in result.outcomes if o.status is ff.Status.SKIPPED]
    assert all("budget is exhausted (requests: 7 of 7 spent)" in (o.reason or "") for o in skipped)


def test_cost_budget_uses_the_price_and_needs_one() -> None:
    price = ff.Price(input=1_000.0, output=10_000.0)  # $0.2 a call at 100 in, 10 out
    agent = ff.llm(answering("ok"), price=price, model_settings={"max_tokens": 10})
    result = ff.run_sync(ff.map(agent), range(10), budget=ff.Budget(cost=1.0), limits=ff.Limits(concurrency=1))
    assert result.summary.succeeded == 5
    assert result.summary.usage.cost == pytest.approx(1.0)
    unpriced = ff.run_sync(ff.map(ff.llm(answering("ok"))), range(2), budget=ff.Budget(cost=1.0))
    assert unpriced.outcomes[0].status is ff.Status.FAILED
    assert "no price is known" in str(unpriced.outcomes[0].error)
    assert "ff.Price(" in str(unpriced.outcomes[0].error)


def test_a_vote_whose_samples_the_budget_stopped_is_skipped() -> None:
    result = ff.run_sync(
        ff.map(ff.vote(ff.llm(answering("yes")), n=3, early_stop=False)),
        range(4),
        budget=ff.Budget(requests=3),
        limits=ff.Limits(concurrency=1),
    )
    assert [o.status for o in result.outcomes] == [ff.Status.SUCCEEDED] + [ff.Status.SKIPPED] * 3


def test_budget_can_cancel_calls_in_flight() -> None:
    started = asyncio.Event()

    async def slow(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if not started.is_set():
            started.set()
            await asyncio.sleep(3600)  # in flight when the budget runs out
        return ModelResponse(parts=[TextPart("ok")])

    async def main() -> ff.Result[Any]:
        return await ff.run(
            ff.map(ff.llm(FunctionModel(slow))),
            range(3),
            budget=ff.Budget(requests=2, in_flight="cancel"),
            limits=ff.Limits(concurrency=3),
        )

    result = asyncio.run(asyncio.wait_for(main(), 30))
    statuses = [o.status for o in result.outcomes]
    assert statuses.count(ff.Status.SUCCEEDED) == 1
    assert statuses.count(ff.Status.SKIPPED) == 2
    assert any("cancelled in flight" in (o.reason or "") for o in result.outcomes)


def test_a_pydantic_ai_agent_of_your_own_is_governed() -> None:
    mine = Agent(TestModel(custom_output_text="mine"), instructions="Be brief.")
    result = ff.run_sync(ff.map(mine), ["a", "b"], budget=ff.Budget(requests=1))
    assert [o.status for o in result.outcomes] == [ff.Status.SUCCEEDED, ff.Status.SKIPPED]


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ff.UsageError, match="OPENAI_API_KEY"):
        ff.llm("openai:gpt-5-mini")
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    with pytest.raises(ff.UsageError, match="ANTHROPIC_API_KEY"):
        ff.llm("anthropic:claude-sonnet-4-5")


def test_bad_arguments_say_what_to_pass() -> None:
    with pytest.raises(ff.UsageError, match="provider:model"):
        ff.llm("gpt-5-mini")
    with pytest.raises(ff.UsageError, match=r"ff\.Price"):
        ff.llm(TestModel(), price=0.5)  # type: ignore[arg-type]
    with pytest.raises(ff.UsageError, match="requests_per_minute"):
        ff.RateLimit(requests_per_minute=0)
    with pytest.raises(ff.UsageError, match="in_flight"):
        ff.Budget(in_flight="later")  # type: ignore[arg-type]
    with pytest.raises(ff.UsageError, match="budget="):
        ff.run_sync(ff.map(str), [], budget={"tokens": 5})


def test_the_key_never_reaches_resource_names_or_events() -> None:
    secret = "sk-very-secret-0123456789"
    agent = ff.llm("openai-chat:gpt-5-mini", api_key=secret, base_url="http://127.0.0.1:9/v1")
    assert secret not in repr(agent._ref)  # type: ignore[attr-defined]
    assert secret not in agent._ref.resource  # type: ignore[attr-defined]


def test_streamed_requests_are_governed_too() -> None:
    """pydantic-ai streams a request when asked for events: it still reserves, is admitted and
    is accounted for (through the model wrapper's own stream path)."""
    from fanfold._llm._agent import _CALLER

    async def stream_text(messages: list[ModelMessage], info: AgentInfo) -> Any:
        yield "streamed "
        yield "answer"

    llm = ff.llm(FunctionModel(stream_function=stream_text))

    async def handler(ctx: Any, stream: Any) -> None:
        async for _ in stream:
            pass

    async def streaming(prompt: str, ctx: ff.Context) -> str:
        model = await llm._governed(ctx.run_state)  # type: ignore[attr-defined]
        token = _CALLER.set(ctx)
        try:
            answer = await Agent(model).run(prompt, event_stream_handler=handler)
        finally:
            _CALLER.reset(token)
        return answer.output

    log = EventLog()
    result = ff.run_sync(ff.map(streaming), ["a", "b", "c"], budget=ff.Budget(requests=2), on_event=log)
    assert result.output == ["streamed answer", "streamed answer"]
    assert result.summary.counts[ff.Status.SKIPPED] == 1
    assert result.summary.usage.requests == 2
    assert [c.status for c in log.of_type(events.ModelCalled)] == ["ok", "ok"]


def test_a_text_agent_sends_its_instructions_settings_and_prompt_in_one_request() -> None:
    seen: list[tuple[str | None, str, int | None]] = []

    async def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        request = messages[-1]
        prompt = request.parts[-1].content  # type: ignore[union-attr]
        settings = info.model_settings or {}
        seen.append((request.instructions, prompt, settings.get("max_tokens")))  # type: ignore[union-attr]
        return ModelResponse(parts=[TextPart(f"re: {prompt}")], usage=RequestUsage(input_tokens=5, output_tokens=2))

    agent = ff.llm(FunctionModel(respond), instructions="Be brief.", model_settings={"max_tokens": 7})
    result = ff.run_sync(ff.map(agent), ["a", {"b": 1}])
    assert result.output == ["re: a", 're: {"b":1}']
    assert sorted(seen) == [("Be brief.", "a", 7), ("Be brief.", '{"b":1}', 7)]
    assert result.summary.usage.requests == 2


def test_a_text_answer_with_no_text_is_asked_again_by_the_agent() -> None:
    answers = iter([ModelResponse(parts=[]), ModelResponse(parts=[]), ModelResponse(parts=[TextPart("finally")])])

    async def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return next(answers)

    result = ff.run_sync(ff.llm(FunctionModel(respond)), "hello")
    assert result.output == "finally"
