"""Teams of ff.llm agents against the simulated provider over real HTTP: the leader's plan as
structured output, the data never sent to the leader, members at once, delegation by tool calls."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pydantic import BaseModel

import fanfold as ff
from fanfold import events
from fanfold.testing import EventLog, Latency, Reply, SimRequest, SimulatedProvider

KEY = "sk-test-team"


class Verdict(BaseModel):
    claim: str
    supported: bool


def is_plan_request(request: SimRequest) -> bool:
    return "subtasks" in (request.output_schema or {}).get("properties", {})


PLAN_PROMPTS: list[str] = []


def answer(request: SimRequest) -> dict[str, Any] | str | Reply:
    """A scripted planner, verifier and delegating leader, told apart by what they are asked."""
    text = request.last_user_text
    if is_plan_request(request):
        PLAN_PROMPTS.append(text)
        where = {"where": "topic", "op": "==", "value": "sea"}
        return {"subtasks": [{"id": "check", "member": "verifier", "split": {"by": "each", **where}}]}
    if "delegate" in request.tools:
        if not request.tool_results:
            claims = [line[2:] for line in text.splitlines() if line.startswith("* ")]
            return Reply(tool_calls=[("delegate", {"member": "verifier", "task": c}) for c in claims])
        return f"{sum('true' in content for _, content in request.tool_results)} supported"
    if request.output_schema is not None:
        claim = json.loads(text)["claim"] if text.startswith("{") else text
        return {"claim": claim, "supported": "wet" in claim}
    return f"echo: {text}"


def served(body: Any) -> tuple[Any, SimulatedProvider]:
    async def main() -> tuple[Any, SimulatedProvider]:
        async with SimulatedProvider(answer=answer, latency=Latency.fixed(0.05)) as sim:
            return await body(sim), sim

    return asyncio.run(main())


def llm(sim: SimulatedProvider, **options: Any) -> ff.LLMAgent:
    return ff.llm("openai-chat:sim-1", base_url=sim.openai_base_url, api_key=KEY, **options)


def test_an_llm_leader_plans_a_split_and_llm_members_verify_each_row_at_once() -> None:
    rows = [{"claim": f"the {t} is {'wet' if i % 3 else 'dry'} #{i}", "topic": t}
            for i, t in enumerate(["sea", "sky"] * 40)]  # fmt: skip
    log = EventLog()

    async def body(sim: SimulatedProvider) -> ff.Result[Any]:
        leader = llm(sim, instructions="You lead fact-checkers.", name="leader")
        verifier = llm(sim, output_type=Verdict, name="verifier", instructions="Say whether the claim holds.")
        team = ff.team(leader, [verifier])
        return await ff.run(team, ff.Brief("check the sea claims", rows), on_event=log)

    result, sim = served(body)
    team = result.output
    assert len(team.results) == 40
    assert team.missing == {}
    assert [v.supported for v in team.answer[:3]] == [False, True, True]
    assert team.answer[1].claim.startswith("the sea is wet #2")
    assert sim.stats.requests == 41  # one plan, one call per sea claim
    assert result.summary.usage.requests == 41
    # The leader's prompt describes the data; no claim past the sample reached it.
    assert [e.path for e in log.of_type(events.ModelCalled)].count("plan[0]") == 1
    prompt = PLAN_PROMPTS[-1]
    assert "80 rows of dict" in prompt
    assert "#2" in prompt  # in the sample
    assert "#79" not in prompt
    assert log.max_running("check") == 40


def test_an_llm_leader_delegates_by_tool_calls_over_http() -> None:
    claims = [f"the sea is wet #{i}" if i % 2 else f"the sky is dry #{i}" for i in range(12)]
    log = EventLog()

    async def body(sim: SimulatedProvider) -> ff.Result[Any]:
        leader = llm(sim, name="leader")
        verifier = llm(sim, output_type=Verdict, name="verifier")
        team = ff.team(leader, [verifier], mode="delegate")
        task = "Verify each claim:\n" + "\n".join(f"* {c}" for c in claims)
        return await ff.run(team, task, on_event=log)

    result, sim = served(body)
    team = result.output
    assert team.answer == "6 supported"
    assert list(team.results) == [f"verifier[{i}]" for i in range(12)]
    assert [v.claim for v in team.results.values()] == claims
    assert sim.stats.requests == 14  # the leader twice, each claim once
    assert log.max_running("verifier") == 12  # the provider's own limit, still unknown, paces the calls
