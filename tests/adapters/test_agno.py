"""agno agents governed as fanfold agents, over real HTTP against the simulated provider."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest
from agno.agent import Agent
from agno.models.openai import OpenAIChat
from agno.team import Team
from agno.workflow import Step, Workflow
from tests.adapters.helpers import KEY, served

import fanfold as ff
from fanfold.testing import Faults, Latency, SimRequest, SimulatedProvider

CLAIMS = [f"claim {i}" for i in range(8)]


def verifier(client: Any) -> Agent:
    return Agent(name="verifier", model=OpenAIChat(id="sim-1", async_client=client))


def test_one_agno_agent_runs_concurrently_and_every_request_is_counted_once() -> None:
    async def body(sim: SimulatedProvider, client: Any) -> ff.Result[Any]:
        return await ff.run(ff.map(verifier(client)), CLAIMS, limits=ff.Limits(concurrency=4))

    result, sim = served(body)
    assert len(result.output) == len(CLAIMS)
    assert all(answer.startswith("Simulated answer") for answer in result.output)
    assert 1 < sim.stats.peak_concurrency <= 4  # one agent's runs overlap, within the run's limit
    usage = result.summary.usage
    assert usage.requests == sim.stats.requests == len(CLAIMS)
    assert (usage.input_tokens, usage.output_tokens) == (sim.stats.input_tokens, sim.stats.output_tokens)


def test_an_agent_recognised_by_type_is_governed_only_with_a_lent_client() -> None:
    async def body(sim: SimulatedProvider, client: Any) -> tuple[Any, Any]:
        async with openai.AsyncOpenAI(base_url=sim.openai_base_url, api_key=KEY) as plain:
            own = Agent(name="own", model=OpenAIChat(id="sim-1", async_client=plain))
            return ff.adapt(verifier(client)), ff.adapt(own, resources=["agno-own"])

    (governed, own), _ = served(body)
    assert (governed.composite, governed.resources) == (True, ())
    assert (own.composite, own.resources) == (False, ("agno-own",))


def test_an_agent_on_its_own_client_is_one_leaf_charged_what_agno_reports() -> None:
    async def body(sim: SimulatedProvider, client: Any) -> ff.Result[Any]:
        async with openai.AsyncOpenAI(base_url=sim.openai_base_url, api_key=KEY) as plain:
            own = Agent(name="own", model=OpenAIChat(id="sim-1", async_client=plain))
            limits = ff.Limits(concurrency=8, resources={"agno": 2})
            return await ff.run(ff.map(own), CLAIMS, limits=limits)

    result, sim = served(body)
    assert sim.stats.peak_concurrency <= 2  # the whole agent run is the leaf, on the "agno" resource
    usage = result.summary.usage
    assert (usage.input_tokens, usage.output_tokens) == (sim.stats.input_tokens, sim.stats.output_tokens)


def test_a_run_status_error_raises_naming_agnos_message() -> None:
    async def body(sim: SimulatedProvider, client: Any) -> ff.Result[Any]:
        async with openai.AsyncOpenAI(base_url="http://127.0.0.1:9/v1", api_key=KEY, max_retries=0) as plain:
            down = Agent(name="down", model=OpenAIChat(id="sim-1", async_client=plain))
            return await ff.run(ff.map(down), ["x"])

    result, _ = served(body)
    error = result.outcomes[0].error
    assert error is not None
    assert error.type == "ForeignAgentError"
    assert "Connection error" in error.message


def test_a_budget_stops_agno_agents_at_the_wire() -> None:
    async def body(sim: SimulatedProvider, client: Any) -> ff.Result[Any]:
        return await ff.run(
            ff.map(verifier(client)),
            CLAIMS,
            limits=ff.Limits(concurrency=1),
            budget=ff.Budget(requests=3),
        )

    result, sim = served(body)
    assert sim.stats.requests == 3 == result.summary.usage.requests
    stopped = [o for o in result.outcomes if o.error is not None]
    assert len(stopped) == len(CLAIMS) - 3
    assert {o.error.type for o in stopped if o.error} == {"BudgetExhausted"}  # not agno's "error" answer


def test_agno_teams_and_workflows_are_agents_too() -> None:
    async def body(sim: SimulatedProvider, client: Any) -> ff.Result[Any]:
        team = Team(name="t", members=[verifier(client)], model=OpenAIChat(id="sim-1", async_client=client))
        flow = Workflow(name="w", steps=[Step(name="check", agent=verifier(client))])
        return await ff.run(ff.parallel(team, flow), "is water wet?")

    result, sim = served(body)
    assert set(result.output) == {"t", "w"}
    assert result.summary.usage.requests == sim.stats.requests >= 2
    assert result.summary.usage.input_tokens == sim.stats.input_tokens


def test_cancelling_the_run_reaches_the_agno_agents_request() -> None:
    arrived = asyncio.Event()

    def on_arrival(n: int, request: SimRequest) -> None:
        arrived.set()

    async def body(sim: SimulatedProvider, client: Any) -> int:
        async with ff.start(ff.map(verifier(client)), ["slow"]) as run:
            await arrived.wait()
            run.cancel()
            result = await run.result()
        assert result.outcomes[0].status is ff.Status.CANCELLED
        while sim.stats.in_flight:  # the server sees the connection go (no answer will come)
            await asyncio.sleep(0.01)
        return sim.stats.disconnects

    disconnects, sim = served(body, latency=Latency.fixed(60), faults=Faults(script=on_arrival))
    assert disconnects == 1
    assert sim.stats.succeeded == 0


@pytest.mark.parametrize("status", [429])
def test_429s_pause_the_resource_and_are_retried_by_fanfold(status: int) -> None:
    def script(n: int, request: SimRequest) -> str | None:
        return "429" if n <= 2 else None

    async def body(sim: SimulatedProvider, client: Any) -> ff.Result[Any]:
        return await ff.run(ff.map(verifier(client)), ["a", "b"], limits=ff.Limits(concurrency=2))

    result, sim = served(body, faults=Faults(script=script))
    assert len(result.output) == 2
    assert sim.stats.status_429 == 2
    assert result.summary.usage.throttled == 2
    assert result.summary.usage.requests == sim.stats.requests == 4


def test_a_budget_refuses_an_agent_run_as_one_leaf_once_spent() -> None:
    async def body(sim: SimulatedProvider, client: Any) -> ff.Result[Any]:
        async with openai.AsyncOpenAI(base_url=sim.openai_base_url, api_key=KEY) as plain:
            own = Agent(name="own", model=OpenAIChat(id="sim-1", async_client=plain))
            limits = ff.Limits(concurrency=1)
            return await ff.run(ff.map(own), CLAIMS, limits=limits, budget=ff.Budget(requests=2))

    result, sim = served(body)
    assert sim.stats.requests == 2 == result.summary.usage.requests  # agno's metrics name each model call
    assert {o.error.type for o in result.outcomes if o.error} == {"BudgetExhausted"}
