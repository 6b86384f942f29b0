"""Traces and metrics of runs, read back from the OpenTelemetry SDK's own in-memory exporter and
metric reader (the real SDK, no mock): span names and parent links across parallel branches,
attributes, no secrets, no content unless asked, metrics, and nothing at all when tracing is off."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage

import fanfold as ff
from fanfold import events
from fanfold.testing import EventLog, Faults, Latency, SimRequest, SimulatedProvider, VirtualClock

CANARY = "sk-canary-do-not-trace-0123456789"


class Otel:
    """An SDK tracer provider and meter provider writing to memory."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def tracing(self, **options: Any) -> ff.Tracing:
        return ff.Tracing(tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, **options)

    @property
    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, prefix: str) -> list[ReadableSpan]:
        return [s for s in self.spans if s.name.startswith(prefix)]

    def by_path(self) -> dict[str, ReadableSpan]:
        found = {}
        for span in self.named("invoke_"):
            assert span.attributes is not None
            found[str(span.attributes.get("fanfold.path", ""))] = span
        return found

    def metrics(self) -> dict[str, list[Any]]:
        data = self.reader.get_metrics_data()
        assert data is not None
        return {
            metric.name: list(metric.data.data_points)
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
        }

    def everything_written(self) -> str:
        """Every name, attribute, event and status text of every span, as one text."""
        parts = []
        for span in self.spans:
            parts += [span.name, json.dumps(dict(span.attributes or {})), str(span.status.description)]
            parts += [e.name + json.dumps(dict(e.attributes or {})) for e in span.events]
        return "\n".join(parts)


@pytest.fixture
def otel() -> Iterator[Otel]:
    made = Otel()
    yield made
    made.tracer_provider.shutdown()
    made.meter_provider.shutdown()


def answering(*script: Any) -> FunctionModel:
    """A model playing ``script`` in order (then its last entry): an exception is raised, a
    string is the answer (100 tokens in, 10 out)."""
    calls = {"n": 0}

    async def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        step = script[min(calls["n"], len(script) - 1)]
        calls["n"] += 1
        if isinstance(step, BaseException):
            raise step
        return ModelResponse(parts=[TextPart(step)], usage=RequestUsage(input_tokens=100, output_tokens=10))

    return FunctionModel(respond)


def parent_of(span: ReadableSpan, spans: list[ReadableSpan]) -> ReadableSpan | None:
    assert span.parent is not None
    return next((s for s in spans if s.context.span_id == span.parent.span_id), None)


# -- the tree of spans -------------------------------------------------------------------------


def test_a_map_of_parallel_model_calls_nests_every_span_under_its_task(otel: Otel) -> None:
    skeptic = ff.llm(answering("no"), name="skeptic")
    optimist = ff.llm(answering("yes"), name="optimist")
    spec = ff.map(ff.parallel(skeptic, optimist))
    result = ff.run_sync(spec, ["a", "b", "c"], trace=otel.tracing(), limits=ff.Limits(concurrency=6))
    assert result.complete
    spans = otel.spans
    (workflow,) = otel.named("invoke_workflow")
    assert workflow.name == "invoke_workflow map"
    assert workflow.parent is None
    assert workflow.attributes is not None
    assert workflow.attributes["gen_ai.operation.name"] == "invoke_workflow"
    assert workflow.attributes["gen_ai.workflow.name"] == "map"
    tasks = otel.by_path()
    assert sorted(tasks) == sorted(
        [
            "",
            *(f"map[{i}]" for i in range(3)),
            *(f"map[{i}]/parallel[{n}]" for i in range(3) for n in ("skeptic", "optimist")),
        ]
    )
    for path, span in tasks.items():
        if path:  # each task's parent is the task above it
            above = path.rpartition("/")[0]
            assert parent_of(span, spans) is tasks[above], path
            assert span.context.trace_id == workflow.context.trace_id
    chats = otel.named("chat ")
    assert len(chats) == 6
    for chat in chats:
        assert chat.attributes is not None
        task = parent_of(chat, spans)
        assert task is tasks[str(chat.attributes["fanfold.path"])]  # under its own branch, not a sibling's
        assert chat.name == "chat function:respond:"  # FunctionModel names its model so
        assert task.attributes is not None
        assert chat.attributes["gen_ai.request.model"] == "function:respond:"
        assert task.attributes["gen_ai.agent.name"] in ("skeptic", "optimist")
        assert task.name == f"invoke_agent {task.attributes['gen_ai.agent.name']}"
        assert task.start_time is not None
        assert chat.start_time is not None
        assert chat.end_time is not None
        assert task.start_time <= chat.start_time <= chat.end_time


