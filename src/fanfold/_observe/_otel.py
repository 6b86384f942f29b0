"""A run's OpenTelemetry traces and metrics, after the GenAI semantic conventions.

The spans of a run (GenAI conventions as of semantic-conventions v1.41, the names of the
Python package ``opentelemetry-semantic-conventions`` 0.65b0; plain strings here, so only the
API is needed)::

    invoke_workflow {root}            the run (gen_ai.operation.name=invoke_workflow)
      invoke_agent {agent}            each task: fanfold.path, .index, .key, .attempts, .status, .reason
        chat {model}                  each model request (one attempt): gen_ai.provider.name,
                                      gen_ai.request.model, gen_ai.response.model (the model
                                      the provider says answered), gen_ai.usage.*, error.type

A task's span is the current span while the task runs (its children's tasks copy it when they
are created, worker threads through ``RunState.to_thread``), so an agent's own spans and
pydantic-ai's instrumentation nest under it. What the run reports as events becomes span events
on the task's span: ``fanfold.admitted`` (with the wait for admission, if it waited 1 ms or more), ``fanfold.retry``,
``fanfold.throttled``, ``fanfold.fanout``, and the agents' own ``ctx.emit`` events.

Token counts: ``gen_ai.usage.*`` only on the model-request spans, one per request, so a backend
that sums them over a trace counts each token once; task and workflow spans carry their totals
as ``fanfold.usage.*``. Content only with ``Tracing(content=True)``, redacted: each model
request's prompt and answer on its ``chat`` span (``gen_ai.system_instructions``,
``gen_ai.input.messages``, ``gen_ai.output.messages``, as the convention's JSON messages), a
task's input and output on its
``invoke_agent`` span, the data of agents' events on theirs.
"""

from __future__ import annotations

import json
import time
import weakref
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import Span, SpanKind, StatusCode

from fanfold._agent import agent_name
from fanfold._context import Context, RunState
from fanfold._events import AgentEvent, Event, FanoutStarted, ModelCalled, TaskRetrying, Throttled
from fanfold._outcome import Outcome, Status
from fanfold._redact import redact
from fanfold._tracing import Tracing

if TYPE_CHECKING:
    from fanfold._tracing import Body, Report

SCHEMA_URL = "https://opentelemetry.io/schemas/1.41.0"

OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
AGENT_NAME = "gen_ai.agent.name"
WORKFLOW_NAME = "gen_ai.workflow.name"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
TOKEN_TYPE = "gen_ai.token.type"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
ERROR_TYPE = "error.type"

# pydantic-ai's provider names -> the convention's gen_ai.provider.name values (others as they are).
PROVIDERS = {
    "openai-chat": "openai",
    "openai-responses": "openai",
    "google-gla": "gcp.gemini",
    "google-vertex": "gcp.vertex_ai",
    "bedrock": "aws.bedrock",
    "mistral": "mistral_ai",
    "grok": "x_ai",
    "xai": "x_ai",
}
# A task's wait for admission (or its stagger) shorter than this is no span event.
ADMISSION_WAIT = 0.001
# Advisory buckets from the GenAI metrics conventions.
TOKEN_BUCKETS = [4**i for i in range(14)]
DURATION_BUCKETS = [0.01 * 2**i for i in range(14)]


class _Live:
    """A task's span while the task runs, and what the span learns on the way."""

    __slots__ = ("model", "provider", "queued", "span")

    def __init__(self, span: Span, queued: float) -> None:
        self.span = span
        self.queued = queued  # seconds since the run began
        self.provider: str | None = None  # of the task's own model requests
        self.model: str | None = None


class _Instruments:
    """The GenAI client metrics, made once per meter provider."""

    def __init__(self, meter_provider: metrics.MeterProvider) -> None:
        meter = meter_provider.get_meter("fanfold", schema_url=SCHEMA_URL)
        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )


_INSTRUMENTS: weakref.WeakKeyDictionary[Any, _Instruments] = weakref.WeakKeyDictionary()


