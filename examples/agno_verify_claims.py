"""A fanfold team hands one claim per subtask to a single agno verification agent, all at once.

The leader is a planner in code: it splits the list of claims ``each``, one subtask per claim
for the ``verifier`` member, and merges the verdicts with a count. The verifier is one agno
``Agent`` whose model client is lent by fanfold (``ff.openai_client``): fanfold runs it once
per claim at the same time, and every model request it makes is admitted by the run's
governor on the one provider resource (here at most 8 at once), budgeted and counted. The same
works with a Google ADK ``LlmAgent`` or an OpenAI Agents SDK ``Agent`` (``--framework adk`` or
``--framework openai-agents``).

It runs offline on fanfold's simulated provider, which answers "holds" unless the claim says
something known to be false.

    .venv/bin/python examples/agno_verify_claims.py [--framework agno|adk|openai-agents]
"""

from __future__ import annotations

import argparse
import asyncio
from contextlib import AsyncExitStack
from typing import Any

import fanfold as ff
from fanfold.testing import Latency, SimRequest, SimulatedProvider

CLAIMS = [
    "Water boils at 100 degrees Celsius at sea level.",
    "The Moon is made of cheese.",
    "Bats are blind.",
    "Mount Everest is the highest mountain above sea level.",
    "Humans use only ten percent of their brains.",
    "Diamonds are a form of carbon.",
    "Lightning never strikes the same place twice.",
    "An octopus has three hearts.",
] * 3
FALSE = ("cheese", "blind", "ten percent", "never strikes")
LIMITS = ff.Limits(
    concurrency=64,
    resources={"openai:sim-1": ff.RateLimit(concurrency=8), "anthropic:sim-1": ff.RateLimit(concurrency=8)},
)


def answer(request: SimRequest) -> str:
    """The simulated model's verdict on the claim in the prompt."""
    claim = request.last_user_text
    return "does not hold" if any(word in claim for word in FALSE) else "holds"


def plan(request: ff.PlanRequest) -> dict[str, Any]:
    """The leader, in code: one verification per claim, merged by :func:`tally`."""
    return {
        "subtasks": [
            {"id": "verify", "member": "verifier", "instruction": "Check the claim.", "split": {"by": "each"}}
        ],
        "merge": "concat",  # the team's merge= (tally) overrides it
    }


def tally(verdicts: list[str]) -> str:
    held = sum(verdict.strip().endswith("holds") and "not" not in verdict for verdict in verdicts)
    return f"{held} of {len(verdicts)} claims hold"


async def verifier(framework: str, sim: SimulatedProvider, stack: AsyncExitStack) -> Any:
    """One verification agent of ``framework``, on a model client fanfold lends it."""
    instructions = "Say whether the claim holds."
    if framework == "agno":
        from agno.agent import Agent
        from agno.models.openai import OpenAIChat

        client = ff.openai_client("openai:sim-1", base_url=sim.openai_base_url, api_key="sim")
        await stack.enter_async_context(client)
        return Agent(name="verifier", instructions=instructions, model=OpenAIChat(id="sim-1", async_client=client))
    if framework == "adk":
        from google.adk.agents import LlmAgent
        from google.adk.models.anthropic_llm import AnthropicLlm

        claude = ff.anthropic_client("anthropic:sim-1", base_url=sim.anthropic_base_url, api_key="sim")
        await stack.enter_async_context(claude)
        return LlmAgent(name="verifier", instruction=instructions, model=AnthropicLlm(model="sim-1", client=claude))
    if framework == "openai-agents":
        from agents import Agent, OpenAIChatCompletionsModel

        client = ff.openai_client("openai:sim-1", base_url=sim.openai_base_url, api_key="sim")
        await stack.enter_async_context(client)
        model = OpenAIChatCompletionsModel(model="sim-1", openai_client=client)
        return Agent(name="verifier", instructions=instructions, model=model)
    raise SystemExit(f"--framework {framework!r}: pass agno, adk or openai-agents")


async def verify(framework: str = "agno", latency: float = 0.2) -> tuple[ff.Result[ff.TeamResult[str]], Any]:
    """Run the team; return its result and the simulated provider's statistics."""
    async with SimulatedProvider(answer=answer, latency=Latency.fixed(latency), limits=None) as sim:
        async with AsyncExitStack() as stack:
            team = ff.team(plan, {"verifier": await verifier(framework, sim, stack)}, merge=tally)
            result = await ff.run(team, CLAIMS, limits=LIMITS, budget=ff.Budget(requests=100))
        return result, sim.stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", default="agno", choices=["agno", "adk", "openai-agents"])
    framework = parser.parse_args().framework
    result, stats = asyncio.run(verify(framework))
    assert result.output is not None
    print(f"{framework}: {result.output.answer}")
    print(f"{len(result.output.results)} verifier runs; at most {stats.peak_concurrency} model calls at once")
    print(f"provider served {stats.requests} requests; the run counted {result.summary.usage}")


if __name__ == "__main__":
    main()