def test_task_spans_carry_fanfold_attributes_and_usage_is_counted_once(otel: Otel) -> None:
    grader = ff.llm(answering("ok"), name="grader")
    spec = ff.map(grader, key=lambda essay: f"essay-{essay}")
    ff.run_sync(spec, ["x", "y"], trace=otel.tracing())
    tasks = otel.by_path()
    first = tasks["map[1]"].attributes
    assert first is not None
    assert first["fanfold.path"] == "map[1]"
    assert first["fanfold.index"] == 1
    assert first["fanfold.key"] == "essay-y"
    assert first["fanfold.attempts"] == 1
    assert first["fanfold.status"] == "succeeded"
    assert first["gen_ai.agent.name"] == "grader"
    assert first["gen_ai.operation.name"] == "invoke_agent"
    assert first["gen_ai.provider.name"] == "function"  # of the task's own model requests
    # gen_ai.usage.* only on the requests' spans: a backend summing them counts each token once.
    chats = otel.named("chat ")
    assert sum(int(c.attributes["gen_ai.usage.input_tokens"]) for c in chats if c.attributes) == 200
    for span in otel.named("invoke_"):
        assert span.attributes is not None
        assert not [name for name in span.attributes if name.startswith("gen_ai.usage")]
    assert first["fanfold.usage.input_tokens"] == 100
    workflow = tasks[""].attributes
    assert workflow is not None
    assert workflow["fanfold.usage.input_tokens"] == 200
    assert workflow["fanfold.usage.output_tokens"] == 20
    assert workflow["fanfold.usage.requests"] == 2


def test_failures_retries_and_429_pauses_show_on_the_task_span(otel: Otel, clock: VirtualClock) -> None:
    flaky = ff.llm(
        answering(
            ModelHTTPError(429, "m", headers={"retry-after-ms": "2000", "x-ratelimit-remaining-requests": "0"}), "ok"
        ),
        name="flaky",
    )

    @ff.agent
    def broken(x: str) -> str:
        raise ValueError(f"no good: {x}")

    spec = ff.parallel(flaky, broken, policy=ff.Collect())
    ff.run_sync(spec, "in", trace=otel.tracing())
    tasks = otel.by_path()
    flaky_span = tasks["parallel[flaky]"]
    names = [e.name for e in flaky_span.events]
    assert "fanfold.throttled" in names
    assert "fanfold.retry" in names
    throttled = next(e for e in flaky_span.events if e.name == "fanfold.throttled")
    assert throttled.attributes is not None
    assert throttled.attributes["fanfold.pause"] == pytest.approx(2.0)
    assert throttled.attributes["http.response.status_code"] == 429
    assert flaky_span.attributes is not None
    assert flaky_span.attributes["fanfold.status"] == "succeeded"
    failed_chat, ok_chat = sorted(otel.named("chat "), key=lambda s: s.start_time or 0)
    assert failed_chat.attributes is not None
    assert ok_chat.attributes is not None
    assert failed_chat.attributes["error.type"] == "429"
    assert failed_chat.status.status_code is StatusCode.ERROR
    assert "error.type" not in ok_chat.attributes
    broken_span = tasks["parallel[broken]"]
    assert broken_span.attributes is not None
    assert broken_span.attributes["fanfold.status"] == "failed"
    assert broken_span.attributes["error.type"] == "ValueError"
    assert broken_span.status.status_code is StatusCode.ERROR
    assert broken_span.status.description == "ValueError: no good: in"