def _instruments(meter_provider: metrics.MeterProvider) -> _Instruments:
    made = _INSTRUMENTS.get(meter_provider)
    if made is None:
        made = _INSTRUMENTS[meter_provider] = _Instruments(meter_provider)
    return made


def _is_no_op(meter_provider: Any) -> bool:
    """Whether metrics would go nowhere: no SDK's meter provider (the API's no-op one, or its
    global proxy while no SDK is configured)."""
    return (
        isinstance(meter_provider, metrics.NoOpMeterProvider) or type(meter_provider).__name__ == "_ProxyMeterProvider"
    )


class RunTracer:
    """One run's tracer: the core calls :meth:`execute` for every task (``state.tracer``), and
    the run's event bus hands it every event."""

    def __init__(self, tracing: Tracing, state: RunState) -> None:
        tracer_provider = tracing.tracer_provider or trace.get_tracer_provider()
        self._tracer = tracer_provider.get_tracer("fanfold", schema_url=SCHEMA_URL)
        meter_provider = tracing.meter_provider or metrics.get_meter_provider()
        self._metrics = None if _is_no_op(meter_provider) else _instruments(meter_provider)
        self._content = self.content = tracing.content
        self._state = state
        self._recording = False  # whether the run's trace is recorded (known once its span begins)
        self._listening = False
        self._live: dict[str, _Live] = {}
        self._models: dict[str, tuple[str, str]] = {}
        self._handlers: dict[type[Event], Callable[[Any], None]] = {
            ModelCalled: self._model_called,
            TaskRetrying: self._retrying,
            Throttled: self._throttled,
            FanoutStarted: self._fanout,
        }

    def _listen(self) -> None:
        """Hear the run's events (model requests, retries, 429s, agents' own events)."""
        if not self._listening:
            self._listening = True
            # Not the task queued/started/ended events: it sees each task itself (execute), and
            # two or three events built per task for nobody would cost more than its span's attributes.
            self._state.bus.subscribe(self.on_event, tasks=False)

    # -- tasks ---------------------------------------------------------------------------------

    async def execute(
        self,
        body: Body,
        agent: Any,
        value: Any,
        ctx: Context,
        report: Report,
        key: Hashable | None,
        timeout: float | None,
        delay: float,
        stop_reason: Callable[[], str | None],
    ) -> Outcome[Any]:
        """Run the task's body inside its span, the span current meanwhile."""
        span = self._start(agent, ctx, key)
        root = ctx.parent is None
        if not span.is_recording():  # not sampled, or no SDK: its children would not be either
            if root:  # the run's tasks take the untraced path; the metrics still need the events
                self._state.tracer = None
                if self._metrics is not None:
                    self._listen()
            return await body(agent, value, ctx, report, key, timeout, delay, stop_reason)
        if root:
            self._recording = True
            self._listen()
        path = ctx.path
        live = self._live[path] = _Live(span, self._state.now())
        if self._content:
            span.set_attribute(INPUT_MESSAGES, _messages("user", value))

        def reported(outcome: Outcome[Any]) -> None:
            self._ended(live, outcome)
            report(outcome)

        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            return await body(agent, value, ctx, reported, key, timeout, delay, stop_reason)
        finally:
            otel_context.detach(token)
            if self._live.get(path) is live:
                del self._live[path]
            span.end()

    def _start(self, agent: Any, ctx: Context, key: Hashable | None) -> Span:
        name = agent_name(agent)
        run_id = self._state.run_id
        if ctx.parent is None:  # the root task is the run
            attributes: dict[str, Any] = {OPERATION: "invoke_workflow", WORKFLOW_NAME: name, "fanfold.run_id": run_id}
            return self._tracer.start_span(f"invoke_workflow {name}", kind=SpanKind.INTERNAL, attributes=attributes)
        attributes = {  # the run id is on the workflow span: the SDK's cost is per attribute
            OPERATION: "invoke_agent",
            AGENT_NAME: name,
            "fanfold.path": ctx.path,
            "fanfold.index": ctx.index,
        }
        if key is not None:
            attributes["fanfold.key"] = redact(str(key))
        return self._tracer.start_span(f"invoke_agent {name}", kind=SpanKind.INTERNAL, attributes=attributes)

    def _ended(self, live: _Live, outcome: Outcome[Any]) -> None:
        span = live.span
        status = outcome.status
        attributes: dict[str, Any] = {"fanfold.status": status.value, "fanfold.attempts": outcome.attempts}
        if outcome.reason:
            attributes["fanfold.reason"] = redact(outcome.reason)
        if outcome.resumed:
            attributes["fanfold.resumed"] = True
        usage = outcome.usage
        if usage is not None:  # totals of the subtree; gen_ai.usage.* stays on the requests' spans
            attributes["fanfold.usage.requests"] = usage.requests
            attributes["fanfold.usage.input_tokens"] = usage.input_tokens
            attributes["fanfold.usage.output_tokens"] = usage.output_tokens
            if usage.cost:
                attributes["fanfold.usage.cost"] = usage.cost
        if live.provider is not None:
            attributes[PROVIDER] = live.provider
            attributes[REQUEST_MODEL] = live.model
        start = outcome.start
        # An event for every task would cost more than it says: only a wait of ADMISSION_WAIT or more.
        if start is not None and start - live.queued >= ADMISSION_WAIT:
            at = int((self._state.started_wall + start) * 1e9)
            span.add_event("fanfold.admitted", {"fanfold.waited": start - live.queued}, timestamp=at)
        error = outcome.error
        if status is Status.FAILED or status is Status.TIMED_OUT:
            attributes[ERROR_TYPE] = "timeout" if status is Status.TIMED_OUT else error.type if error else "error"
            span.set_status(StatusCode.ERROR, redact(str(error)) if error is not None else outcome.reason)
        elif status is Status.SUCCEEDED and self._content:
            attributes[OUTPUT_MESSAGES] = _messages("assistant", outcome.value)
        span.set_attributes(attributes)

    # -- events ---------------------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)
        elif isinstance(event, AgentEvent):
            self._agent_event(event)

    def _model_called(self, event: ModelCalled) -> None:
        """A model request (one attempt) ended: its span, ended now and begun when it was
        admitted, a child of the current span (events are sent inside the task's context)."""
        provider, model = self._model_of(event.resource)
        ok = event.status == "ok"
        attributes: dict[str, Any] = {
            OPERATION: "chat",
            PROVIDER: provider,
            REQUEST_MODEL: model,
            "fanfold.path": event.path,
            "fanfold.attempt": event.attempt,
            "fanfold.resource": event.resource,
        }
        common = {OPERATION: "chat", PROVIDER: provider, REQUEST_MODEL: model}
        if event.response_model:
            attributes[RESPONSE_MODEL] = event.response_model
        if ok:
            attributes[INPUT_TOKENS] = event.usage.input_tokens
            attributes[OUTPUT_TOKENS] = event.usage.output_tokens
        else:
            attributes[ERROR_TYPE] = common[ERROR_TYPE] = event.status
        instruments = self._metrics
        if instruments is not None:
            instruments.duration.record(event.seconds, common)
            if ok:
                instruments.tokens.record(event.usage.input_tokens, {**common, TOKEN_TYPE: "input"})
                instruments.tokens.record(event.usage.output_tokens, {**common, TOKEN_TYPE: "output"})
        if not self._recording:
            return
        if self._content:
            _chat_content(attributes, event)
        end = time.time_ns()
        span = self._tracer.start_span(
            f"chat {model}", kind=SpanKind.CLIENT, attributes=attributes, start_time=end - int(event.seconds * 1e9)
        )
        if not ok:
            span.set_status(StatusCode.ERROR, f"the model request ended with {event.status}")
        span.end(end_time=end)
        live = self._live.get(event.path)
        if live is not None and live.provider is None:
            live.provider, live.model = provider, model

    def _model_of(self, resource: str) -> tuple[str, str]:
        """The provider and model a resource names (``provider:model[@host][#key digest]``);
        a resource group named by the user names neither: it stands for both."""
        known = self._models.get(resource)
        if known is None:
            provider, colon, model = resource.partition(":")
            if not colon:
                provider = model = resource
            model = model.split("@", 1)[0].split("#", 1)[0]
            known = self._models[resource] = (PROVIDERS.get(provider, provider), model)
        return known

    def _retrying(self, event: TaskRetrying) -> None:
        live = self._live.get(event.path)
        if live is not None:
            attributes: dict[str, Any] = {
                "fanfold.attempt": event.attempt,
                "fanfold.delay": event.delay,
                ERROR_TYPE: event.error.type,
                "fanfold.error": redact(event.error.message),
            }
            live.span.add_event("fanfold.retry", attributes)

    def _throttled(self, event: Throttled) -> None:
        live = self._live.get(event.path)
        if live is not None:
            attributes: dict[str, Any] = {
                "fanfold.resource": event.resource,
                "http.response.status_code": event.status,
                "fanfold.pause": event.pause,
            }
            live.span.add_event("fanfold.throttled", attributes)

    def _fanout(self, event: FanoutStarted) -> None:
        live = self._live.get(event.path)
        if live is not None:
            attributes: dict[str, Any] = {"fanfold.kind": event.kind}
            if event.total is not None:
                attributes["fanfold.total"] = event.total
            live.span.add_event("fanfold.fanout", attributes)

    def _agent_event(self, event: AgentEvent) -> None:
        live = self._live.get(event.path)
        if live is not None:
            attributes: dict[str, Any] = {"fanfold.attempt": event.attempt}
            if self._content:
                attributes["fanfold.data"] = json.dumps(event.data)
            live.span.add_event(event.name, attributes)


