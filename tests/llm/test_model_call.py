"""Model requests as leaf calls: the same retry rule and timeouts as any leaf (the llm's own,
else the run's, else the default for model requests), and streams taken once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage

import fanfold as ff
from fanfold import events
from fanfold.testing import EventLog, VirtualClock


def scripted(*script: BaseException | str) -> FunctionModel:
    """A model that answers its n-th request with ``script[n]`` (an exception is raised), and
    the last entry from then on; ``requests(model)`` counts them."""
    calls = {"n": 0}

    async def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        calls["n"] += 1
        answer = script[min(calls["n"], len(script)) - 1]
        if isinstance(answer, BaseException):
            raise answer
        return ModelResponse(parts=[TextPart(answer)], usage=RequestUsage(input_tokens=10, output_tokens=2))

    model = FunctionModel(respond)
    model.calls = calls  # type: ignore[attr-defined]
    return model


def requests(model: FunctionModel) -> int:
    return model.calls["n"]  # type: ignore[attr-defined,no-any-return]


def rejected() -> ModelHTTPError:
    return ModelHTTPError(400, "m", body="bad request")  # not transient: the default never retries it


def overloaded() -> ModelHTTPError:
    return ModelHTTPError(503, "m")  # transient: the default retries it


def test_the_runs_policy_applies_to_a_model_request_whose_llm_has_none() -> None:
    model = scripted(rejected(), "fine")
    run_policy = ff.RetryPolicy(retry_on=ModelHTTPError, attempts=2, initial=0.0)
    result = ff.run_sync(ff.map(ff.llm(model)), ["q"], retry=run_policy)
    assert result.output == ["fine"]
    assert requests(model) == 2
    assert result.summary.retries == 1


def test_the_runs_policy_replaces_the_default_for_model_requests() -> None:
    model = scripted(overloaded(), "fine")
    result = ff.run_sync(ff.map(ff.llm(model)), ["q"], retry=ff.RetryPolicy(retry_on=ValueError))
    assert result.outcomes[0].status is ff.Status.FAILED
    assert requests(model) == 1


def test_the_llms_own_policy_wins_over_the_runs() -> None:
    model = scripted(overloaded(), "fine")
    own = ff.llm(model, retry=ff.RetryPolicy(retry_on=ModelHTTPError, attempts=1))
    run_policy = ff.RetryPolicy(retry_on=ModelHTTPError, attempts=5, initial=0.0)
    result = ff.run_sync(ff.map(own), ["q"], retry=run_policy)
    assert result.outcomes[0].status is ff.Status.FAILED
    assert requests(model) == 1
    assert result.summary.retries == 0


def test_with_no_policy_anywhere_model_requests_retry_transient_errors_only(clock: VirtualClock) -> None:
    transient, fatal = scripted(overloaded(), "fine"), scripted(rejected(), "fine")
    assert ff.run_sync(ff.llm(transient), "q").output == "fine"
    assert requests(transient) == 2
    assert ff.run_sync(ff.map(ff.llm(fatal)), ["q"]).outcomes[0].status is ff.Status.FAILED
    assert requests(fatal) == 1


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


class Streams:
    """A composite that streams one model request through its llm's governed model, as
    pydantic-ai does when asked for events."""

    composite = True

    def __init__(self, llm: ff.LLMAgent) -> None:
        self.llm = llm

    async def run(self, prompt: str, ctx: ff.Context) -> str | None:
        from fanfold._llm._agent import _CALLER

        model = await self.llm._governed(ctx.run_state)  # type: ignore[attr-defined]
        token = _CALLER.set(ctx)
        try:
            messages = [ModelRequest.user_text_prompt(prompt)]
            async with model.request_stream(messages, None, ModelRequestParameters()) as stream:
                async for _ in stream:
                    pass
                text: str | None = stream.get().text
                return text
        finally:
            _CALLER.reset(token)


def test_a_stream_is_governed_but_never_retried() -> None:
    """A stream is reserved, admitted and accounted for like any request, but a failed stream
    is not sent again (part of it may have reached the caller), whatever the policy says."""
    opened = {"n": 0}

    async def stream_text(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        opened["n"] += 1
        yield "part "
        if opened["n"] == 1:
            raise ModelHTTPError(503, "m")
        yield "whole"

    streams = Streams(ff.llm(FunctionModel(stream_function=stream_text)))
    log = EventLog()
    policy = ff.RetryPolicy(retry_on=ModelHTTPError, attempts=3, initial=0.0)
    result = ff.run_sync(
        ff.map(streams),
        ["a", "b"],
        retry=policy,
        budget=ff.Budget(requests=10),
        limits=ff.Limits(concurrency=1),
        on_event=log,
    )
    assert [o.status for o in result.outcomes] == [ff.Status.FAILED, ff.Status.SUCCEEDED]
    assert result.outcomes[1].value == "part whole"
    assert opened["n"] == 2  # the failed stream was not sent again
    assert [(c.attempt, c.status) for c in log.of_type(events.ModelCalled)] == [(1, "503"), (1, "ok")]
    assert log.of_type(events.TaskRetrying) == []
    assert result.summary.usage.requests == 2
    assert result.summary.leaf_calls == 2
