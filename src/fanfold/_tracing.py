"""Tracing a run with OpenTelemetry: the ``trace`` option, and the hook the core calls.

``ff.run(spec, inputs, trace=True)`` (or ``trace=ff.Tracing(content=True)``) makes the run
an ``invoke_workflow`` span, each task an ``invoke_agent`` span that is the current span while
the task runs, and each model request a ``chat`` span under its task (the GenAI semantic
conventions). The core never imports opentelemetry: the tracer is the ``_observe`` wing, loaded
by name when a run asks for it. A run without ``trace`` pays one attribute check per task.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Coroutine, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from fanfold._errors import UsageError

if TYPE_CHECKING:
    from fanfold._context import Context, RunState
    from fanfold._outcome import Outcome

    Report = Callable[[Outcome[Any]], None]
    Body = Callable[..., Coroutine[Any, Any, Outcome[Any]]]

_WING = "fanfold._observe._otel"


@dataclass(frozen=True, slots=True, kw_only=True)
class Tracing:
    """How a run is traced (``ff.run(..., trace=ff.Tracing(...))``; ``trace=True`` is ``Tracing()``).

    - ``content``: record inputs, outputs and the data of ``ctx.emit`` events on the spans
      (``gen_ai.input.messages``, ``gen_ai.output.messages``), redacted. Off by default: traces
      often leave the company, prompts and answers should not unless asked;
    - ``tracer_provider``, ``meter_provider``: where spans and metrics go (default: the global
      providers OpenTelemetry was configured with, e.g. by ``opentelemetry-instrument``).

    >>> ff.Tracing(content=True)
    Tracing(content=True, tracer_provider=None, meter_provider=None)
    """

    content: bool = False
    tracer_provider: Any = None
    meter_provider: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.content, bool):
            raise UsageError(f"Tracing(content={self.content!r}): pass True or False")
        for name in ("tracer_provider", "meter_provider"):
            provider = getattr(self, name)
            method = "get_tracer" if name == "tracer_provider" else "get_meter"
            if provider is not None and not callable(getattr(provider, method, None)):
                raise UsageError(
                    f"Tracing({name}={provider!r}): pass an OpenTelemetry {name.replace('_', ' ')} "
                    f"(with a {method}() method), or leave it out to use the global one"
                )


class TaskTracer(Protocol):
    """What the core asks of a run's tracer: run one task's body (``_task._execute``) inside
    the task's span, the span current while it runs. ``content``: whether prompts and answers go
    on its spans (the model requests then hand them over with their events)."""

    content: bool

    def execute(
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
    ) -> Coroutine[Any, Any, Outcome[Any]]: ...


def as_tracing(trace: bool | Tracing | None) -> Tracing | None:
    """The ``trace`` option as a :class:`Tracing` (or None: no tracing); names a bad value."""
    if trace is None or trace is False:
        return None
    if trace is True:
        return Tracing()
    if isinstance(trace, Tracing):
        return trace
    raise UsageError(f"trace={trace!r}: pass True, or ff.Tracing(content=..., tracer_provider=...)")


def open_tracer(tracing: Tracing, state: RunState) -> TaskTracer:
    """The run's tracer, from the ``_observe`` wing (which needs opentelemetry-api)."""
    try:
        wing = importlib.import_module(_WING)
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("opentelemetry"):
            raise
        raise UsageError(
            f"trace=...: tracing needs OpenTelemetry ({exc.name} is not installed); pip install 'fanfold[otel]'"
        ) from exc
    tracer: TaskTracer = wing.RunTracer(tracing, state)
    return tracer