def _chat_content(attributes: dict[str, Any], event: ModelCalled) -> None:
    """A model request's prompt and answer as the convention's messages (JSON strings), redacted,
    converted by pydantic-ai's instrumentation (the request's messages are pydantic-ai's)."""
    if event.messages is None and event.answer is None:
        return
    from pydantic_ai.models.instrumented import InstrumentationSettings  # loaded already: the request was its

    convert = _converter(InstrumentationSettings).messages_to_otel_messages
    messages = event.messages
    if messages is not None:
        attributes[INPUT_MESSAGES] = redact(json.dumps(convert(list(messages)), default=str))
        # pydantic-ai sends the agent's instructions beside the messages, not as one of them.
        instructions = next((m.instructions for m in reversed(messages) if getattr(m, "instructions", None)), None)
        if instructions:
            attributes[SYSTEM_INSTRUCTIONS] = redact(json.dumps([{"type": "text", "content": instructions}]))
    answer = event.answer
    if answer is not None:
        output = [{**message, "finish_reason": answer.finish_reason or "stop"} for message in convert([answer])]
        attributes[OUTPUT_MESSAGES] = redact(json.dumps(output, default=str))


_CONVERTER: list[Any] = []


def _converter(settings: Any) -> Any:
    """pydantic-ai's instrumentation settings, with content, kept away from the global providers."""
    if not _CONVERTER:
        no_spans, no_metrics = trace.NoOpTracerProvider(), metrics.NoOpMeterProvider()
        # include_content is on by default; binary parts (images, files) stay out of a trace.
        made = settings(tracer_provider=no_spans, meter_provider=no_metrics, include_binary_content=False)
        _CONVERTER.append(made)
    return _CONVERTER[0]


def _messages(role: str, value: Any) -> str:
    """``value`` as the convention's messages (one message of one text part), a JSON string
    (span attributes hold no nested structures), redacted."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": redact(text)}]}])
