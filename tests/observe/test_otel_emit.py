"""Agents that report: ``ctx.emit`` reaches ``on_event`` callbacks, ``run.events()`` streams and
the trace, with the task's path and attempt; its data is JSON, redacted."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import fanfold as ff
from fanfold import events
from fanfold.testing import EventLog

CANARY = "sk-canary-do-not-emit-0123456789"


@ff.agent
async def searcher(query: str, ctx: ff.Context) -> str:
    ctx.emit("tool_call", tool="search", query=query)
    ctx.emit("partial", hits=[1, 2], done=False)
    return query


@ff.agent
def threaded(query: str, ctx: ff.Context) -> str:  # a sync agent: runs in a worker thread
    ctx.emit("tool_call", tool="lookup", query=query)
    return query


@pytest.mark.parametrize("agent", [searcher, threaded], ids=["async", "sync in a thread"])
def test_emitted_events_reach_callbacks_with_the_tasks_path(agent: Any) -> None:
    log = EventLog()
    ff.run_sync(ff.map(agent), ["a", "b"], on_event=log)
    calls = [e for e in log.of_type(events.AgentEvent) if e.name == "tool_call"]
    assert sorted((e.path, e.data["query"]) for e in calls) == [("map[0]", "a"), ("map[1]", "b")]
    assert all(e.attempt == 1 and e.run_id == log.events[0].run_id for e in calls)
    for event in calls:  # sent while its task ran: after it started, before it finished
        order = [type(e) for e in log.events if e.path == event.path]
        assert order.index(events.AgentEvent) < order.index(events.TaskSucceeded)


def test_emitted_events_reach_the_event_stream() -> None:
    async def main() -> list[events.Event]:
        seen = []
        async with ff.start(ff.map(searcher), ["q"]) as run:
            async for event in run.events():
                seen.append(event)
        return seen

    seen = asyncio.run(main())
    emitted = [e for e in seen if isinstance(e, events.AgentEvent)]
    assert [(e.name, e.data) for e in emitted] == [
        ("tool_call", {"tool": "search", "query": "q"}),
        ("partial", {"hits": [1, 2], "done": False}),
    ]


def test_emitted_events_are_span_events_on_the_tasks_span() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    ff.run_sync(ff.map(searcher), ["q"], trace=ff.Tracing(tracer_provider=provider))
    (task,) = [s for s in exporter.get_finished_spans() if s.name == "invoke_agent searcher"]
    emitted = [e for e in task.events if e.name in ("tool_call", "partial")]
    assert [e.name for e in emitted] == ["tool_call", "partial"]
    assert all(e.attributes is not None and "fanfold.data" not in e.attributes for e in emitted)  # content is opt-in


def test_emitted_data_is_redacted() -> None:
    @ff.agent
    def leaky(x: str, ctx: ff.Context) -> str:
        ctx.emit("request", url=f"https://h/v1?api_key={CANARY}", nested={"auth": [f"Bearer {CANARY}"]})
        return x

    log = EventLog()
    ff.run_sync(ff.map(leaky), ["a"], on_event=log)
    (event,) = log.of_type(events.AgentEvent)
    assert CANARY not in repr(event)
    assert event.data["url"] == "https://h/v1?api_key=***"


def test_data_that_is_no_json_is_named() -> None:
    @ff.agent
    def bad(x: str, ctx: ff.Context) -> str:
        ctx.emit("progress", done=1, when=object())
        return x

    result = ff.run_sync(ff.map(bad), ["a"])
    (outcome,) = result.outcomes
    assert outcome.status is ff.Status.FAILED
    assert outcome.error is not None
    assert outcome.error.type == "UsageError"
    assert "ctx.emit('progress', ...): when=<object object" in outcome.error.message
    assert "is not JSON data" in outcome.error.message


def test_a_bad_name_is_named() -> None:
    @ff.agent
    def nameless(x: str, ctx: ff.Context) -> str:
        ctx.emit("")
        return x

    (outcome,) = ff.run_sync(ff.map(nameless), ["a"]).outcomes
    assert outcome.error is not None
    assert "ctx.emit(''): pass the event's name" in outcome.error.message


@dataclass(frozen=True, slots=True)
class ToolCalled(events.AgentEvent):
    pass


def test_an_agent_event_object_is_sent_with_the_tasks_path_and_keeps_its_type() -> None:
    @ff.agent
    async def typed(x: str, ctx: ff.Context) -> str:
        ctx.emit(ToolCalled("", "", 0.0, "tool_call", {"tool": "calc"}))
        return x

    log = EventLog()
    ff.run_sync(ff.map(typed), ["a"], on_event=log)
    (event,) = log.of_type(events.AgentEvent)
    assert type(event) is ToolCalled
    assert (event.path, event.name, event.data, event.run_id) == (
        "map[0]",
        "tool_call",
        {"tool": "calc"},
        log.events[0].run_id,
    )
    assert event.at > 0


def test_with_nobody_listening_emit_costs_nothing_but_its_checks() -> None:
    assert ff.run_sync(ff.map(searcher), ["a"]).output == ["a"]
