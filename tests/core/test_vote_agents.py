"""ff.vote over several agents (each sampled n times) and its rules: majority, a threshold."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

import fanfold as ff
from fanfold.testing import EventLog


def reviewer_model(rules: dict[str, str]) -> FunctionModel:
    """A model that answers as the reviewer its instructions name: each reviewer has its prompt."""

    async def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        instructions = info.instructions or ""
        verdict = next(v for who, v in rules.items() if who in instructions)
        return ModelResponse(parts=[TextPart(verdict)])

    return FunctionModel(respond)


def test_three_reviewers_with_different_prompts_approve_when_two_say_yes() -> None:
    model = reviewer_model({"security": "yes", "style": "no", "tests": "yes"})
    reviewers = [
        ff.llm(model, name=f"{area}_reviewer", instructions=f"You review the {area} of a pull request.")
        for area in ("security", "style", "tests")
    ]
    log = EventLog()
    result = ff.run_sync(ff.vote(*reviewers, rule=ff.AtLeast(2, "yes")), "diff --git ...", on_event=log)
    assert result.output is True
    assert [o.path for o in result.outcomes] == [
        "vote[security_reviewer]", "vote[style_reviewer]", "vote[tests_reviewer]"
    ]  # fmt: skip
    assert ff.run_sync(ff.vote(reviewers, rule=ff.AtLeast(3, "yes")), "diff").output is False


def test_a_threshold_stops_as_soon_as_it_is_reached_and_cancels_the_rest() -> None:
    async def yes(_: object) -> str:
        return "yes"

    async def stuck(_: object) -> str:
        await asyncio.Event().wait()
        return "no"

    result = ff.run_sync(ff.vote(yes, stuck, yes, rule=ff.AtLeast(2, "yes")), None)
    assert result.output is True
    stuck_outcome = result.outcomes[1]
    assert stuck_outcome.status in (ff.Status.CANCELLED, ff.Status.SKIPPED)  # cancelled, or never started
    assert stuck_outcome.reason == "the vote is decided; remaining samples cannot change it"


def test_a_threshold_stops_as_soon_as_it_cannot_be_reached() -> None:
    async def no(_: object) -> str:
        return "no"

    async def stuck(_: object) -> str:
        await asyncio.Event().wait()
        return "yes"

    result = ff.run_sync(ff.vote(no, no, stuck, rule=ff.AtLeast(2, "yes")), None)
    assert result.output is False
    stuck_outcome = result.outcomes[2]
    assert stuck_outcome.status in (ff.Status.CANCELLED, ff.Status.SKIPPED)  # cancelled, or never started
    assert stuck_outcome.reason == "the vote is decided; remaining samples cannot change it"


def test_each_of_several_agents_is_sampled_n_times() -> None:
    calls: list[str] = []

    def optimist(_: object) -> str:
        calls.append("optimist")
        return "ship"

    def pessimist(_: object) -> str:
        calls.append("pessimist")
        return "wait"

    result = ff.run_sync(ff.vote(optimist, pessimist, pessimist, n=2, early_stop=False), None)
    assert result.output == "wait"
    assert sorted(calls) == ["optimist"] * 2 + ["pessimist"] * 4
    assert [o.path for o in result.outcomes] == [
        "vote[optimist.0]", "vote[optimist.1]", "vote[pessimist.0]", "vote[pessimist.1]",
        "vote[pessimist#2.0]", "vote[pessimist#2.1]",
    ]  # fmt: skip


def test_one_agent_keeps_its_paths_and_default_of_five_samples() -> None:
    log = EventLog()
    result = ff.run_sync(ff.vote(str.upper, early_stop=False), "a", on_event=log)
    assert [o.path for o in result.outcomes] == [f"vote[{i}]" for i in range(5)]


def test_a_threshold_counts_through_the_votes_key() -> None:
    def approve(pr: str) -> dict[str, Any]:
        return {"approved": True, "note": f"ok {pr}"}

    def reject(pr: str) -> dict[str, Any]:
        return {"approved": False, "note": "no"}

    spec = ff.vote(approve, reject, approve, rule=ff.AtLeast(2), key=lambda review: review["approved"])
    assert ff.run_sync(spec, "#7").output is True


def test_vote_still_takes_n_by_position_after_one_agent() -> None:
    assert ff.vote(str.upper, 5).n == ff.vote(str.upper, n=5).n == 5
    assert ff.run_sync(ff.vote(str.upper, 3), "a").output == "A"


def test_vote_refuses_what_it_cannot_do_with_the_fix() -> None:
    cases: list[tuple[Callable[[], Any], str]] = [
        (lambda: ff.vote(str.upper, str.lower, 5), r"pass the number of samples by name: ff.vote\(agent, n=5\)"),
        (lambda: ff.vote(), r"vote\(\) got no agents"),
        (
            lambda: ff.vote(str.upper, str.lower, rule=ff.AtLeast(3)),
            r"AtLeast\(3, ...\)\) over 2 sample\(s\) could never pass",
        ),
        (lambda: ff.vote(str.upper, rule=ff.AtLeast(2), judge=max), "pass one of rule=, judge="),
        (lambda: ff.vote(str.upper, rule="majority"), r"vote\(rule='majority'\): pass a rule"),  # type: ignore[arg-type]
        (lambda: ff.AtLeast(0), r"AtLeast\(k=0\): pass how many answers must agree"),
    ]
    for build, message in cases:
        with pytest.raises(ff.UsageError, match=message):
            build()


def test_the_rules_name_the_package() -> None:
    assert repr(ff.AtLeast(2, "yes")) == "AtLeast(k=2, answer='yes')"
    assert ff.Majority() == ff.Majority()
    assert issubclass(ff.AtLeast, ff.VoteRule)


# -- properties -----------------------------------------------------------------------------

ANSWER = st.one_of(st.sampled_from(["yes", "no", "maybe"]), st.just(None))  # None: the sample fails


def agents_for(script: list[list[str | None]]) -> list[Any]:
    """One agent per row; sample j of agent i answers script[i][j] (its position from the path)."""
    agents = []
    for i, row in enumerate(script):

        async def sample(_: object, ctx: ff.Context, row: list[str | None] = row) -> str:
            label = str(ctx.label)
            j = int(label.rpartition(".")[2]) if "." in label else 0
            await asyncio.sleep(0)
            answer = row[j]
            if answer is None:
                raise RuntimeError("failed")
            return answer

        agents.append(ff.agent(sample, name=f"agent{i}"))
    return agents


@settings(max_examples=40, deadline=None)
@given(k=st.integers(1, 3), n=st.integers(1, 3), data=st.data())
def test_every_sample_ends_in_one_outcome_and_the_threshold_matches_a_count(k: int, n: int, data: Any) -> None:
    script = data.draw(st.lists(st.lists(ANSWER, min_size=n, max_size=n), min_size=2, max_size=3))
    threshold = data.draw(st.integers(1, len(script) * n))
    agents = agents_for(script)
    answers = [a for row in script for a in row]
    spec = ff.vote(*agents, n=n, rule=ff.AtLeast(threshold, "yes"))
    if all(a is None for a in answers):
        with pytest.raises(ff.RunFailed) as info:
            ff.run_sync(spec, None)
        assert isinstance(info.value.__cause__, ff.VoteFailed)
        return
    result = ff.run_sync(spec, None)
    assert len(result.outcomes) == len(answers)  # every sample, run or cancelled, has one outcome
    assert sorted(o.index for o in result.outcomes) == list(range(len(answers)))
    assert sum(result.summary.counts.values()) == len(answers)
    assert result.output is (answers.count("yes") >= threshold)  # as if every sample had run


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_an_early_majority_agrees_with_the_majority_of_every_sample(data: Any) -> None:
    """Stopping early never changes the winner: the leader it stops for can no longer be tied."""
    script = data.draw(st.lists(st.lists(st.sampled_from("ab"), min_size=1, max_size=1), min_size=1, max_size=7))
    answers = [row[0] for row in script]
    early = ff.run_sync(ff.vote(*agents_for(script), n=1), None)
    late = ff.run_sync(ff.vote(*agents_for(script), n=1, early_stop=False), None)
    assert len(early.outcomes) == len(late.outcomes) == len(answers)
    assert early.output == late.output == ff.Majority().decide(answers, lambda a: a)
