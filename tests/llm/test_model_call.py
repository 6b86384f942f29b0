"""Model requests as leaf calls: the same retry rule and timeouts as any leaf (the llm's own,
else the run's, else the default for model requests), and streams taken once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic_ai import Agent
from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage

import fanfold as ff
from fanfold import events
from fanfold.testing import EventLog, VirtualClock


def scripted(*script: BaseException | str) -> FunctionModel:
    """A model that plays ``script`` in order (then repeats its last entry), counting requests."""
    calls = {"n": 0}

    async def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        step = script[min(calls["n"], len(script) - 1)]
        calls["n"] += 1
        if isinstance(step, BaseException):
            raise step
        return ModelResponse(parts=[TextPart(step)], usage=RequestUsage(input_tokens=10, output_tokens=2))

    model = FunctionModel(respond)
    model.calls = calls  # type: ignore[attr-defined]
    return model


def requests(model: FunctionModel) -> int:
    return model.calls["n"]  # type: ignore[attr-defined,no-any-return]


REJECTED = ModelHTTPError(400, "m", body="bad request")  # not transient: the default never retries it
OVERLOADED = ModelHTTPError(503, "m")  # transient: the default retries it


def test_the_runs_policy_applies_to_a_model_request_whose_llm_has_none() -> None:
    model = scripted(REJECTED, "fine")
    run_policy = ff.RetryPolicy(retry_on=ModelHTTPError, attempts=2, initial=0.0)
    result = ff.run_sync(ff.map(ff.llm(model)), ["q"], retry=run_policy)
    assert result.output == ["fine"]
    assert requests(model) == 2
    assert result.summary.retries == 1


def test_the_runs_policy_replaces_the_default_for_model_requests() -> None:
    model = scripted(OVERLOADED, "fine")
    result = ff.run_sync(ff.map(ff.llm(model)), ["q"], retry=ff.RetryPolicy(retry_on=ValueError))
    assert result.outcomes[0].status is ff.Status.FAILED
    assert requests(model) == 1


def test_the_llms_own_policy_wins_over_the_runs() -> None:
    model = scripted(OVERLOADED, "fine")
    own = ff.llm(model, retry=ff.RetryPolicy(retry_on=ModelHTTPError, attempts=1))
    run_policy = ff.RetryPolicy(retry_on=ModelHTTPError, attempts=5, initial=0.0)
    result = ff.run_sync(ff.map(own), ["q"], retry=run_policy)
    assert result.outcomes[0].status is ff.Status.FAILED
    assert requests(model) == 1
    assert result.summary.retries == 0


def test_with_no_policy_anywhere_model_requests_retry_transient_errors_only(clock: VirtualClock) -> None:
    overloaded, rejected = scripted(OVERLOADED, "fine"), scripted(REJECTED, "fine")
    assert ff.run_sync(ff.llm(overloaded), "q").output == "fine"
    assert requests(overloaded) == 2
    assert ff.run_sync(ff.map(ff.llm(rejected)), ["q"]).outcomes[0].status is ff.Status.FAILED
    assert requests(rejected) == 1


def hanging(first_attempts: int) -> FunctionModel:
    """A model whose first ``first_attempts`` requests never answer."""
    calls = {"n": 0}

    async def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        calls["n"] += 1
        if calls["n"] <= first_attempts:
            await asyncio.Event().wait()
        return ModelResponse(parts=[TextPart("late")])

    model = FunctionModel(respond)
    model.calls = calls  # type: ignore[attr-defined]
    return model


def test_the_runs_attempt_timeout_bounds_each_model_request(clock: VirtualClock) -> None:
    model = hanging(first_attempts=1)
    log = EventLog()
    result = ff.run_sync(ff.map(ff.llm(model)), ["q"], timeouts=ff.Timeouts(attempt=3), on_event=log)
    assert result.output == ["late"]
    assert requests(model) == 2
    (retrying,) = log.of_type(events.TaskRetrying)
    assert retrying.error.message == "model request attempt 1 timed out after 3s"


def test_the_runs_task_timeout_bounds_a_model_request_with_its_retries(clock: VirtualClock) -> None:
    model = hanging(first_attempts=100)
    timeouts = ff.Timeouts(attempt=3, task=10)
    retry = ff.RetryPolicy(retry_on=Exception, attempts=10, initial=0.0)
    result = ff.run_sync(ff.map(ff.llm(model)), ["q"], timeouts=timeouts, retry=retry)
    outcome = result.outcomes[0]
    assert outcome.status is ff.Status.TIMED_OUT
    assert str(outcome.error) == "TaskTimeout: task timed out after 10s"
    assert clock.now == pytest.approx(10)
    assert requests(model) == 4  # attempts at 0, 3, 6 and 9 s; the fourth is cut at 10 s


def test_a_stream_is_governed_but_never_retried() -> None:
    """pydantic-ai streams a request when asked for events: the stream is admitted, reserved
    and accounted for like any request, but a failed stream is not sent again (part of it may
    have reached the caller), whatever the policy says."""
    from fanfold._llm._agent import _CALLER

    opened = {"n": 0}

    async def stream_text(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        opened["n"] += 1
        yield "part "
        raise ModelHTTPError(503, "m")

    llm = ff.llm(FunctionModel(stream_function=stream_text))

    async def handler(ctx: Any, stream: Any) -> None:
        async for _ in stream:
            pass

    async def streaming(prompt: str, ctx: ff.Context) -> str:
        model = llm._governed(ctx.run_state)  # type: ignore[attr-defined]
        token = _CALLER.set(ctx)
        try:
            answer = await Agent(model).run(prompt, event_stream_handler=handler)
        finally:
            _CALLER.reset(token)
        return answer.output

    log = EventLog()
    policy = ff.RetryPolicy(retry_on=Exception, attempts=3, initial=0.0)
    result = ff.run_sync(ff.map(streaming), ["a"], retry=policy, budget=ff.Budget(requests=10), on_event=log)
    assert opened["n"] == 3  # the agent around it was retried (3 attempts), each stream sent once
    assert [c.status for c in log.of_type(events.ModelCalled)] == ["503", "503", "503"]
    assert [c.attempt for c in log.of_type(events.ModelCalled)] == [1, 1, 1]
    assert result.summary.usage.requests == 3