def test_a_deadline_ends_spans_timed_out_with_the_reason(otel: Otel, clock: VirtualClock) -> None:
    async def slow(x: int) -> int:
        await asyncio.sleep(10 * x)
        return x

    result = ff.run_sync(ff.map(slow), [0, 1], trace=otel.tracing(), deadline=5)
    assert result.status is ff.RunStatus.PARTIAL
    late = otel.by_path()["map[1]"].attributes
    assert late is not None
    assert late["fanfold.status"] == "timed_out"
    assert late["fanfold.reason"] == "the run's deadline passed"
    assert late["error.type"] == "timeout"


def test_an_agents_own_spans_nest_under_its_task_in_async_and_sync_agents(otel: Otel) -> None:
    tracer = otel.tracer_provider.get_tracer("user")

    @ff.agent
    async def in_loop(x: int) -> int:
        with tracer.start_as_current_span("mine async"):
            return x

    @ff.agent
    def in_thread(x: int) -> int:  # runs in a worker thread
        with tracer.start_as_current_span("mine sync"):
            return x

    with tracer.start_as_current_span("caller") as caller:
        ff.run_sync(ff.map(ff.parallel(in_loop, in_thread)), [1, 2], trace=otel.tracing())
    spans, tasks = otel.spans, otel.by_path()
    for i in (0, 1):
        for name, agent in (("mine async", "in_loop"), ("mine sync", "in_thread")):
            mine = [s for s in spans if s.name == name and parent_of(s, spans) is tasks[f"map[{i}]/parallel[{agent}]"]]
            assert len(mine) == 1, (name, i)
    workflow = tasks[""]
    assert workflow.parent is not None
    assert workflow.parent.span_id == caller.get_span_context().span_id  # the run nests under its caller


# -- secrets and content ----------------------------------------------------------------------


def echo(request: SimRequest) -> str:
    return f"echo: {request.last_user_text}"


def test_no_secret_and_no_content_reach_the_trace_over_http(otel: Otel) -> None:
    async def main(sim: SimulatedProvider) -> ff.Result[Any]:
        model = ff.llm("openai-chat:sim-1", base_url=sim.openai_base_url, api_key=CANARY, name="echoer")

        @ff.agent
        def leaky(text: str) -> str:
            raise RuntimeError(f"upstream said: bad key {CANARY} ({len(text)} characters)")

        spec = ff.map(ff.parallel(model, leaky, policy=ff.Collect()), policy=ff.Collect())
        return await ff.run(spec, ["the secret plan", "another prompt"], trace=otel.tracing())

    async def serve() -> ff.Result[Any]:
        faults = Faults(script=lambda n, request: "500" if n == 1 else None)
        async with SimulatedProvider(answer=echo, latency=Latency.fixed(0.01), faults=faults) as sim:
            return await main(sim)

    result = asyncio.run(serve())
    assert result.complete
    written = otel.everything_written()
    assert "leaky" in written  # the spans were written
    assert "echoer" in written
    assert '"error.type": "500"' in written
    assert CANARY not in written
    assert "***" in written  # the error's message, redacted
    assert "secret plan" not in written  # no prompt
    assert "echo:" not in written  # no answer
    chats = otel.named("chat ")
    assert {c.name for c in chats} == {"chat sim-1"}
    assert {c.attributes["gen_ai.provider.name"] for c in chats if c.attributes} == {"openai"}
    assert len(chats) == 3  # one failed attempt (500), retried, and the other input's request


