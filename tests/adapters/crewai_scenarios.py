"""CrewAI crews run by fanfold against the simulated provider, inside CrewAI's own environment.

CrewAI cannot be installed beside fanfold's dev environment (it needs ``openai<3`` and
``pydantic<2.13``), so tests/adapters/test_crewai.py runs this script with the Python of
``.venv-crewai`` (``make crewai-env``) and asserts on the facts it writes: one JSON object per
scenario, with what fanfold returned and what the provider saw. Nothing here asserts.

    .venv-crewai/bin/python tests/adapters/crewai_scenarios.py facts.json [scenario ...]
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import fanfold as ff
from fanfold.testing import Faults, Latency, SimRequest, SimulatedProvider

KEY = "sk-test-crewai-0123456789"
CLAIMS = [f"claim {i}: the sky is {'green' if i % 3 == 0 else 'blue'}" for i in range(6)]
Scenario = Callable[[], Awaitable[dict[str, Any]]]
SCENARIOS: dict[str, Scenario] = {}


def scenario(body: Scenario) -> Scenario:
    SCENARIOS[body.__name__] = body
    return body


def crew(sim: SimulatedProvider | None, *, base_url: str | None = None, role: str = "checker", **options: Any) -> Any:
    """A one-agent, one-task crew on CrewAI's native OpenAI provider, pointed at ``sim``."""
    from crewai import LLM, Agent, Crew, Task

    url = base_url or (sim.openai_base_url if sim is not None else None)
    llm = LLM(model="openai/sim-1", base_url=url, api_key=KEY, max_retries=0)
    agent = Agent(role=role, goal="Check claims", backstory="A careful checker.", llm=llm, **{"max_iter": 2, **options})
    task = Task(description="Say whether this holds: {input}", expected_output="holds or does not hold", agent=agent)
    return Crew(agents=[agent], tasks=[task])


def stats(sim: SimulatedProvider) -> dict[str, Any]:
    s = sim.stats
    return {
        "requests": s.requests,
        "succeeded": s.succeeded,
        "input_tokens": s.input_tokens,
        "output_tokens": s.output_tokens,
        "peak_concurrency": s.peak_concurrency,
        "disconnects": s.disconnects,
        "by_status": {str(k): v for k, v in s.by_status.items()},
    }


