"""The simulated provider, through the official SDKs and pydantic-ai, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import datetime
import itertools
import json
import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal, TypeVar, Union

import aiohttp
import anthropic
import openai
import pytest
from anthropic import AsyncAnthropic
from anthropic.types import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion
from openai.types.responses import Response
from pydantic import BaseModel, Field, TypeAdapter, create_model

from fanfold._sim import fill_schema
from fanfold.testing import Faults, Latency, Reply, SimLimits, SimRequest, SimStats, SimulatedProvider

T = TypeVar("T")
CLAUDE = "claude-haiku-4-5"
USER = [{"role": "user", "content": "What is the capital of France?"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def run(main: Callable[[SimulatedProvider], Awaitable[T]], **options: Any) -> T:
    """Serve a simulator with no latency (unless given) around ``main(sim)``."""
    options.setdefault("latency", Latency.fixed(0))

    async def serve() -> T:
        async with SimulatedProvider(**options) as sim:
            return await main(sim)

    return asyncio.run(serve())


@asynccontextmanager
async def oai(sim: SimulatedProvider, **options: Any) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=sim.openai_base_url, api_key="sk-test", **options) as client:
        yield client


@asynccontextmanager
async def claude(sim: SimulatedProvider, **options: Any) -> AsyncIterator[AsyncAnthropic]:
    async with AsyncAnthropic(base_url=sim.anthropic_base_url, api_key="sk-ant-test", **options) as client:
        yield client


# --- OpenAI Chat Completions -------------------------------------------------------------------


def test_chat_completion_answers_with_text_and_usage_by_the_token_rule() -> None:
    async def main(sim: SimulatedProvider) -> None:
        async with oai(sim) as client:
            raw = await client.chat.completions.with_raw_response.create(model="gpt-4o", messages=USER)
        completion = raw.parse()
        ChatCompletion.model_validate(json.loads(raw.content))  # every required field is on the wire
        text = completion.choices[0].message.content
        assert text is not None
        assert text.startswith("Simulated answer: ")
        assert completion.choices[0].finish_reason == "stop"
        assert completion.usage is not None
        assert completion.usage.prompt_tokens == math.ceil(len(USER[0]["content"]) / 4)
        assert completion.usage.completion_tokens == math.ceil(len(text) / 4)
        assert raw.headers["x-ratelimit-limit-requests"] == "600"
        assert "x-ratelimit-limit-tokens" not in raw.headers  # only configured limits are reported

    run(main, limits=SimLimits(requests_per_minute=600))


def test_chat_stream_sends_deltas_then_usage_then_done() -> None:
    async def main(sim: SimulatedProvider) -> None:
        async with oai(sim) as client:
            stream = await client.chat.completions.create(
                model="gpt-4o", messages=USER, stream=True, stream_options={"include_usage": True}
            )
            chunks = [chunk async for chunk in stream]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text.startswith("Simulated answer: ")
        assert chunks[-2].choices[0].finish_reason == "stop"
        usage = chunks[-1].usage
        assert usage is not None
        assert usage.completion_tokens == math.ceil(len(text) / 4)
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens

    run(main, latency=Latency.fixed(0.01))  # streamed in timed slices


def test_chat_tools_round_trip_with_a_scripted_answer() -> None:
    seen: list[SimRequest] = []

    def answer(request: SimRequest) -> Reply | str:
        seen.append(request)
        if not request.tool_results:
            return Reply(tool_calls=[("get_weather", {"city": "Paris"})])
        return f"It is {request.tool_results[0][1]}"

    async def main(sim: SimulatedProvider) -> str | None:
        async with oai(sim) as client:
            first = await client.chat.completions.create(model="gpt-4o", messages=USER, tools=[WEATHER_TOOL])
            call = first.choices[0].message.tool_calls[0]
            assert first.choices[0].finish_reason == "tool_calls"
            assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris"})
            second = await client.chat.completions.create(
                model="gpt-4o",
                tools=[WEATHER_TOOL],
                messages=[
                    *USER,
                    first.choices[0].message.model_dump(exclude_none=True),
                    {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
                ],
            )
            return second.choices[0].message.content

    assert run(main, answer=answer) == "It is sunny"
    assert seen[0].tools == ("get_weather",)
    assert seen[1].tool_results == (("get_weather", "sunny"),)
    assert [role for role, _ in seen[1].messages] == ["user", "assistant", "tool"]


def test_default_answer_does_not_call_tools_it_is_offered() -> None:
    async def main(sim: SimulatedProvider) -> ChatCompletion:
        async with oai(sim) as client:
            return await client.chat.completions.create(model="gpt-4o", messages=USER, tools=[WEATHER_TOOL])

    completion = run(main)
    assert completion.choices[0].message.tool_calls is None
    assert completion.choices[0].finish_reason == "stop"


class Invoice(BaseModel):
    number: str
    total: float
    lines: list[dict[str, int]]
    paid: bool | None = None


def test_json_schema_response_format_gets_schema_valid_filler() -> None:
    async def main(sim: SimulatedProvider) -> str | None:
        async with oai(sim) as client:
            completion = await client.chat.completions.create(
                model="gpt-4o",
                messages=USER,
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": "invoice", "schema": Invoice.model_json_schema(), "strict": True},
                },
            )
        return completion.choices[0].message.content

    content = run(main)
    assert content is not None
    Invoice.model_validate_json(content)


def test_reply_output_tokens_sets_the_answer_length() -> None:
    async def main(sim: SimulatedProvider) -> tuple[int, int]:
        async with oai(sim) as client, claude(sim) as anthropic_client:
            chat = await client.chat.completions.create(model="gpt-4o", messages=USER)
            message = await anthropic_client.messages.create(model=CLAUDE, max_tokens=1000, messages=USER)
        assert chat.usage is not None
        assert (chat.choices[0].message.content or "").startswith("Simulated answer: ")
        return chat.usage.completion_tokens, message.usage.output_tokens

    assert run(main, answer=Reply(output_tokens=200)) == (200, 200)


def test_max_tokens_cuts_the_answer_and_says_so() -> None:
    async def main(sim: SimulatedProvider) -> tuple[ChatCompletion, Message]:
        async with oai(sim) as client, claude(sim) as anthropic_client:
            chat = await client.chat.completions.create(model="gpt-4o", messages=USER, max_completion_tokens=3)
            message = await anthropic_client.messages.create(model=CLAUDE, max_tokens=3, messages=USER)
            return chat, message

    chat, message = run(main, answer=Reply(output_tokens=50))
    assert chat.choices[0].finish_reason == "length"
    assert chat.usage is not None
    assert chat.usage.completion_tokens == 3
    assert chat.choices[0].message.content is not None
    assert len(chat.choices[0].message.content) == 12
    assert (message.stop_reason, message.usage.output_tokens) == ("max_tokens", 3)


# --- OpenAI Responses API ----------------------------------------------------------------------


def test_responses_api_text_stream_and_function_calls() -> None:
    def answer(request: SimRequest) -> Reply | None:
        return None if request.tool_results or not request.tools else Reply(tool_calls=[("lookup", {"q": "x"})])

    async def main(sim: SimulatedProvider) -> None:
        async with oai(sim) as client:
            raw = await client.responses.with_raw_response.create(
                model="gpt-4o", input="hello", instructions="Be brief"
            )
            Response.model_validate(json.loads(raw.content))
            response = raw.parse()
            assert response.output_text.startswith("Simulated answer: ")
            assert response.usage is not None
            assert response.usage.input_tokens == math.ceil(len("Be brief" + "hello") / 4)

            stream = await client.responses.create(model="gpt-4o", input="hello", stream=True)
            events = [event async for event in stream]
            assert events[0].type == "response.created"
            assert events[-1].type == "response.completed"
            deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
            assert deltas == response.output_text  # same question, same seed: same answer

            tool = {"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}
            called = await client.responses.create(model="gpt-4o", input="find x", tools=[tool])
            call = called.output[0]
            assert call.type == "function_call"
            answered = await client.responses.create(
                model="gpt-4o",
                tools=[tool],
                input=[
                    {"role": "user", "content": "find x"},
                    {"type": "function_call", "call_id": call.call_id, "name": "lookup", "arguments": call.arguments},
                    {"type": "function_call_output", "call_id": call.call_id, "output": "found"},
                ],
            )
            assert answered.output_text.startswith("Simulated answer: ")

    run(main, answer=answer)


# --- Anthropic Messages --------------------------------------------------------------------------


def test_anthropic_message_plain_and_streaming() -> None:
    async def main(sim: SimulatedProvider) -> None:
        async with claude(sim) as client:
            raw = await client.messages.with_raw_response.create(
                model=CLAUDE, max_tokens=100, system="Be brief", messages=USER
            )
            Message.model_validate(raw.http_response.json())
            message = await raw.parse()
            assert message.content[0].type == "text"
            assert message.content[0].text.startswith("Simulated answer: ")
            assert message.stop_reason == "end_turn"
            assert message.usage.input_tokens == math.ceil(len("Be brief" + USER[0]["content"]) / 4)
            assert raw.headers["anthropic-ratelimit-requests-limit"] == "50"
            assert raw.headers["anthropic-ratelimit-requests-reset"].endswith("Z")

            async with client.messages.stream(model=CLAUDE, max_tokens=100, messages=USER) as stream:
                streamed = await stream.get_final_message()
            assert streamed.content[0].type == "text"
            assert streamed.content[0].text == message.content[0].text
            assert streamed.usage.output_tokens == message.usage.output_tokens

            counted = await client.messages.count_tokens(model=CLAUDE, system="Be brief", messages=USER)
            assert counted.input_tokens == message.usage.input_tokens

    run(main, limits=SimLimits(requests_per_minute=50))


def test_anthropic_tool_use_streamed_and_not() -> None:
    tools: Any = [
        {"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
    ]

    async def main(sim: SimulatedProvider) -> None:
        async with claude(sim) as client:
            message = await client.messages.create(model=CLAUDE, max_tokens=100, messages=USER, tools=tools)
            assert message.stop_reason == "tool_use"
            block = message.content[0]
            assert block.type == "tool_use"
            assert (block.name, block.input) == ("get_weather", {"city": "Paris"})
            assert block.id.startswith("toolu_")
            async with client.messages.stream(model=CLAUDE, max_tokens=100, messages=USER, tools=tools) as stream:
                streamed = await stream.get_final_message()
            assert streamed.content[0].type == "tool_use"
            assert streamed.content[0].input == {"city": "Paris"}

    run(main, answer=Reply(tool_calls=[("get_weather", {"city": "Paris"})]))


# --- pydantic-ai models ------------------------------------------------------------------------


class City(BaseModel):
    name: str
    population: int
    landmarks: list[str]


def test_pydantic_ai_agents_get_structured_output_from_every_api() -> None:
    """Tool output (pydantic-ai's default), native output (a JSON-schema response format) and
    prompted output (the schema in the instructions) all get schema-valid filler."""
    from pydantic_ai import Agent, NativeOutput, PromptedOutput
    from pydantic_ai.models.anthropic import AnthropicModel
    from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
    from pydantic_ai.providers.anthropic import AnthropicProvider
    from pydantic_ai.providers.openai import OpenAIProvider

    async def main(sim: SimulatedProvider) -> list[Any]:
        outputs = []
        async with oai(sim) as openai_client, claude(sim) as anthropic_client:
            models = [
                OpenAIChatModel("gpt-4o", provider=OpenAIProvider(openai_client=openai_client)),
                OpenAIResponsesModel("gpt-4o", provider=OpenAIProvider(openai_client=openai_client)),
                AnthropicModel(CLAUDE, provider=AnthropicProvider(anthropic_client=anthropic_client)),
            ]
            for model in models:
                for output_type in (City, NativeOutput(City), PromptedOutput(City), str):
                    agent = Agent(model, output_type=output_type, retries=0)  # no second chances
                    outputs.append((await agent.run("Tell me about Paris")).output)
        return outputs

    outputs = run(main)
    assert [type(o) for o in outputs] == [City, City, City, str] * 3
    assert all(o.landmarks for o in outputs if isinstance(o, City))
    assert all(o.startswith("Simulated answer: ") for o in outputs if isinstance(o, str))


def test_pydantic_ai_agent_calls_a_tool_when_the_answer_says_so() -> None:
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    def answer(request: SimRequest) -> Reply | None:
        return None if request.tool_results else Reply(tool_calls=[("double", {"x": 21})])

    async def main(sim: SimulatedProvider) -> list[int]:
        calls: list[int] = []
        async with oai(sim) as client:
            agent = Agent(OpenAIChatModel("gpt-4o", provider=OpenAIProvider(openai_client=client)))

            @agent.tool_plain
            def double(x: int) -> int:
                calls.append(x)
                return 2 * x

            await agent.run("double 21")
        return calls

    assert run(main, answer=answer) == [21]


# --- rate limits ---------------------------------------------------------------------------------

# A bucket of two requests that refills one request per ten seconds: a test never waits long
# enough for a refill to change its outcome.
TWO_REQUESTS = SimLimits(requests_per_minute=6, burst=20)
FOUR_REQUESTS = SimLimits(requests_per_minute=12, burst=20)


def test_an_empty_bucket_gives_429_with_retry_after_and_rate_limit_headers() -> None:
    async def main(sim: SimulatedProvider) -> None:
        async with oai(sim, max_retries=0) as client:
            for _ in range(2):
                raw = await client.chat.completions.with_raw_response.create(model="gpt-4o", messages=USER)
            assert raw.headers["x-ratelimit-remaining-requests"] == "0"
            with pytest.raises(openai.RateLimitError) as caught:
                await client.chat.completions.create(model="gpt-4o", messages=USER)
        response = caught.value.response
        assert caught.value.code == "rate_limit_exceeded"
        assert response.headers["x-ratelimit-limit-requests"] == "6"
        assert int(response.headers["retry-after"]) == math.ceil(int(response.headers["retry-after-ms"]) / 1000)
        assert 10_000 <= int(response.headers["retry-after-ms"]) <= 20_000
        async with claude(sim, max_retries=0) as client:
            with pytest.raises(anthropic.RateLimitError) as caught_anthropic:
                await client.messages.create(model=CLAUDE, max_tokens=10, messages=USER)
        assert caught_anthropic.value.body["error"]["type"] == "rate_limit_error"
        assert caught_anthropic.value.response.headers["anthropic-ratelimit-requests-remaining"] == "0"
        stats = sim.stats
        assert (stats.by_status, stats.rate_limited, stats.injected_429) == ({200: 2, 429: 2}, 2, 0)

    run(main, limits=TWO_REQUESTS)


def test_denied_requests_spend_the_request_bucket() -> None:
    async def main(sim: SimulatedProvider) -> list[int]:
        waits = []
        async with oai(sim, max_retries=0) as client:
            for _ in range(6):
                try:
                    await client.chat.completions.create(model="gpt-4o", messages=USER)
                except openai.RateLimitError as exc:
                    waits.append(int(exc.response.headers["retry-after-ms"]))
        return waits

    waits = run(main, limits=TWO_REQUESTS)
    assert len(waits) == 4
    # Each denial deepens the debt by one request, ten more seconds of refill.
    assert all(later - earlier > 9_000 for earlier, later in itertools.pairwise(waits))


def test_token_buckets_reserve_max_tokens_and_credit_back_the_unused_part() -> None:
    async def main(sim: SimulatedProvider) -> Any:
        async with oai(sim, max_retries=0) as client:
            await client.chat.completions.create(model="gpt-4o", messages=USER, max_tokens=5000)
            with pytest.raises(openai.RateLimitError) as caught:
                await client.chat.completions.create(model="gpt-4o", messages=USER, max_tokens=5000)
        return caught.value.body

    # 600 tokens a minute, 10 in the bucket: the first request is admitted into debt, the unused
    # part of its 5000 reserved tokens comes back, and the bucket is still short for the second.
    error = run(main, limits=SimLimits(requests_per_minute=None, tokens_per_minute=600))
    assert (error["type"], error["code"]) == ("tokens", "rate_limit_exceeded")


def test_set_limits_mid_run_keeps_each_bucket_level_within_the_new_capacity() -> None:
    async def main(sim: SimulatedProvider) -> list[str]:
        outcomes = []
        async with oai(sim, max_retries=0) as client:

            async def send(count: int) -> None:
                for _ in range(count):
                    try:
                        await client.chat.completions.create(model="m", messages=USER)
                        outcomes.append("ok")
                    except openai.RateLimitError:
                        outcomes.append("429")

            await send(3)
            sim.set_limits(TWO_REQUESTS)
            await send(2)
            sim.set_limits(FOUR_REQUESTS)
            await send(1)
            sim.set_limits(None)
            await send(1)
        return outcomes

    # Four in the bucket, three spent; halved, the one left is spent and the next is denied (and
    # spends a token it does not have); restored, the debt is still there; no limits: all pass.
    assert run(main, limits=FOUR_REQUESTS) == ["ok", "ok", "ok", "ok", "429", "429", "ok"]


def test_no_rate_limit_headers_when_switched_off() -> None:
    async def main(sim: SimulatedProvider) -> dict[str, str]:
        async with oai(sim) as client:
            raw = await client.chat.completions.with_raw_response.create(model="m", messages=USER)
        return dict(raw.headers)

    headers = run(main, limits=SimLimits(requests_per_minute=600), rate_limit_headers=False)
    assert not [name for name in headers if "ratelimit" in name]


def test_a_ramp_starts_the_limits_low() -> None:
    from fanfold._sim import RampLimit

    async def main(sim: SimulatedProvider) -> list[str]:
        outcomes = []
        async with claude(sim, max_retries=0) as client:
            for _ in range(4):
                try:
                    await client.messages.create(model=CLAUDE, max_tokens=10, messages=USER)
                    outcomes.append("ok")
                except anthropic.RateLimitError:
                    outcomes.append("429")
        return outcomes

    limits = SimLimits(requests_per_minute=6, burst=40, ramp=RampLimit(initial=0.5, seconds=1000))
    assert run(main, limits=limits) == ["ok", "ok", "429", "429"]  # half of a four-request bucket


# --- faults --------------------------------------------------------------------------------------

KINDS = ["429", "500", "529", "timeout", "malformed"]


def scripted(*kinds: str | None) -> Faults:
    """Request n gets ``kinds[n - 1]`` (then no fault)."""
    return Faults(script=lambda n, request: kinds[n - 1] if n <= len(kinds) else None)


def timeout_for(kind: str) -> float:
    """A client timeout short for the request that hangs, generous for the others (a loaded
    machine must not turn them into timeouts too)."""
    return 0.3 if kind == "timeout" else 30.0


def test_injected_faults_surface_as_the_openai_sdk_errors() -> None:
    async def main(sim: SimulatedProvider) -> list[type[BaseException]]:
        errors: list[type[BaseException]] = []
        async with oai(sim, max_retries=0) as client:
            for kind in KINDS:
                try:
                    await client.with_options(timeout=timeout_for(kind)).chat.completions.create(
                        model="gpt-4o", messages=USER
                    )
                except Exception as exc:
                    errors.append(type(exc))
            await client.chat.completions.create(model="gpt-4o", messages=USER)  # the fault is gone
        stats = sim.stats
        assert stats.faults == dict.fromkeys(KINDS, 1)
        assert (stats.injected_429, stats.rate_limited, stats.by_status[503]) == (1, 0, 1)
        return errors

    errors = run(main, faults=scripted(*KINDS))
    assert errors[:4] == [
        openai.RateLimitError,
        openai.InternalServerError,
        openai.InternalServerError,
        openai.APITimeoutError,
    ]
    assert issubclass(errors[4], ValueError)  # a truncated JSON body fails to decode


def test_injected_faults_surface_as_the_anthropic_sdk_errors() -> None:
    async def main(sim: SimulatedProvider) -> list[type[BaseException]]:
        errors: list[type[BaseException]] = []
        async with claude(sim, max_retries=0) as client:
            for kind in KINDS:
                try:
                    streaming = client.with_options(timeout=timeout_for(kind)).messages.stream
                    async with streaming(model=CLAUDE, max_tokens=10, messages=USER) as stream:
                        await stream.get_final_message()
                except Exception as exc:
                    errors.append(type(exc))
        return errors

    errors = run(main, faults=scripted(*KINDS))
    assert errors[:4] == [
        anthropic.RateLimitError,
        anthropic.InternalServerError,
        anthropic.OverloadedError,
        anthropic.APITimeoutError,
    ]
    assert issubclass(errors[4], ValueError)


def test_an_injected_429_says_retry_after_one_second() -> None:
    async def main(sim: SimulatedProvider) -> str:
        async with oai(sim, max_retries=0) as client:
            with pytest.raises(openai.RateLimitError) as caught:
                await client.chat.completions.create(model="gpt-4o", messages=USER)
        return caught.value.response.headers["retry-after"]

    assert run(main, faults=scripted("429")) == "1"


def test_the_sdk_retries_an_injected_fault_and_succeeds() -> None:
    async def main(sim: SimulatedProvider) -> str | None:
        async with oai(sim, max_retries=2) as client:
            completion = await client.chat.completions.create(model="gpt-4o", messages=USER)
        assert sim.stats.by_status == {500: 1, 200: 1}
        return completion.choices[0].message.content

    assert run(main, faults=scripted("500"))


def test_a_failing_answer_function_becomes_a_500_that_names_the_error() -> None:
    def answer(request: SimRequest) -> str:
        raise KeyError("no script for this")

    async def main(sim: SimulatedProvider) -> str:
        async with oai(sim, max_retries=0) as client:
            with pytest.raises(openai.InternalServerError) as caught:
                await client.chat.completions.create(model="gpt-4o", messages=USER)
        return str(caught.value)

    assert "KeyError" in run(main, answer=answer)


# --- determinism -------------------------------------------------------------------------------


def test_same_seed_gives_the_same_answers_and_faults() -> None:
    async def main(sim: SimulatedProvider) -> list[str]:
        seen = []
        async with oai(sim, max_retries=0) as client:
            for i in range(30):
                try:
                    completion = await client.chat.completions.create(
                        model="gpt-4o", messages=[{"role": "user", "content": f"question {i % 3}"}]
                    )
                    seen.append(completion.choices[0].message.content or "")
                except openai.APIStatusError as exc:
                    seen.append(str(exc.status_code))
        return seen

    faults = Faults(rate_429=0.2, rate_500=0.2)
    first, again, other = (run(main, faults=faults, seed=seed) for seed in (7, 7, 8))
    assert first == again
    assert first != other
    assert {"429", "500"} <= set(first)


# --- stats and control endpoints ---------------------------------------------------------------


def test_stats_limits_and_reset_over_http() -> None:
    async def main(sim: SimulatedProvider) -> None:
        async with oai(sim, max_retries=0) as client:
            for _ in range(2):
                await client.chat.completions.create(model="gpt-4o", messages=USER)
            with pytest.raises(openai.RateLimitError):
                await client.chat.completions.create(model="gpt-4o", messages=USER)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{sim.url}/_sim/stats") as response:
                stats = SimStats.from_dict(await response.json())
            assert stats.requests == 3
            assert stats.by_status == {200: 2, 429: 1}
            assert (sum(stats.timeline_ok), sum(stats.timeline_429)) == (2, 1)  # by second: not asserted
            assert stats.requests_by_model == {"gpt-4o": 3}
            assert stats.output_tokens > 0
            assert stats.first_arrival is not None
            assert stats.last_arrival is not None
            assert stats.first_arrival <= stats.last_arrival

            async with http.post(f"{sim.url}/_sim/limits", json={"requests_per_minute": 6000}) as response:
                assert response.status == 200
            assert sim.limits == SimLimits(requests_per_minute=6000)
            async with http.post(f"{sim.url}/_sim/limits", json={"requests_per_minute": -1}) as response:
                assert response.status == 400
                assert "requests_per_minute" in (await response.json())["error"]
            async with http.post(f"{sim.url}/_sim/reset") as response:
                assert response.status == 200
        assert sim.stats == SimStats()

    run(main, limits=TWO_REQUESTS)


def test_a_request_without_an_api_key_is_refused_and_a_bad_body_is_a_400() -> None:
    async def main(sim: SimulatedProvider) -> None:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{sim.url}/v1/messages", json={"model": CLAUDE}) as response:
                assert response.status == 401
                assert (await response.json())["error"]["type"] == "authentication_error"
            headers = {"x-api-key": "secret-key-value"}
            async with http.post(f"{sim.url}/v1/messages", json={"model": CLAUDE}, headers=headers) as response:
                body = await response.text()
                assert response.status == 400
                assert "max_tokens" in body
                assert "secret-key-value" not in body

    run(main)


def test_peak_concurrency_counts_requests_in_flight_together() -> None:
    async def main(sim: SimulatedProvider) -> int:
        async with oai(sim) as client, asyncio.TaskGroup() as tasks:
            for _ in range(5):
                tasks.create_task(client.chat.completions.create(model="gpt-4o", messages=USER))
        return sim.stats.peak_concurrency

    assert 1 <= run(main, latency=Latency.fixed(0.05)) <= 5


# --- from sync code ------------------------------------------------------------------------------


def test_in_thread_serves_sync_clients() -> None:
    with SimulatedProvider(latency=Latency.fixed(0), limits=TWO_REQUESTS).in_thread() as sim:
        with openai.OpenAI(base_url=sim.openai_base_url, api_key="sk-test", max_retries=0) as client:
            completion = client.chat.completions.create(model="gpt-4o", messages=USER)
            assert (completion.choices[0].message.content or "").startswith("Simulated answer: ")
            sim.set_limits(SimLimits(requests_per_minute=6, burst=10))  # from this thread to the server's
            client.chat.completions.create(model="gpt-4o", messages=USER)
            with pytest.raises(openai.RateLimitError):  # the bucket of one request is spent
                client.chat.completions.create(model="gpt-4o", messages=USER)
        assert sim.stats.by_status == {200: 2, 429: 1}


# --- schema filler -------------------------------------------------------------------------------

_model_names = itertools.count()


def _model(fields: list[Any]) -> Any:
    return create_model(f"Model{next(_model_names)}", **{f"field_{i}": (t, ...) for i, t in enumerate(fields)})


_bounds = st.integers(-1000, 1000)
_spans = st.integers(1, 50)
_scalars = st.one_of(
    st.sampled_from([int, str, float, bool, None, datetime.date, datetime.datetime, uuid.UUID]),
    st.builds(lambda lo, span: Annotated[int, Field(ge=lo, le=lo + span)], _bounds, _spans),
    st.builds(lambda lo, span: Annotated[float, Field(gt=lo, lt=lo + span)], _bounds, _spans),
    st.builds(lambda m: Annotated[int, Field(multiple_of=m, gt=0)], st.integers(1, 20)),
    st.builds(lambda lo, span: Annotated[str, Field(min_length=lo, max_length=lo + span)], st.integers(0, 30), _spans),
    st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=3, unique=True).map(lambda vs: Literal[tuple(vs)]),
)
_types = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        inner.map(lambda t: list[t]),
        inner.map(lambda t: dict[str, t]),
        inner.map(lambda t: dict[Literal["high", "low"], t]),  # propertyNames: keys from an enum
        inner.map(lambda t: Union[t, None]),  # noqa: UP007 - `t | None` fails when t is None
        st.builds(lambda t, n: Annotated[list[t], Field(min_length=n)], inner, st.integers(0, 3)),
        st.lists(inner, min_size=1, max_size=4).map(_model),
        st.tuples(st.lists(inner, min_size=1, max_size=3).map(_model), inner).map(lambda pair: Union[pair]),  # noqa: UP007
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_types)
def test_schema_filler_always_validates_against_pydantic_schemas(kind: Any) -> None:
    adapter = TypeAdapter(kind)
    value = fill_schema(adapter.json_schema())
    adapter.validate_json(json.dumps(value))


class Node(BaseModel):
    value: int
    children: list[Node]
    parent: Node | None = None


def test_schema_filler_ends_recursive_schemas_and_honours_the_rest() -> None:
    Node.model_validate(fill_schema(Node.model_json_schema()))
    assert fill_schema({"prefixItems": [{"const": 1}, {"type": "boolean"}]}) == [1, True]
    assert fill_schema({"allOf": [{"properties": {"a": {"type": "integer"}}}, {"properties": {"b": {}}}]}) == {
        "a": 0,
        "b": "text",
    }
    assert fill_schema({"type": "integer", "minimum": 7, "multipleOf": 5}) == 10
    assert fill_schema({"type": "number", "exclusiveMaximum": -3}) == -4
    assert fill_schema({"type": ["null", "string"], "format": "email"}) == "user@example.com"
