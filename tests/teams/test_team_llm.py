"""Teams led by LLM agents, on pydantic-ai's FunctionModel: the plan as structured output, the
leader's prompt, re-plans, synthesis, and delegation as tool calls run at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

import fanfold as ff
from fanfold import events
from fanfold.testing import ConcurrencyProbe, EventLog, VirtualClock


def prompt_of(messages: list[ModelMessage]) -> str:
    return "\n".join(
        str(part.content)
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, UserPromptPart)
    )


def tool_returns(messages: list[ModelMessage]) -> list[ToolReturnPart]:
    last = messages[-1]
    return [p for p in last.parts if isinstance(p, ToolReturnPart)] if isinstance(last, ModelRequest) else []


class Leader:
    """A scripted LLM: answers planning requests with the given plans in turn, and keeps what it saw."""

    def __init__(self, *plans: dict[str, Any], text: str = "the answer") -> None:
        self.plans = list(plans)
        self.prompts: list[str] = []
        self.instructions: list[str] = []
        self.text = text

    def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.prompts.append(prompt_of(messages))
        self.instructions.append(info.instructions or "")
        if info.output_tools:  # asked for a plan
            plan = self.plans[min(len(self.prompts), len(self.plans)) - 1]
            return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, plan)])
        return ModelResponse(parts=[TextPart(self.text)])


async def verify(claim: str) -> str:
    """Checks one claim."""
    return f"{claim}: true"


def test_an_llm_leader_answers_with_a_plan_from_a_prompt_that_describes_the_data() -> None:
    rows = [{"id": i, "claim": f"claim number {i}", "topic": "sea" if i % 2 else "sky"} for i in range(200)]
    script = Leader({"subtasks": [{"id": "check", "member": "verify", "split": {"by": "each", "where": "topic",
                                                                               "value": "sea"}}]})  # fmt: skip
    leader = ff.llm(FunctionModel(script), instructions="You lead fact-checkers.")
    result = ff.run_sync(ff.team(leader, [verify], caps=ff.TeamCaps(max_subtasks=100)), ff.Brief("check", rows))
    assert len(result.output.results) == 100
    prompt, instructions = script.prompts[0], script.instructions[0]
    assert "Task: check" in prompt
    assert "- verify: Checks one claim." in prompt
    assert "200 rows of dict" in prompt
    assert "topic (str; 2 distinct, e.g. sky, sea)" in prompt
    assert "claim number 150" not in prompt  # described, never read
    assert "You lead fact-checkers." in instructions
    assert "plan the task as subtasks" in instructions


def test_an_llm_leader_gets_its_rejected_plan_back_with_the_error() -> None:
    script = Leader({"subtasks": [{"id": "c", "member": "checker", "input": "x"}]},
                    {"subtasks": [{"id": "c", "member": "verify", "input": "x"}]})  # fmt: skip
    result = ff.run_sync(ff.team(ff.llm(FunctionModel(script)), [verify]), "check x")
    assert result.output.answer == ["x: true"]
    assert "Your previous plan was rejected: subtask 'c' names an unknown member 'checker'" in script.prompts[1]


def test_the_leader_writes_the_answer_from_the_results_and_what_is_missing() -> None:
    async def research(topic: str) -> str:
        if topic == "tides":
            raise ConnectionError("library closed")
        return f"notes on {topic}"

    plan = {"subtasks": [{"id": t, "member": "research", "input": t} for t in ("tea", "tides")], "merge": "leader",
            "merge_instruction": "One sentence."}  # fmt: skip
    script = Leader(plan, text="Tea is known; tides are not.")
    log = EventLog()
    result = ff.run_sync(ff.team(ff.llm(FunctionModel(script)), [research]), "tea and tides", on_event=log)
    team = result.output
    assert team.answer == "Tea is known; tides are not."
    assert team.missing == {"tides[0]": "failed: ConnectionError: library closed"}
    synthesis = script.prompts[1]
    assert '- tea[0]: "notes on tea"' in synthesis
    assert "- tides[0]: failed: ConnectionError" in synthesis
    assert "One sentence." in synthesis
    assert "Write the final answer" in script.instructions[1]
    assert "merge[0]" in {e.path for e in log.of_type(events.TaskSucceeded)}


def test_an_llm_member_gets_its_instruction_added_to_its_own() -> None:
    seen: list[tuple[str, str]] = []

    def member_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen.append((prompt_of(messages), info.instructions or ""))
        return ModelResponse(parts=[TextPart("done")])

    writer = ff.llm(FunctionModel(member_model), instructions="You write.", name="writer")
    plan = {"subtasks": [{"id": "w", "member": "writer", "instruction": "Be brief.", "input": "a poem"}]}
    ff.run_sync(ff.team(ff.llm(FunctionModel(Leader(plan))), [writer]), "write")
    assert seen == [("a poem", "You write.\n\nBe brief.")]


# -- delegation as tools -----------------------------------------------------------------------


def delegating(calls: list[tuple[str, str]], answer: str = "all done") -> FunctionModel:
    """A leader that makes every call in one answer, then answers with the tool results."""

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        returns = tool_returns(messages)
        if not returns:
            return ModelResponse(parts=[ToolCallPart("delegate", {"member": m, "task": t}) for m, t in calls])
        return ModelResponse(parts=[TextPart(f"{answer}: " + " | ".join(str(r.content) for r in returns))])

    return FunctionModel(respond)


def test_delegations_in_one_answer_run_at_once_even_to_the_same_member() -> None:
    probe = ConcurrencyProbe()
    gate = asyncio.Event()

    async def check(claim: str) -> str:
        async with probe.inside():
            if probe.now == 25:
                gate.set()
            await gate.wait()  # only returns once all 25 are in
        return f"{claim} ok"

    calls = [("check", f"claim {i}") for i in range(25)]
    log = EventLog()
    team = ff.team(ff.llm(delegating(calls)), [check], mode="delegate")
    result = ff.run_sync(team, "check them all", on_event=log)
    assert probe.peak == 25
    assert list(result.output.results) == [f"check[{i}]" for i in range(25)]
    assert result.output.answer.startswith("all done: claim 0 ok | claim 1 ok")
    started = [e.path for e in log.of_type(events.TaskStarted)]
    assert started[:2] == ["", "lead[0]"]
    assert {f"check[{i}]" for i in range(25)} <= set(started)


def test_a_delegation_to_a_stranger_or_past_the_cap_is_refused() -> None:
    calls = [("verify", "a"), ("nobody", "b"), ("verify", "c"), ("verify", "d")]
    team = ff.team(ff.llm(delegating(calls)), [verify], mode="delegate", caps=ff.TeamCaps(max_subtasks=2))
    answer = ff.run_sync(team, "go").output.answer
    assert answer == (
        "all done: a: true | refused: there is no member 'nobody'; the members are verify | c: true | "
        "refused: this team may delegate at most 2 tasks (max_subtasks), and has used them all"
    )


def test_a_failed_delegation_tells_the_leader_and_is_missing() -> None:
    async def flaky(task: str) -> str:
        raise ValueError(f"cannot {task}")

    team = ff.team(ff.llm(delegating([("flaky", "fly")])), [flaky], mode="delegate")
    result = ff.run_sync(team, "go").output
    assert result.answer == "all done: flaky[0] did not succeed: failed: ValueError: cannot fly"
    assert result.missing == {"flaky[0]": "failed: ValueError: cannot fly"}


def test_delegations_stop_at_the_team_deadline() -> None:
    async def slow(task: str) -> str:
        await asyncio.sleep(100 if task == "slow" else 1)
        return task

    team = ff.team(ff.llm(delegating([("slow", "quick"), ("slow", "slow")])), [slow], mode="delegate", deadline=10)
    with VirtualClock() as clock:
        result = ff.run_sync(team, "go").output
    assert clock.now == 10
    assert result.results == {"slow[0]": "quick"}
    assert result.missing == {"slow[1]": "timed_out: task timed out after 10s"}


def test_a_delegating_team_may_delegate_to_a_planning_team() -> None:
    inner = ff.team(lambda request: {"subtasks": [{"id": "v", "member": "verify", "input": request.task}]},
                    [verify], name="checkers")  # fmt: skip
    team = ff.team(ff.llm(delegating([("checkers", "the sea is wet")])), [inner], mode="delegate")
    log = EventLog()
    result = ff.run_sync(team, "go", on_event=log).output
    assert result.results["checkers[0]"].answer == ["the sea is wet: true"]
    assert "checkers[0]/v[0]" in {e.path for e in log.of_type(events.TaskSucceeded)}


def test_a_delegating_team_takes_no_data_set() -> None:
    team = ff.team(ff.llm(delegating([])), [verify], mode="delegate")
    with pytest.raises(ff.RunFailed) as caught:
        ff.run_sync(team, ff.Brief("go", [1, 2]))
    assert "use mode='plan' to have the leader split the data" in str(caught.value)