def facts(result: ff.Result[Any], sim: SimulatedProvider) -> dict[str, Any]:
    usage = result.summary.usage
    outcomes = [
        {
            "status": str(o.status),
            "error": None if o.error is None else {"type": o.error.type, "message": o.error.message},
        }
        for o in result.outcomes
    ]
    output = result.output
    if isinstance(output, ff.TeamResult):
        output = {"answer": output.answer, "results": len(output.results), "complete": output.complete}
    return {
        "output": output if _is_json(output) else repr(output),
        "outcomes": outcomes,
        "usage": {"requests": usage.requests, "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens},
        "served": stats(sim),
    }


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except TypeError:
        return False
    return True


def verdict(request: SimRequest) -> str:
    return "does not hold" if "green" in request.last_user_text else "holds"


@scenario
async def governed_map() -> dict[str, Any]:
    """One crew over six claims; its model requests share the provider resource's limit of 3."""
    async with SimulatedProvider(answer=verdict, latency=Latency.fixed(0.5)) as sim:
        limits = ff.Limits(concurrency=20, resources={"openai:sim-1": ff.RateLimit(concurrency=3)})
        adapted = ff.adapt(crew(sim))
        result = await ff.run(ff.map(crew(sim)), CLAIMS, limits=limits)
        return {**facts(result, sim), "adapted": {"governed": adapted.governed, "resources": list(adapted.resources)}}


@scenario
async def two_crews_share_a_limit() -> dict[str, Any]:
    """Two crews on one model, endpoint and key: one provider resource, one limit of 2 (ff.llm
    cannot join them here: its OpenAI model needs openai>=3, CrewAI openai<3)."""
    async with SimulatedProvider(latency=Latency.fixed(0.5)) as sim:
        limits = ff.Limits(concurrency=50, resources={"openai:sim-1": ff.RateLimit(concurrency=2)})
        pair = ff.parallel(ff.adapt(crew(sim), name="first"), ff.adapt(crew(sim, role="second"), name="second"))
        result = await ff.run(ff.map(pair), CLAIMS, limits=limits, budget=ff.Budget(requests=100))
        return facts(result, sim)


def plan(request: ff.PlanRequest) -> dict[str, Any]:
    """A leader in code: one subtask per claim for the crew."""
    return {"subtasks": [{"id": "check", "member": "checker", "instruction": "Check.", "split": {"by": "each"}}]}


def tally(verdicts: list[str]) -> str:
    held = sum("not" not in verdict for verdict in verdicts)
    return f"{held} of {len(verdicts)} claims hold"


@scenario
async def team_member() -> dict[str, Any]:
    """A fanfold team whose leader hands one claim per subtask to a crew, and merges."""
    async with SimulatedProvider(answer=verdict, latency=Latency.fixed(0.5)) as sim:
        limits = ff.Limits(concurrency=20, resources={"openai:sim-1": ff.RateLimit(concurrency=4)})
        team = ff.team(plan, {"checker": crew(sim)}, merge=tally)
        result = await ff.run(team, CLAIMS, limits=limits, budget=ff.Budget(requests=50))
        return facts(result, sim)


@scenario
async def one_leaf_map() -> dict[str, Any]:
    """``governed=False``: each crew run is one leaf on the "crewai" resource, charged what
    CrewAI reports for that run alone."""
    async with SimulatedProvider(latency=Latency.fixed(0.5)) as sim:
        adapted = ff.adapt(crew(sim), governed=False)
        limits = ff.Limits(concurrency=20, resources={"crewai": 2})
        result = await ff.run(ff.map(adapted), CLAIMS, limits=limits)
        return {**facts(result, sim), "adapted": {"governed": adapted.governed, "resources": list(adapted.resources)}}


@scenario
async def governed_budget() -> dict[str, Any]:
    """A request budget of 3 stops the crews at the wire."""
    async with SimulatedProvider(latency=Latency.fixed(0.01)) as sim:
        result = await ff.run(ff.map(crew(sim)), CLAIMS, limits=ff.Limits(concurrency=1), budget=ff.Budget(requests=3))
        return facts(result, sim)


@scenario
async def one_leaf_budget() -> dict[str, Any]:
    """Run as one leaf, a crew is refused once the budget is spent."""
    async with SimulatedProvider(latency=Latency.fixed(0.01)) as sim:
        adapted = ff.adapt(crew(sim), governed=False)
        result = await ff.run(ff.map(adapted), CLAIMS, limits=ff.Limits(concurrency=1), budget=ff.Budget(requests=2))
        return facts(result, sim)


async def _until_gone(sim: SimulatedProvider) -> None:
    while sim.stats.in_flight:  # the server sees the connection go (no answer will come)
        await asyncio.sleep(0.01)


@scenario
async def deadline() -> dict[str, Any]:
    """The run's deadline passes while the crew waits on its model: the crew's request goes."""
    async with SimulatedProvider(latency=Latency.fixed(60)) as sim:
        result = await ff.run(ff.map(crew(sim)), ["slow"], deadline=5)
        await _until_gone(sim)
        return facts(result, sim)


@scenario
async def provider_fails() -> dict[str, Any]:
    """Every request answered 500: fanfold retries each (twice here), then the crew fails."""
    async with SimulatedProvider(latency=Latency.fixed(0.01), faults=Faults(rate_500=1.0)) as sim:
        retry = ff.RetryPolicy(retry_on=Exception, attempts=2, initial=0.01)
        result = await ff.run(ff.map(crew(sim, max_retry_limit=0)), ["x"], retry=retry)
        return facts(result, sim)


@scenario
async def unreachable_one_leaf() -> dict[str, Any]:
    """A crew whose model cannot be reached (nothing listens): a failed outcome naming why."""
    async with SimulatedProvider() as sim:
        down = ff.adapt(crew(None, base_url="http://127.0.0.1:9/v1"), governed=False)
        result = await ff.run(ff.map(down), ["x"])
        return facts(result, sim)


@scenario
async def streaming_refused() -> dict[str, Any]:
    """A streaming crew hands back a stream, not its answer: fanfold refuses it, saying so."""
    streaming = crew(None, base_url="http://127.0.0.1:9/v1")
    streaming.stream = True
    try:
        ff.adapt(streaming)
    except ff.UsageError as exc:
        return {"error": str(exc)}
    return {"error": None}


async def warm_up() -> None:
    """One crew run first: CrewAI's first kickoff in a process imports and builds for seconds,
    which would spread the first scenario's runs apart."""
    async with SimulatedProvider() as sim:
        await crew(sim).akickoff(inputs={"input": "warm up"})


async def main(names: list[str]) -> dict[str, Any]:
    await warm_up()
    found: dict[str, Any] = {}
    for name in names or list(SCENARIOS):
        started = time.perf_counter()
        try:
            found[name] = await SCENARIOS[name]()
            found[name]["seconds"] = round(time.perf_counter() - started, 2)
        except Exception as exc:  # reported to the test, which fails naming it
            found[name] = {"crashed": f"{type(exc).__name__}: {exc}"}
    return found


if __name__ == "__main__":
    logging.getLogger("crewai").setLevel(logging.ERROR)  # "approximate input token count" per call
    out, *wanted = sys.argv[1:]
    with open(out, "w", encoding="utf-8") as file:
        json.dump(asyncio.run(main(wanted)), file, indent=1)
