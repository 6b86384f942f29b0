"""Typed events, delivered to callbacks and to async iterators.

Every event carries the run id, the task's path in the tree (``map[17]/vote[2]``) and ``at``, the
seconds since the run started (``RunStarted.started_at`` gives the wall-clock start). Events come
in the order things happen.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from fanfold._errors import UsageError
from fanfold._outcome import ErrorInfo, Outcome, Status, Summary
from fanfold._redact import redact, redact_data
from fanfold._usage import Usage


@dataclass(frozen=True, slots=True)
class Event:
    run_id: str
    path: str
    at: float


@dataclass(frozen=True, slots=True)
class RunStarted(Event):
    """``started_at`` is the wall-clock time (seconds since the epoch) that every ``at`` counts from."""

    started_at: float


@dataclass(frozen=True, slots=True)
class RunFinished(Event):
    status: str
    summary: Summary


@dataclass(frozen=True, slots=True)
class FanoutStarted(Event):
    """A fan-out began; its inputs' paths are ``{path}/{kind}[i]``. ``total`` is ``None`` for
    inputs of unknown length; ``top`` is True for the fan-out whose outcomes are the run's."""

    kind: str
    total: int | None
    top: bool


@dataclass(frozen=True, slots=True)
class TaskQueued(Event):
    index: int


@dataclass(frozen=True, slots=True)
class TaskStarted(Event):
    index: int


@dataclass(frozen=True, slots=True)
class TaskRetrying(Event):
    attempt: int
    delay: float
    error: ErrorInfo


@dataclass(frozen=True, slots=True)
class ModelCalled(Event):
    """One model request ended (one attempt). ``resource`` names the provider resource;
    ``status`` is ``"ok"``, the HTTP status (``"429"``) or the error's type; ``usage`` is what
    it spent; ``seconds`` how long it held its admission (so it was admitted at ``at - seconds``).
    ``model`` is the model asked for, ``response_model`` the one the provider says answered
    (``None`` without an answer); ``hedge`` is True for a hedge's backup request. ``messages``
    and ``answer`` (pydantic-ai's request messages and response) are set only in a run traced
    with ``ff.Tracing(content=True)``."""

    resource: str
    attempt: int
    status: str
    usage: Usage
    seconds: float
    model: str = ""
    response_model: str | None = None
    hedge: bool = False
    messages: Any = field(default=None, repr=False, compare=False)
    answer: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Throttled(Event):
    """The provider answered a request with a 429 (or an overload): admission to ``resource``
    pauses for ``pause`` seconds, then resumes gradually. ``limits`` is what is known of its
    limits now (per minute, and the concurrency cap)."""

    resource: str
    status: int
    pause: float
    limits: dict[str, float]


@dataclass(frozen=True, slots=True)
class TaskFinished(Event):
    """Base of the five terminal task events; ``outcome`` says everything about the task."""

    outcome: Outcome[Any]


@dataclass(frozen=True, slots=True)
class TaskSucceeded(TaskFinished):
    pass


@dataclass(frozen=True, slots=True)
class TaskFailed(TaskFinished):
    pass


@dataclass(frozen=True, slots=True)
class TaskTimedOut(TaskFinished):
    pass


@dataclass(frozen=True, slots=True)
class TaskCancelled(TaskFinished):
    pass


@dataclass(frozen=True, slots=True)
class TaskSkipped(TaskFinished):
    pass


@dataclass(frozen=True, slots=True)
class AgentEvent(Event):
    """An agent's own report, sent with ``ctx.emit(name, **data)``: a tool call, a partial
    result, a streamed token. ``data`` is JSON data, its strings redacted; ``attempt`` is the
    task's attempt when it was sent. Subclass it for typed events of your own."""

    name: str
    data: dict[str, Any]
    attempt: int = 1


