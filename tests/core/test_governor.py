"""Provider resources: buckets, pauses, limits learnt from headers, adaptive concurrency, and
budgets that never overshoot (property-based)."""

from __future__ import annotations

import math
import os

import httpx2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage

import fanfold as ff
from fanfold._governor import ProviderResource
from fanfold._llm._providers import limits_from_headers
from fanfold._pacing import Bucket
from fanfold.testing import VirtualClock

EXAMPLES = int(os.environ.get("FANFOLD_EXAMPLES", "60"))


def test_a_bucket_refills_continuously_and_lets_a_large_call_run_then_pay() -> None:
    bucket = Bucket(per_minute=600, burst=1.0, now=0.0)  # 10 a second, holds 10
    assert bucket.wait(1, 0.0) == 0.0  # it starts with room for one, not full: a gradual start
    assert math.isclose(bucket.wait(10, 0.0), 0.9)
    assert bucket.wait(10, 0.9) == 0.0
    bucket.level -= 25  # a call larger than the bucket ran: the bucket is in debt
    assert math.isclose(bucket.wait(1, 0.9), 1.6)  # 15 in debt plus 1, at 10 a second
    assert bucket.wait(1, 2.5) == 0.0


def test_limits_are_read_from_an_http_clients_headers_whatever_their_case() -> None:
    raw = [("X-RateLimit-Limit-Requests", "500"), ("x-ratelimit-limit-tokens", "not a number"), ("Server", "sim")]
    assert limits_from_headers(httpx2.Headers(raw)) == {"requests": 500.0}
    assert limits_from_headers({"X-RateLimit-Limit-Tokens": "30000"}) == {"tokens": 30000.0}
    assert limits_from_headers(httpx2.Headers()) == {}


def test_a_429_pauses_the_resource_and_it_resumes_from_empty() -> None:
    resource = ProviderResource("m", ff.RateLimit(requests_per_minute=600), now=0.0)
    assert resource.wait(None, 0.0) == 0.0
    pause = resource.throttled(2.0, {}, now=1.0, remaining={"requests": 0.0})  # the limit is spent
    assert pause == 2.0
    assert math.isclose(resource.wait(None, 1.5), 1.5)  # paused until 3.0
    assert math.isclose(resource.wait(None, 3.0), 0.1)  # then one request's refill at a time
    assert resource.wait(None, 3.1) == 0.0


def test_limits_are_learnt_from_headers_and_a_lower_configured_limit_wins() -> None:
    headers = {"x-ratelimit-limit-requests": "1200", "x-ratelimit-limit-tokens": "90000", "other": "1"}
    assert limits_from_headers(headers) == {"requests": 1200.0, "tokens": 90000.0}
    anthropic = {"anthropic-ratelimit-output-tokens-limit": "8000", "anthropic-ratelimit-requests-limit": "50"}
    assert limits_from_headers(anthropic) == {"output_tokens": 8000.0, "requests": 50.0}
    resource = ProviderResource("m", ff.RateLimit(requests_per_minute=600), now=0.0)
    resource.learn(limits_from_headers(headers), now=0.0)
    assert resource.buckets["requests"].per_minute == 600  # configured lower: kept
    assert resource.buckets["tokens"].per_minute == 90000  # unknown before: learnt
    resource.learn({"requests": 300.0}, now=1.0)  # the provider halved it
    assert resource.buckets["requests"].per_minute == 300


def test_without_known_limits_concurrency_ramps_up_then_backs_off_on_429() -> None:
    resource = ProviderResource("m", ff.RateLimit(initial_concurrency=2), now=0.0)
    assert resource.cap == 2
    for _ in range(2):
        resource.take(None)
    assert resource.wait(None, 0.0) == math.inf  # at the cap
    resource.succeeded(0.1, {}, now=0.1)  # slow start: +1 per success while the cap binds
    assert resource.cap == 3
    resource.in_flight = 3
    spent = {"requests": 0.0}  # the provider says its limit is spent: a breach
    resource.throttled(None, {}, now=0.2, remaining=spent)
    assert resource.cap == 3 * ProviderResource.DECREASE
    assert not resource.slow_start
    resource.throttled(None, {}, now=0.21, remaining=spent)  # the same burst's other 429s do not cut it again
    assert resource.cap == 3 * ProviderResource.DECREASE


Step = st.sampled_from(["ok", "ok", "ok", "429", "500", "400"])


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    script=st.lists(Step, min_size=1, max_size=30),
    inputs=st.integers(0, 25),
    requests=st.none() | st.integers(0, 20),
    tokens=st.none() | st.integers(0, 3000),
    concurrency=st.integers(1, 8),
    cancel=st.booleans(),
)
def test_budgets_never_overshoot_and_every_input_has_one_outcome(
    script: list[str], inputs: int, requests: int | None, tokens: int | None, concurrency: int, cancel: bool
) -> None:
    calls = {"n": 0}

    async def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        step = script[calls["n"] % len(script)]
        calls["n"] += 1
        if step != "ok":
            raise ModelHTTPError(int(step), "m", headers={"retry-after-ms": "100"})
        # Usage within what was reserved: a token of input, max_tokens of output at most.
        return ModelResponse(parts=[TextPart("ok")], usage=RequestUsage(input_tokens=1, output_tokens=20))

    budget = ff.Budget(requests=requests, tokens=tokens, in_flight="cancel" if cancel else "finish")
    agent = ff.llm(FunctionModel(respond), model_settings={"max_tokens": 20})
    with VirtualClock():
        result = ff.run_sync(ff.map(agent), range(inputs), budget=budget, limits=ff.Limits(concurrency=concurrency))
    assert [o.index for o in result.outcomes] == list(range(inputs))
    assert sum(result.summary.counts.values()) == inputs
    spent = result.summary.usage
    if requests is not None:
        assert spent.requests <= requests
    if tokens is not None:
        assert spent.tokens <= tokens
    for outcome in result.outcomes:
        if outcome.status is ff.Status.SKIPPED:
            # the budget ran out, or this call alone could never fit in what was left of it
            assert "budget is exhausted" in (outcome.reason or "") or "larger than the budget left" in (
                outcome.reason or ""
            )
        elif outcome.status is ff.Status.FAILED:
            assert outcome.error is not None
            assert "400" in outcome.error.message or "50" in outcome.error.message or "429" in outcome.error.message
