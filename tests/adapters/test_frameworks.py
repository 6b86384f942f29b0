"""LangChain/LangGraph, OpenAI Agents SDK and Google ADK agents governed, and a mix of foreign
and fanfold agents sharing one provider limit, over real HTTP against the simulated provider."""

from __future__ import annotations

import asyncio
from typing import Any

from agents import Agent as OpenAIAgent
from agents import OpenAIChatCompletionsModel
from google.adk.agents import LlmAgent
from google.adk.models.anthropic_llm import AnthropicLlm
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, MessagesState, StateGraph
from tests.adapters.helpers import KEY, anthropic, served

import fanfold as ff
from fanfold.testing import Faults, Latency, SimRequest, SimulatedProvider

QUESTIONS = [f"q{i}" for i in range(6)]


def chat(client: Any) -> ChatOpenAI:
    return ChatOpenAI(model="sim-1", api_key=KEY, root_async_client=client, async_client=client.chat.completions)


def graph(client: Any) -> Any:
    llm = chat(client)

    async def call(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await llm.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("llm", call)
    builder.add_edge(START, "llm")
    builder.add_edge("llm", END)
    return builder.compile()


def assert_counted_once(result: ff.Result[Any], sim: SimulatedProvider) -> None:
    usage = result.summary.usage
    assert usage.requests == sim.stats.requests
    assert (usage.input_tokens, usage.output_tokens) == (sim.stats.input_tokens, sim.stats.output_tokens)


def test_langchain_chains_and_langgraph_graphs_run_concurrently_governed() -> None:
    async def body(sim: SimulatedProvider, client: Any) -> ff.Result[Any]:
        chain = ChatPromptTemplate.from_messages([("user", "{q}")]) | chat(client)
        ask = ff.agent(lambda q: {"q": q}, name="ask")
        return await ff.run(
            ff.parallel(chains=ff.map(ff.sequence(ask, chain)), graphs=ff.map(graph(client))),
            QUESTIONS,
            limits=ff.Limits(concurrency=4),
        )

    result, sim = served(body)
    chains, graphs = result.output["chains"], result.output["graphs"]
    assert all(answer.startswith("Simulated answer") for answer in chains)
    assert all(state["messages"][-1].content.startswith("Simulated answer") for state in graphs)
    assert 1 < sim.stats.peak_concurrency <= 4
    assert_counted_once(result, sim)
    assert sim.stats.requests == 2 * len(QUESTIONS)


def test_openai_agents_sdk_agents_run_concurrently_governed() -> None:
    async def body(sim: SimulatedProvider, client: Any) -> ff.Result[Any]:
        agent = OpenAIAgent(name="checker", model=OpenAIChatCompletionsModel(model="sim-1", openai_client=client))
        return await ff.run(ff.map(agent), QUESTIONS, limits=ff.Limits(concurrency=3))

    result, sim = served(body)
    assert all(answer.startswith("Simulated answer") for answer in result.output)
    assert 1 < sim.stats.peak_concurrency <= 3
    assert_counted_once(result, sim)


def test_adk_agents_run_one_session_per_input_governed() -> None:
    async def body(sim: SimulatedProvider, client: Any) -> ff.Result[Any]:
        async with anthropic(sim) as claude:
            agent = LlmAgent(name="checker", model=AnthropicLlm(model="sim-1", client=claude))
            return await ff.run(ff.map(agent), QUESTIONS, limits=ff.Limits(concurrency=3))

    result, sim = served(body)
    assert all(answer.startswith("Simulated answer") for answer in result.output)
    assert 1 < sim.stats.peak_concurrency <= 3
    assert_counted_once(result, sim)


def test_foreign_and_fanfold_agents_share_one_provider_limit_and_budget() -> None:
    async def body(sim: SimulatedProvider, client: Any) -> ff.Result[Any]:
        mine = ff.llm("openai:sim-1", base_url=sim.openai_base_url, api_key=KEY, name="mine")
        theirs = OpenAIAgent(name="theirs", model=OpenAIChatCompletionsModel(model="sim-1", openai_client=client))
        limits = ff.Limits(concurrency=50, resources={"openai:sim-1": ff.RateLimit(concurrency=2)})
        return await ff.run(
            ff.map(ff.parallel(mine, theirs, chat(client))), QUESTIONS, limits=limits, budget=ff.Budget(requests=100)
        )

    result, sim = served(body)
    assert len(result.output) == len(QUESTIONS)
    assert sim.stats.peak_concurrency <= 2  # one resource for the three kinds of agent
    assert_counted_once(result, sim)
    assert sim.stats.requests == 3 * len(QUESTIONS)


def test_cancelling_reaches_langchain_and_openai_agents_requests() -> None:
    arrived = asyncio.Event()
    seen: list[int] = []

    def on_arrival(n: int, request: SimRequest) -> None:
        seen.append(n)
        if len(seen) == 2:
            arrived.set()

    async def body(sim: SimulatedProvider, client: Any) -> int:
        agent = OpenAIAgent(name="slow", model=OpenAIChatCompletionsModel(model="sim-1", openai_client=client))
        async with ff.start(ff.parallel(agent, chat(client)), "slow") as run:
            await arrived.wait()
            run.cancel()
            await run.result()
        while sim.stats.in_flight:  # the server sees both connections go
            await asyncio.sleep(0.01)
        return sim.stats.disconnects

    disconnects, sim = served(body, latency=Latency.fixed(60), faults=Faults(script=on_arrival))
    assert disconnects == 2
    assert sim.stats.succeeded == 0


def test_outside_a_run_the_lent_client_passes_requests_through() -> None:
    async def body(sim: SimulatedProvider, client: Any) -> str:
        answer = await chat(client).ainvoke("hi")
        return str(answer.content)

    answer, sim = served(body)
    assert answer.startswith("Simulated answer")
    assert sim.stats.requests == 1
