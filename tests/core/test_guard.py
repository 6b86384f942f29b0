"""ff.guard: answer while a screen checks the input; a screen that says no cancels the answer.

The scenario is the OpenAI Agents SDK's guardrail tutorial: a math tutor, and a homework
detector that runs alongside it and trips when a student asks it to do their homework."""

from __future__ import annotations

import asyncio

import pytest
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

import fanfold as ff
from fanfold.testing import EventLog

HOMEWORK = "Please solve for x: 2x + 3 = 11, it is for my homework"


def is_homework(question: str) -> bool:
    return "homework" in question


def test_a_screen_that_trips_cancels_the_answer_mid_call_and_the_guard_returns_blocked() -> None:
    started = asyncio.Event()
    seen: list[str] = []

    async def math_tutor(question: str) -> str:
        started.set()
        try:
            await asyncio.Event().wait()  # a long answer: only the screen ends it
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        return "x = 4"

    async def homework_check(question: str) -> ff.Blocked | bool:
        await started.wait()  # trip only once the answer is under way
        return ff.Blocked("the student asked for their homework") if is_homework(question) else True

    log = EventLog()
    result = ff.run_sync(ff.guard(math_tutor, homework_check), HOMEWORK, on_event=log)
    assert result.output == ff.Blocked("the student asked for their homework")
    assert seen == ["cancelled"]
    answer, screen = result.outcomes
    assert answer.path == "guard[answer]"
    assert answer.status is ff.Status.CANCELLED
    assert answer.reason == "blocked by homework_check"
    assert screen.status is ff.Status.SUCCEEDED


def test_a_blocked_guard_returns_the_value_it_was_given() -> None:
    def homework_check(question: str) -> bool:
        return not is_homework(question)

    spec = ff.guard(lambda q: "x = 4", homework_check, blocked="I can't do your homework for you.")
    assert ff.run_sync(spec, HOMEWORK).output == "I can't do your homework for you."
    falsy = ff.run_sync(ff.guard(lambda q: "x = 4", homework_check), HOMEWORK).output
    assert falsy == ff.Blocked("homework_check returned False")


def test_a_screen_that_passes_returns_the_answer_once_both_are_done() -> None:
    answered = asyncio.Event()
    order: list[str] = []

    async def math_tutor(question: str) -> str:
        order.append("answer")
        answered.set()
        return "x = 4"

    async def homework_check(question: str) -> bool:
        await answered.wait()  # the answer is done first: the guard still waits for the screen
        order.append("screen")
        return not is_homework(question)

    result = ff.run_sync(ff.guard(math_tutor, homework_check), "What is 2x + 3 = 11?")
    assert result.output == "x = 4"
    assert order == ["answer", "screen"]
    assert [o.status for o in result.outcomes] == [ff.Status.SUCCEEDED, ff.Status.SUCCEEDED]


def test_a_screen_that_trips_after_the_answer_is_done_still_blocks_it() -> None:
    answered = asyncio.Event()

    async def math_tutor(question: str) -> str:
        answered.set()
        return "x = 4"

    async def homework_check(question: str) -> bool:
        await answered.wait()
        return not is_homework(question)

    result = ff.run_sync(ff.guard(math_tutor, homework_check), HOMEWORK)
    assert isinstance(result.output, ff.Blocked)
    assert result.outcomes[0].status is ff.Status.SUCCEEDED  # answered, and not returned


def test_a_failing_screen_fails_the_guard_closed() -> None:
    started = asyncio.Event()

    async def math_tutor(question: str) -> str:
        started.set()
        await asyncio.Event().wait()
        return "x = 4"

    async def homework_check(question: str) -> bool:
        await started.wait()
        raise ConnectionError("the classifier is down")

    with pytest.raises(ff.RunFailed) as info:
        ff.run_sync(ff.guard(math_tutor, homework_check), "What is 2 + 2?")
    assert isinstance(info.value.__cause__, ConnectionError)
    answer, screen = info.value.result.outcomes
    assert answer.status is ff.Status.CANCELLED
    assert answer.reason == "the screen homework_check did not pass the input"
    assert screen.status is ff.Status.FAILED


def test_a_failing_answer_fails_the_guard_unless_the_screen_blocks() -> None:
    def broken(question: str) -> str:
        raise KeyError("no tutor")

    with pytest.raises(ff.RunFailed) as info:
        ff.run_sync(ff.guard(broken, lambda q: True), "What is 2 + 2?")
    assert isinstance(info.value.__cause__, KeyError)
    assert ff.run_sync(ff.guard(broken, lambda q: False, blocked="no"), "q").output == "no"


def test_a_tripped_screen_cancels_an_llm_answers_model_call() -> None:
    started = asyncio.Event()
    seen: list[str] = []

    async def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("model call cancelled")
            raise
        return ModelResponse(parts=[TextPart("x = 4")])

    tutor = ff.llm(FunctionModel(respond), name="math_tutor", instructions="You help with math questions.")

    async def homework_check(question: str) -> ff.Blocked | bool:
        await started.wait()
        return ff.Blocked("homework") if is_homework(question) else True

    spec = ff.map(ff.guard(tutor, homework_check, blocked="Ask me something else."))
    log = EventLog()
    result = ff.run_sync(spec, [HOMEWORK], on_event=log)
    assert result.output == ["Ask me something else."]
    assert seen == ["model call cancelled"]
    cancelled = {e.path: e.outcome for e in log.finished() if e.outcome.status is ff.Status.CANCELLED}
    assert cancelled["map[0]/guard[answer]"].reason == "blocked by homework_check"


def test_guards_nest_and_each_screen_can_block() -> None:
    def on_topic(question: str) -> ff.Blocked | bool:
        return ff.Blocked("off topic") if "weather" in question else True

    def tutor(question: str) -> str:
        return "x = 4"

    spec = ff.map(ff.guard(ff.guard(tutor, on_topic), lambda q: not is_homework(q)))
    result = ff.run_sync(spec, ["What is 2x = 8?", "How is the weather?", HOMEWORK])
    assert result.output[0] == "x = 4"
    assert result.output[1] == ff.Blocked("off topic")
    assert isinstance(result.output[2], ff.Blocked)


def test_guard_refuses_a_pattern_input_wrapper() -> None:
    with pytest.raises(ff.UsageError, match=r"guard\(screen\) got ff.with_input"):
        ff.guard(str.upper, ff.with_input(lambda q, r: True))