def agent_event(
    event: str | AgentEvent, data: dict[str, Any], run_id: str, path: str, at: float, attempt: int
) -> AgentEvent:
    """The event ``ctx.emit(event, **data)`` sends: checked (a name, JSON data), redacted, and
    stamped with the task's run id, path, time and attempt."""
    if isinstance(event, AgentEvent):
        name, data = event.name, {**event.data, **data}
    elif isinstance(event, str) and event:
        name = event
    else:
        raise UsageError(f"ctx.emit({event!r}): pass the event's name (a non-empty string), or an AgentEvent")
    try:
        json.dumps(data)
    except (TypeError, ValueError) as exc:
        bad = next((k for k, v in data.items() if not _is_json(v)), None)
        where = f"{bad}={data[bad]!r}" if bad is not None else repr(data)
        raise UsageError(
            f"ctx.emit({name!r}, ...): {where} is not JSON data ({exc}); "
            "pass strings, numbers, booleans, None, and lists and dicts of them"
        ) from None
    clean = redact_data(data)
    if isinstance(event, AgentEvent):
        made = dataclasses.replace(event, run_id=run_id, path=path, at=at)
        return dataclasses.replace(made, name=redact(name), data=clean, attempt=attempt)
    return AgentEvent(run_id, path, at, redact(name), clean, attempt)


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class HedgeStarted(Event):
    """A leaf call was still running ``after`` seconds from its admission: a backup call of it
    was sent (its hedge key: the call's resources, or its agent)."""

    resource: str
    after: float


@dataclass(frozen=True, slots=True)
class HedgeWon(Event):
    """A backup call answered first; the call it hedged was cancelled (and counted)."""

    resource: str


FINISHED_EVENT: dict[Status, type[TaskFinished]] = {
    Status.SUCCEEDED: TaskSucceeded,
    Status.FAILED: TaskFailed,
    Status.TIMED_OUT: TaskTimedOut,
    Status.CANCELLED: TaskCancelled,
    Status.SKIPPED: TaskSkipped,
}

Callback = Callable[[Event], object]


class EventBus:
    """Fans each event out to callbacks and iterators. ``active`` is False when nobody listens,
    so the runtime skips building events altogether; ``tasks`` is False when nobody listens to
    every task's ``TaskQueued`` and ``Task*`` ending (a run's tracer does not: it sees the task
    itself), so a traced run does not build two events per task for nobody."""

    __slots__ = ("_callbacks", "_streams", "_untasked", "active", "broken", "tasks")

    def __init__(self, callbacks: list[Callback] | None = None) -> None:
        self._callbacks: list[Callback] = list(callbacks or [])
        self._streams: list[_Stream] = []
        self._untasked: list[Callback] = []  # callbacks that want no task queued/ended events
        self.active = self.tasks = bool(self._callbacks)
        # A callback that raised: it is dropped so the run goes on, and the run reports it at the end.
        self.broken: tuple[Callback, Exception] | None = None

    def subscribe(self, callback: Callback, *, tasks: bool = True) -> None:
        """Send ``callback`` every event (``tasks=False``: it may miss the task queued and ended ones)."""
        self._callbacks.append(callback)
        if not tasks:
            self._untasked.append(callback)
        self._listened()

    def _listened(self) -> None:
        self.active = bool(self._callbacks or self._streams)
        self.tasks = bool(self._streams) or any(c not in self._untasked for c in self._callbacks)

    def emit(self, event: Event) -> None:
        for callback in self._callbacks:
            try:
                callback(event)
            except Exception as exc:
                self._drop(callback, exc)
        for stream in self._streams:
            stream.put(event)

    def _drop(self, callback: Callback, exc: Exception) -> None:
        self._callbacks = [c for c in self._callbacks if c is not callback]
        self._listened()
        if self.broken is None:
            self.broken = (callback, exc)

    def stream(self) -> AsyncIterator[Event]:
        stream = _Stream()
        self._streams.append(stream)
        self.active = self.tasks = True
        return stream.iterate()

    def close(self) -> None:
        for stream in self._streams:
            stream.close()


class _Stream:
    """An unbounded buffer for one async consumer; closing it ends the iteration."""

    def __init__(self) -> None:
        self._items: deque[Event] = deque()
        self._ready = asyncio.Event()
        self._closed = False

    def put(self, event: Event) -> None:
        self._items.append(event)
        self._ready.set()

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    async def iterate(self) -> AsyncIterator[Event]:
        while True:
            while self._items:
                yield self._items.popleft()
            if self._closed:
                return
            self._ready.clear()
            await self._ready.wait()