def test_content_is_recorded_when_asked_and_redacted(otel: Otel) -> None:
    @ff.agent
    def shout(text: str, ctx: ff.Context) -> str:
        ctx.emit("token", text=text.upper())
        return text.upper() + f" {CANARY}"

    ff.run_sync(ff.map(shout), [f"hello key={CANARY}"], trace=otel.tracing(content=True))
    span = otel.by_path()["map[0]"]
    assert span.attributes is not None
    (message,) = json.loads(str(span.attributes["gen_ai.input.messages"]))
    assert message["role"] == "user"
    assert message["parts"][0]["content"].startswith("hello key=")
    (answer,) = json.loads(str(span.attributes["gen_ai.output.messages"]))
    assert answer["parts"][0]["content"].startswith("HELLO KEY=")
    (token,) = [e for e in span.events if e.name == "token"]
    assert token.attributes is not None
    assert json.loads(str(token.attributes["fanfold.data"]))["text"].startswith("HELLO")
    assert CANARY not in otel.everything_written()


# -- metrics ------------------------------------------------------------------------------------


def test_token_usage_and_duration_metrics_follow_the_convention(otel: Otel) -> None:
    ff.run_sync(ff.map(ff.llm(answering("ok"))), ["a", "b", "c"], trace=otel.tracing())
    found = otel.metrics()
    tokens = {p.attributes["gen_ai.token.type"]: p for p in found["gen_ai.client.token.usage"]}
    assert (tokens["input"].sum, tokens["input"].count) == (300, 3)
    assert (tokens["output"].sum, tokens["output"].count) == (30, 3)
    assert dict(tokens["input"].attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "function",
        "gen_ai.request.model": "function:respond:",
        "gen_ai.token.type": "input",
    }
    (duration,) = found["gen_ai.client.operation.duration"]
    assert duration.count == 3


# -- tracing off --------------------------------------------------------------------------------


def test_a_run_without_trace_writes_no_span(otel: Otel) -> None:
    from opentelemetry import trace

    with trace.get_tracer("t", tracer_provider=otel.tracer_provider).start_as_current_span("outer"):
        ff.run_sync(ff.map(ff.llm(answering("ok"))), ["a"])
    assert [s.name for s in otel.spans] == ["outer"]
    assert otel.reader.get_metrics_data() is None or not otel.metrics()


def loaded_after(code: str) -> list[str]:
    """The opentelemetry and fanfold._observe modules loaded once ``code`` ran in a fresh interpreter."""
    prefixes = ("opentelemetry", "fanfold._observe")
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in sys.modules if m.startswith({prefixes!r}))))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded: list[str] = json.loads(done.stdout.splitlines()[-1])
    return loaded


def test_tracing_off_loads_no_opentelemetry() -> None:
    assert loaded_after("import fanfold as ff\nff.run_sync(ff.map(str.upper), ['a'])") == []
    traced = loaded_after("import fanfold as ff\nff.run_sync(ff.map(str.upper), ['a'], trace=True)")
    assert "fanfold._observe._otel" in traced


