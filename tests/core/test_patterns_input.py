"""ff.with_input: what sees a pattern's results (a merge, a judge, a reducer, a next step) may see
the pattern's input too. The scenarios are LangGraph's and CrewAI's tutorials re-expressed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import fanfold as ff
from fanfold.testing import EventLog

DICTIONARY = {
    "the cat sleeps": {"el gato duerme", "la gata duerme"},
}


def translator(style: str) -> ff.FunctionAgent:
    async def translate(sentence: str) -> str:
        await asyncio.sleep(0)
        return {"literal": "el gato duerme", "loose": "el felino descansa", "wrong": "el perro come"}[style]

    return ff.agent(translate, name=f"translate_{style}")


def test_a_judge_picks_the_best_of_three_translations_using_the_source_sentence() -> None:
    seen: list[tuple[str, list[str]]] = []

    def best(source: str, translations: list[str]) -> str:
        seen.append((source, translations))
        return next(t for t in translations if t in DICTIONARY[source])

    spec = ff.vote(translator("wrong"), translator("loose"), translator("literal"), judge=ff.with_input(best))
    log = EventLog()
    result = ff.run_sync(spec, "the cat sleeps", on_event=log)
    assert result.output == "el gato duerme"
    assert seen == [("the cat sleeps", ["el perro come", "el felino descansa", "el gato duerme"])]
    assert "judge[judge]" in {e.path for e in log.finished()}


def test_a_joke_judge_and_an_aggregator_use_the_topic() -> None:
    """LangGraph's parallelization workflow: a joke, a story and a poem on a topic, and an
    aggregator that writes 'Here's a story, joke, and poem about {topic}'."""

    def joke(topic: str) -> str:
        return f"Why did the {topic} cross the road?"

    def story(topic: str) -> str:
        return f"Once upon a time, a {topic}."

    def poem(topic: str) -> str:
        return f"O {topic}, O {topic}."

    async def aggregate(topic: str, parts: dict[str, str]) -> str:
        body = "\n".join(parts[k] for k in ("story", "joke", "poem"))
        return f"Here's a story, joke, and poem about {topic}!\n{body}"

    spec = ff.parallel(joke, story, poem, merge=ff.with_input(aggregate))
    log = EventLog()
    result = ff.run_sync(spec, "cats", on_event=log)
    assert result.output.startswith("Here's a story, joke, and poem about cats!\nOnce upon a time, a cats.")
    assert "merge[merge]" in {e.path for e in log.finished()}

    def funny_about(topic: str, jokes: list[str]) -> str:  # the judge needs the topic
        return max(jokes, key=lambda j: (topic in j, len(j)))

    def dull(topic: str) -> str:
        return "Knock knock."

    judged = ff.vote(joke, dull, decide=ff.with_input(funny_about))
    assert ff.run_sync(judged, "chicken").output == "Why did the chicken cross the road?"


def test_a_merge_without_with_input_gets_the_results_alone() -> None:
    spec = ff.parallel(a=str.upper, b=str.lower, merge=lambda results: sorted(results.values()))
    assert ff.run_sync(spec, "Hi").output == ["HI", "hi"]


def test_an_agent_object_receives_a_given_and_a_function_may_take_the_context() -> None:
    class Judge:
        name = "judge"

        async def run(self, given: ff.Given[str, list[int]], ctx: ff.Context) -> tuple[str, int]:
            return given.input, max(given.results)

    def with_path(source: str, results: list[int], ctx: ff.Context) -> str:
        return f"{source}@{ctx.path}:{sum(results)}"

    async def sample(x: str) -> int:
        return len(x)

    assert ff.run_sync(ff.vote(sample, n=2, judge=ff.with_input(Judge())), "abc").output == ("abc", 3)
    assert ff.run_sync(ff.vote(sample, n=2, judge=ff.with_input(with_path)), "ab").output == "ab@judge[judge]:4"


def test_a_reducer_sees_the_input_before_the_split_on_every_level() -> None:
    calls: list[Any] = []

    def reduce(text: str, counts: list[int]) -> int:
        calls.append(text)
        return sum(counts)

    spec = ff.map_reduce(split=str.split, map=len, reduce=ff.with_input(reduce), fan_in=2)
    text = "one two three four five"
    assert ff.run_sync(spec, text).output == 19
    assert len(calls) == 3 + 2 + 1  # 5 results -> 3 groups -> 2 groups -> the final
    assert set(calls) == {text}


def test_a_sequence_step_sees_the_sequence_input() -> None:
    def draft(topic: str) -> str:
        return f"a joke about {topic}"

    def check(topic: str, joke: str) -> str:
        return joke if topic in joke else "off topic"

    assert ff.run_sync(ff.sequence(draft, ff.with_input(check)), "owls").output == "a joke about owls"
    first = ff.sequence(ff.with_input(lambda topic, same: (topic, same)))
    assert ff.run_sync(first, "x").output == ("x", "x")  # the first step's results are the input


def test_with_input_keeps_a_function_agents_options() -> None:
    attempts: list[int] = []

    @ff.agent(name="flaky_judge", retry=ff.RetryPolicy(retry_on=ConnectionError, attempts=3, initial=0))
    def judge(source: str, answers: list[str]) -> str:
        attempts.append(1)
        if len(attempts) < 2:
            raise ConnectionError("reset")
        return f"{source}:{answers[0]}"

    fed = ff.with_input(judge)
    assert repr(fed) == "ff.with_input(flaky_judge)"
    assert ff.run_sync(ff.vote(str.upper, n=1, judge=fed), "q").output == "q:Q"
    assert len(attempts) == 2


def test_with_input_is_refused_where_the_agents_get_the_input_already() -> None:
    fed = ff.with_input(lambda source, results: results)
    for build in (
        lambda: ff.map(fed),
        lambda: ff.parallel(fed),
        lambda: ff.race(fed),
        lambda: ff.vote(fed),
        lambda: ff.guard(fed, bool),
        lambda: ff.map_reduce(map=fed, reduce=sum),
    ):
        with pytest.raises(ff.UsageError, match=r"got ff.with_input\(<lambda>\); its agents get the input already"):
            build()


def test_with_input_names_a_function_that_cannot_take_both() -> None:
    def one(results: list[int]) -> int:
        return 0

    class Judge:
        async def run(self, given: Any, ctx: Any) -> Any: ...

    one_parameter = r"with_input\(one\): 'one' takes 1 positional parameter.*def f\(input, results\)"
    with pytest.raises(ff.UsageError, match=one_parameter):
        ff.with_input(one)
    with pytest.raises(ff.UsageError, match=r"vote\(decide=ff.with_input\(Judge\)\) takes a function"):
        ff.vote(str.upper, decide=ff.with_input(Judge()))
