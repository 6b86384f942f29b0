"""Provider accounting in the governor's buckets, rejected calls refunded, and limit breaches
told apart from isolated 429s."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage

import fanfold as ff
from fanfold import events
from fanfold._governor import MAX_TOKENS, REJECTED, ProviderResource
from fanfold.testing import EventLog, VirtualClock


def test_bad_accounting_settings_name_the_value_and_the_fix() -> None:
    with pytest.raises(ff.UsageError, match=r"accounting='after'.*'arrival'.*'usage'"):
        ff.RateLimit(accounting="after")  # type: ignore[arg-type]
    with pytest.raises(ff.UsageError, match=r"default_max_tokens is -5; pass a whole number of tokens >= 1"):
        ff.RateLimit(default_max_tokens=-5)


def test_arrival_accounting_charges_max_tokens_or_the_servers_default_and_keeps_it() -> None:
    resource = ProviderResource("m", ff.RateLimit(tokens_per_minute=60_000, accounting="arrival"), now=0.0)
    tokens = resource.buckets["tokens"]
    before = tokens.level
    resource.take({"input_tokens": 100, "output_tokens": 20, MAX_TOKENS: 64})
    assert tokens.level == before - 164  # the prompt plus max_tokens, not the expected output
    resource.release(
        {"input_tokens": 100, "output_tokens": 20, MAX_TOKENS: 64}, {"input_tokens": 100, "output_tokens": 5}
    )
    assert tokens.level == before - 164  # kept for the window, however short the answer
    resource.take({"input_tokens": 100, "output_tokens": 20})  # no max_tokens sent: the server reserves its default
    assert tokens.level == before - 164 - 1124


def test_usage_accounting_settles_on_what_was_spent() -> None:
    resource = ProviderResource("m", ff.RateLimit(tokens_per_minute=60_000, accounting="usage"), now=0.0)
    tokens = resource.buckets["tokens"]
    before = tokens.level
    cost = {"input_tokens": 100, "output_tokens": 200, MAX_TOKENS: 1000}
    resource.take(cost)
    assert tokens.level == before - 300  # the expected output, not max_tokens
    resource.release(cost, {"input_tokens": 100, "output_tokens": 50})
    assert tokens.level == before - 150


def test_the_provider_picks_the_accounting_unless_the_limit_names_one() -> None:
    resource = ProviderResource("m", ff.RateLimit(), now=0.0)
    resource.accounts_like("arrival")
    assert resource.accounting == "arrival"
    pinned = ProviderResource("m", ff.RateLimit(accounting="usage"), now=0.0)
    pinned.accounts_like("arrival")
    assert pinned.accounting == "usage"


@pytest.mark.parametrize("accounting", ["arrival", "usage"])
def test_a_rejected_call_gets_its_tokens_back_but_not_its_request(accounting: str) -> None:
    limit = ff.RateLimit(requests_per_minute=600, tokens_per_minute=60_000, accounting=accounting)  # type: ignore[arg-type]
    resource = ProviderResource("m", limit, now=0.0)
    tokens, requests = resource.buckets["tokens"].level, resource.buckets["requests"].level
    cost = {"input_tokens": 100, "output_tokens": 20, MAX_TOKENS: 64}
    resource.take(cost)
    resource.release(cost, {REJECTED: 1.0})
    assert resource.buckets["tokens"].level == tokens
    assert resource.buckets["requests"].level == requests - 1


@given(
    st.sampled_from(["arrival", "usage"]),
    st.lists(
        st.tuples(
            st.integers(0, 5_000), st.integers(0, 5_000), st.one_of(st.none(), st.integers(1, 4_000)), st.integers(0, 3)
        ),
        max_size=30,
    ),
)
def test_settling_never_fills_a_bucket_past_its_capacity_nor_refunds_more_than_was_charged(
    accounting: str, calls: list[tuple[int, int, int | None, int]]
) -> None:
    limit = ff.RateLimit(tokens_per_minute=30_000, output_tokens_per_minute=20_000, accounting=accounting)  # type: ignore[arg-type]
    resource = ProviderResource("m", limit, now=0.0)
    start = {kind: bucket.level for kind, bucket in resource.buckets.items()}
    for inp, out, max_tokens, ending in calls:
        cost = {"input_tokens": float(inp), "output_tokens": float(out)}
        if max_tokens is not None:
            cost[MAX_TOKENS] = float(max_tokens)
        resource.take(cost)
        spent = min(out, max_tokens) if max_tokens is not None else out
        usage = [None, {REJECTED: 1.0}, {"input_tokens": float(inp), "output_tokens": float(spent)}, None][ending]
        resource.release(cost, usage)
        for kind, bucket in resource.buckets.items():
            assert bucket.level <= bucket.capacity
            assert bucket.level <= start[kind] + 1e-9  # no clock moved: nothing refilled
    assert resource.in_flight == 0


def test_an_isolated_429_does_not_pause_the_resource_but_a_spent_limit_does() -> None:
    resource = ProviderResource("m", ff.RateLimit(requests_per_minute=600), now=0.0)
    for second in range(10):
        resource.succeeded(0.2, {}, now=second / 10)
    assert resource.throttled(1.0, {}, 1.0, remaining={"requests": 250.0}) == 0.0  # room left: isolated
    assert resource.wait(None, 1.0) < 1.0
    assert resource.throttled(1.0, {}, 1.1, remaining={"requests": 0.0}) == 1.0  # the limit is spent
    assert math.isclose(resource.wait(None, 1.5), 0.6)


def test_without_remaining_headers_a_burst_of_429s_is_a_breach_and_scattered_ones_are_not() -> None:
    resource = ProviderResource("m", ff.RateLimit(), now=0.0)
    now = 0.0
    for _ in range(20):  # one 429 in five answers: random ones, however many in all
        for _ in range(4):
            now += 0.01
            resource.succeeded(0.2, {}, now)
        now += 0.01
        assert resource.throttled(1.0, {}, now) == 0.0
    assert resource.breaches == 0
    pauses = []
    for _ in range(12):  # then nothing but 429s: the limit is spent
        now += 0.01
        pauses.append(resource.throttled(1.0, {}, now))
    assert pauses[-1] == 1.0
    assert resource.breaches >= 1


def test_a_faulted_call_counts_among_the_answers_a_burst_is_judged_against() -> None:
    resource = ProviderResource("m", ff.RateLimit(), now=0.0)
    for i in range(40):
        resource.faulted(now=i / 100)
    assert resource.throttled(1.0, {}, 0.41) == 0.0
    assert resource.throttled(1.0, {}, 0.42) == 0.0


def answering(*script: object) -> FunctionModel:
    calls = {"n": 0}

    async def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        step = script[min(calls["n"], len(script) - 1)]
        calls["n"] += 1
        if isinstance(step, BaseException):
            raise step
        return ModelResponse(parts=[TextPart(str(step))], usage=RequestUsage(input_tokens=100, output_tokens=10))

    return FunctionModel(respond)


def test_after_a_429_on_a_token_limited_resource_the_next_try_waits_only_the_pause() -> None:
    # 1,800 tokens a minute (30 a second); a call reserves about 300. The 429 turned it away
    # uncharged: its reservation goes back, so the retry waits the advised second, not the
    # ten more it would take to refill the reservation.
    refused = ModelHTTPError(429, "m", headers={"retry-after-ms": "1000", "x-ratelimit-remaining-tokens": "0"})
    agent = ff.llm(answering(refused, "ok"), output_tokens=200)
    limits = ff.Limits(resources={"function:function:respond:": ff.RateLimit(tokens_per_minute=1_800)})
    log = EventLog()
    with VirtualClock():
        result = ff.run_sync(agent, "x" * 400, limits=limits, on_event=log)
    assert result.output == "ok"
    (throttled,) = log.of_type(events.Throttled)
    assert throttled.pause == pytest.approx(1.0)
    retry = log.of_type(events.ModelCalled)[1]
    admitted = retry.at - retry.seconds
    # The bucket holds half a second of refill (15 tokens): a call waits at most that after the pause.
    assert admitted - throttled.at <= 1.0 + 0.5 + 1e-6


def test_adaptive_concurrency_back_near_its_last_breach_takes_any_429_as_a_breach() -> None:
    resource = ProviderResource("m", ff.RateLimit(initial_concurrency=10), now=0.0)
    resource.in_flight = 10
    resource.throttled(1.0, {}, 0.0, remaining={"requests": 0.0})  # met the limit at 10
    assert resource.cap == 7.0
    resource.in_flight = 0  # (no call in flight binds the cap: it does not grow meanwhile)
    for i in range(20):  # scattered 429s well below it: isolated
        resource.succeeded(0.2, {}, now=2.0 + i / 100)
    assert resource.throttled(1.0, {}, 2.5) == 0.0
    resource.cap = 9.5  # grown back near 10: the next 429 is the limit again
    assert resource.throttled(1.0, {}, 2.6) == 1.0