def test_without_opentelemetry_the_error_names_the_extra() -> None:
    code = (
        "import sys\nsys.modules['opentelemetry'] = None\nimport fanfold as ff\n"
        "try:\n    ff.run_sync(ff.map(str.upper), ['a'], trace=True)\n"
        "except ff.UsageError as exc:\n    print(exc)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'fanfold[otel]'" in done.stdout


@pytest.mark.parametrize("bad", ["yes", 1, ff.Limits()])
def test_a_bad_trace_option_is_named(bad: Any) -> None:
    with pytest.raises(ff.UsageError, match=r"trace=.*pass True, or ff.Tracing"):
        ff.run_sync(ff.map(str.upper), ["a"], trace=bad)


def test_a_bad_provider_is_named() -> None:
    with pytest.raises(
        ff.UsageError, match=r"Tracing\(tracer_provider='nope'\): pass an OpenTelemetry tracer provider"
    ):
        ff.Tracing(tracer_provider="nope")


def test_events_still_reach_callbacks_when_traced(otel: Otel) -> None:
    log = EventLog()
    ff.run_sync(ff.map(str.upper), ["a", "b"], trace=otel.tracing(), on_event=log)
    assert len(log.of_type(events.TaskSucceeded)) == 3


def test_an_unsampled_run_writes_no_span_but_still_records_metrics(otel: Otel) -> None:
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    exporter = InMemorySpanExporter()
    unsampled = TracerProvider(sampler=ALWAYS_OFF)
    unsampled.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = ff.Tracing(tracer_provider=unsampled, meter_provider=otel.meter_provider)
    ff.run_sync(ff.map(ff.llm(answering("ok"))), ["a", "b"], trace=tracing)
    assert exporter.get_finished_spans() == ()
    tokens = {p.attributes["gen_ai.token.type"]: p.sum for p in otel.metrics()["gen_ai.client.token.usage"]}
    assert tokens == {"input": 200, "output": 20}


def test_a_wait_for_admission_is_a_span_event(otel: Otel, clock: VirtualClock) -> None:
    async def slow(x: int) -> int:
        await asyncio.sleep(2)
        return x

    # A window of 2 pulls both inputs at once; one slot admits them one after the other.
    limits = ff.Limits(concurrency=1, window=2)
    ff.run_sync(ff.map(slow), [0, 1], trace=otel.tracing(), limits=limits)
    waits = {}
    for path, span in otel.by_path().items():
        for event in span.events:
            if event.name == "fanfold.admitted" and event.attributes is not None:
                waits[path] = event.attributes["fanfold.waited"]
    assert list(waits) == ["map[1]"]
    assert waits["map[1]"] == pytest.approx(2.0, abs=0.01)


# -- chat spans: the model that answered, and content only when asked ---------------------------


def _chat_spans(otel: Otel, content: bool) -> list[ReadableSpan]:
    async def main() -> ff.Result[Any]:
        async with SimulatedProvider(answer=echo, latency=Latency.fixed(0.01)) as sim:
            model = ff.llm("openai-chat:sim-1", base_url=sim.openai_base_url, api_key=CANARY,
                           instructions="Answer in one line.")  # fmt: skip
            return await ff.run(ff.map(model), [f"the secret plan, key={CANARY}"], trace=otel.tracing(content=content))

    assert asyncio.run(main()).complete
    return otel.named("chat ")


def test_chat_spans_say_which_model_answered_and_hold_no_content_unless_asked(otel: Otel) -> None:
    (chat,) = _chat_spans(otel, content=False)
    assert chat.attributes is not None
    assert chat.attributes["gen_ai.request.model"] == "sim-1"
    assert chat.attributes["gen_ai.response.model"] == "sim-1"  # from the provider's answer
    assert "gen_ai.input.messages" not in chat.attributes
    assert "gen_ai.output.messages" not in chat.attributes
    written = otel.everything_written()
    assert "secret plan" not in written
    assert "echo:" not in written
    assert CANARY not in written


def test_chat_spans_hold_the_prompt_and_the_answer_when_asked_redacted(otel: Otel) -> None:
    (chat,) = _chat_spans(otel, content=True)
    assert chat.attributes is not None
    sent = json.loads(str(chat.attributes["gen_ai.input.messages"]))
    assert [m["role"] for m in sent] == ["user"]
    assert sent[0]["parts"][0] == {"type": "text", "content": "the secret plan, key=***"}
    (instructions,) = json.loads(str(chat.attributes["gen_ai.system_instructions"]))
    assert instructions == {"type": "text", "content": "Answer in one line."}
    (answer,) = json.loads(str(chat.attributes["gen_ai.output.messages"]))
    assert answer["role"] == "assistant"
    assert answer["finish_reason"]
    assert answer["parts"][0]["type"] == "text"
    assert answer["parts"][0]["content"].startswith("echo: the secret plan")
    assert CANARY not in otel.everything_written()
