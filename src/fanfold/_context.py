"""The run object (everything that changes during a run) and the per-task context.

Specs are frozen and shared; a :class:`RunState` holds one run's limiter, defaults, event bus,
counters and channels; a :class:`Context` is one task's view of it: its path in the tree, its
attempt, its deadline and its branch-local state.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import functools
import time
import uuid
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from fanfold._backend import open_backend
from fanfold._errors import UsageError
from fanfold._events import AgentEvent, EventBus, agent_event
from fanfold._limits import Limits, open_limiter
from fanfold._outcome import Call, Outcome, empty_counts
from fanfold._usage import Usage

if TYPE_CHECKING:
    from fanfold._journal import Journal
    from fanfold._options import Settings
    from fanfold._tracing import TaskTracer

T = TypeVar("T")
R = TypeVar("R")

# The kinds of child task whose state, when they succeed, becomes their parent's: the steps of a
# sequence, so that each step starts from the state the one before it left.
_STATE_FLOWS = frozenset({"sequence"})


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Channel(Generic[T]):
    """Shared state with a merge rule, the one sanctioned way for branches to share data.

    >>> seen = ff.Channel("seen", merge=lambda total, n: total + n, initial=0)
    >>> def count(x, ctx):
    ...     ctx.publish(seen, x)      # from any task of the run
    ...     return x
    >>> ff.run_sync(ff.map(count), [1, 2, 3]).channels
    {'seen': 6}

    A publish counts once the task that made it succeeds: the publishes of an attempt that
    fails (and is retried) or of a task that ends any other way are dropped. A channel is the
    run's (``Result.channels``) unless a pattern around the publisher declares it with
    ``ff.scope(spec, channels=[...])``: then the publishes merge within that subtree, and reads
    inside it see only them. The name identifies the channel in a run's journal: a resumed run
    replays the journaled publishes through the channel of that name.
    """

    name: str
    merge: Callable[[T, T], T]
    initial: T

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise UsageError(f"Channel(name={self.name!r}) needs a name; pass a non-empty string")
        alive = [ref for ref in _CHANNELS.get(self.name, ()) if ref() is not None]
        _CHANNELS[self.name] = [*alive, weakref.ref(self)]


# The channels alive, by name, for a resumed run to replay journaled publishes of a channel no
# live task has used yet (the journal keeps names and values; merge rules are code).
_CHANNELS: dict[str, list[weakref.ref[Channel[Any]]]] = {}


def _channel_named(name: str) -> Channel[Any] | None:
    """The newest channel of that name still alive."""
    for ref in reversed(_CHANNELS.get(name, [])):
        channel: Channel[Any] | None = ref()
        if channel is not None:
            return channel
    return None


class _Cell:
    """A channel's merged value where it is declared: at a scope's task, or the run's."""

    __slots__ = ("channel", "value")

    def __init__(self, channel: Channel[Any]) -> None:
        self.channel = channel
        self.value = channel.initial


class OutcomeSink:
    """Where the run's top fan-out reports: counts for the summary, the kept outcomes, and an
    optional bounded stream for ``as_completed`` consumers (workers pause while it is full)."""

    def __init__(self, *, keep: bool, stream_size: int) -> None:
        self.keep = keep
        self.counts = empty_counts()
        self.resumed = 0
        self.fed = False
        self.outcomes: list[Outcome[Any]] = []
        self._stream: deque[Outcome[Any]] | None = None
        self._stream_size = stream_size
        self._changed = asyncio.Event()
        self._closed = False

    def open_stream(self) -> None:
        if self._stream is None:
            self._stream = deque()

    def put(self, outcome: Outcome[Any]) -> None:
        self.fed = True
        self.counts[outcome.status] += 1
        if outcome.resumed:
            self.resumed += 1
        if self._stream is not None:
            self._stream.append(outcome)
            self._changed.set()

    def full(self) -> bool:
        return self._stream is not None and len(self._stream) >= self._stream_size

    async def room(self) -> None:
        while self.full() and not self._closed:
            self._changed.clear()
            await self._changed.wait()

    def close(self) -> None:
        self._closed = True
        self._changed.set()

    async def stream(self) -> AsyncIterator[Outcome[Any]]:
        self.open_stream()
        queue = self._stream
        assert queue is not None
        while True:
            while queue:
                outcome = queue.popleft()
                self._changed.set()  # wake workers waiting for room
                yield outcome
            if self._closed:
                return
            self._changed.clear()
            await self._changed.wait()


class RunState:
    """Everything that changes during one run. Created by ``ff.run`` / ``ff.start``."""

    def __init__(self, options: Settings, bus: EventBus) -> None:
        loop = asyncio.get_running_loop()
        self.run_id = options.resume or options.run_id or uuid.uuid4().hex[:12]
        self.limits = limits = options.limits or Limits()
        self.limiter = limiter = open_limiter(options.limiter, limits)
        self.retry = options.retry
        self.timeouts = options.timeouts
        self.bus = bus
        self.clock = loop.time
        self.started = loop.time()
        self.started_wall = time.time()
        self.deadline = None if options.deadline is None else self.started + options.deadline
        self.window = limits.fanout_window
        self.busy = 0.0
        self.retries = 0
        self.tasks = 0
        self.leaf_calls = 0
        self.channels: dict[str, _Cell] = {}  # the run-scoped channels (not declared by an ff.scope)
        self.root_sink = OutcomeSink(keep=options.keep, stream_size=2 * self.window)
        self.ledger = limiter.begin_run(options.budget)
        # Per-run services that agents set up on first use (HTTP clients, models), keyed by
        # their owner, and closed when the run ends.
        self.services: dict[object, Any] = {}
        self.cleanups: list[Callable[[], Any]] = [limiter.end_run]  # closed last: the services' calls settle first
        self.journal: Journal | None = None  # set when the run has a store
        self.tracer: TaskTracer | None = None  # set when the run is traced (ff.run(..., trace=...))
        self.loop = loop  # where agents in worker threads send their events (Context.emit)
        self._executor: ThreadPoolExecutor | None = None
        self.backend = open_backend(options.backend).for_run()  # where leaf work runs; starts on first use

    def now(self) -> float:
        """Seconds since the run started."""
        return self.clock() - self.started

    def deadline_passed(self) -> bool:
        return self.deadline is not None and self.clock() >= self.deadline

    async def to_thread(self, fn: Callable[..., R], *args: Any) -> R:
        """Run a sync function in the run's bounded thread pool, keeping context variables."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.limits.thread_count, thread_name_prefix="fanfold")
        call = functools.partial(contextvars.copy_context().run, fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def aclose(self) -> None:
        """Close the per-run services, newest first, then the backend."""
        while self.cleanups:
            result = self.cleanups.pop()()
            if asyncio.iscoroutine(result):
                await result
        await self.backend.aclose()

    def close(self) -> None:
        if self._executor is not None:
            # Threads cannot be interrupted; a cancelled sync agent finishes in the background.
            self._executor.shutdown(wait=False, cancel_futures=True)


class Context:
    """One task's view of its run.

    Agents that take a second parameter receive it::

        @ff.agent
        async def grade(essay, ctx):
            ctx.path       # 'map[17]/vote[2]'
            ctx.attempt    # 1, 2, ... on retries
            ctx.time_left  # seconds before the run's deadline, or None
            ctx.state      # branch-local dict: a deep copy of the parent's, never shared with siblings

    ``ctx.state`` is copied (``copy.deepcopy``) from the parent's on its first use in a task, so
    its cost is the size of the state, paid once per task that touches it, and its values must
    be deep-copyable (keep clients and locks out of it). A branch's changes never reach a sibling
    or the parent, with one exception: a step of ``ff.sequence`` that succeeds hands its state
    to the next step. Anything else branches share goes through a :class:`Channel`.
    """

    __slots__ = (
        "_declared",
        "_path",
        "_pending",
        "_state",
        "attempt",
        "calls",
        "index",
        "kind",
        "label",
        "parent",
        "published",
        "retries",
        "run_state",
        "start",
        "usage",
    )

    def __init__(self, state: RunState, parent: Context | None, kind: str, label: object, index: int) -> None:
        self.run_state = state
        self.parent = parent
        self.kind = kind
        self.label = label
        self.index = index
        self.attempt = 1
        self.start: float | None = None  # seconds since the run began; for a leaf, when admitted
        self._path: str | None = None
        self._state: dict[str, Any] | None = None
        self.usage: Usage | None = None  # what this task's model calls spent, its children's included
        self.retries = 0  # retries of the leaf calls under this task, its own included
        self.calls: list[Call] | None = None  # this task's own timed leaf calls (its model requests)
        self._declared: dict[str, _Cell] | None = None  # channels an ff.scope declares at this task
        self._pending: tuple[int, list[tuple[Channel[Any], Any]]] | None = None  # (attempt, publishes)
        # What this task and its subtree committed to channels declared above it, as (name,
        # value): journaled with its outcome so that a resumed run replays it. Kept with a store only.
        self.published: list[tuple[str, Any]] | None = None

    def child(self, kind: str, index: int, label: object = None) -> Context:
        return Context(self.run_state, self, kind, index if label is None else label, index)

    @property
    def run_id(self) -> str:
        return self.run_state.run_id

    @property
    def path(self) -> str:
        path = self._path
        if path is None:
            segment = f"{self.kind}[{self.label}]" if self.kind else ""
            above = self.parent.path if self.parent is not None else ""
            path = self._path = f"{above}/{segment}" if above and segment else above or segment
        return path

    @property
    def time_left(self) -> float | None:
        deadline = self.run_state.deadline
        return None if deadline is None else max(0.0, deadline - self.run_state.clock())

    @property
    def state(self) -> dict[str, Any]:
        if self._state is None:
            self._state = copy.deepcopy(self.parent.state) if self.parent is not None else {}
        return self._state

    def charge(self, usage: Usage) -> None:
        """Add a model call's usage to this task and every task above it."""
        ctx: Context | None = self
        while ctx is not None:
            ctx.usage = usage if ctx.usage is None else ctx.usage + usage
            ctx = ctx.parent

    def called(self, call: Call) -> None:
        """Note one of this task's leaf calls (an attempt of a model request), for its outcome."""
        if self.calls is None:
            self.calls = []
        self.calls.append(call)

    def retried(self) -> None:
        """Count a retry of a leaf call in this task and every task above it (an LLM agent's
        row sees the retries of its model requests)."""
        ctx: Context | None = self
        while ctx is not None:
            ctx.retries += 1
            ctx = ctx.parent

    def publish(self, channel: Channel[T], value: T) -> None:
        """Publish ``value`` to ``channel``: it is merged in once this attempt of the task
        succeeds (a failed or retried attempt's publishes are dropped)."""
        if not isinstance(channel, Channel):
            raise UsageError(f"ctx.publish({channel!r}, ...): pass an ff.Channel(name, merge=..., initial=...)")
        pending = self._pending
        if pending is None or pending[0] != self.attempt:  # the first publish of this attempt
            pending = self._pending = (self.attempt, [])
        pending[1].append((channel, value))  # one list per task: safe from a sync agent's thread

    def read(self, channel: Channel[T]) -> T:
        """The channel's merged value so far, where it is declared (the nearest ``ff.scope``
        around this task that declares it, else the run), with this attempt's own publishes."""
        value: T = self._cell(channel.name, channel).value
        pending = self._pending
        if pending is not None and pending[0] == self.attempt:
            for published, v in pending[1]:
                if published.name == channel.name:
                    value = channel.merge(value, v)
        return value

    def declare(self, channels: Iterable[Channel[Any]]) -> None:
        """Scope ``channels`` to this task's subtree (what ``ff.scope`` does)."""
        self._declared = {c.name: _Cell(c) for c in channels}

    def commit(self) -> None:
        """The task succeeded: merge its attempt's publishes where their channels are declared,
        and hand the task's state to the next step when it is a step of a sequence."""
        pending = self._pending
        self._pending = None
        if pending is not None and pending[0] == self.attempt:
            for channel, value in pending[1]:
                self._land(channel.name, channel, value)
        parent = self.parent
        if self.kind in _STATE_FLOWS and self._state is not None and parent is not None:
            parent._state = self._state

    def replay(self, published: list[tuple[str, Any]]) -> None:
        """A journaled task's publishes, restored on resume: merge them again."""
        for name, value in published:
            self._land(name, None, value)

    def _land(self, name: str, channel: Channel[Any] | None, value: Any) -> None:
        cell = self._cell(name, channel)
        cell.value = cell.channel.merge(cell.value, value)
        if self.run_state.journal is None:
            return
        # Journaled upwards, to the task that declares the channel (or the run's top).
        if self.published is None:
            self.published = []
        self.published.append((name, value))

    def hand_up(self) -> None:
        """The task has its outcome: what it published counts for its parent's subtree too,
        unless the parent is where those channels are declared."""
        published, parent = self.published, self.parent
        if not published or parent is None or parent.parent is None:
            return
        declared = parent._declared or {}
        kept = [(name, value) for name, value in published if name not in declared]
        if kept:
            if parent.published is None:
                parent.published = []
            parent.published += kept

    def _cell(self, name: str, channel: Channel[Any] | None) -> _Cell:
        ctx: Context | None = self
        while ctx is not None:
            declared = ctx._declared
            if declared is not None and name in declared:
                return declared[name]
            ctx = ctx.parent
        cells = self.run_state.channels
        cell = cells.get(name)
        if cell is None:
            known = channel if channel is not None else _channel_named(name)
            if known is None:
                raise UsageError(
                    f"channel {name!r}: a resumed run replays its journaled publishes, and no ff.Channel of that "
                    "name exists in this process; create the channel (as the original run did) before resuming"
                )
            cell = cells[name] = _Cell(known)
        return cell

    def emit(self, event: str | AgentEvent, /, **data: Any) -> None:
        """Report an event of the agent's own (a tool call, a partial result, a streamed token),
        with this task's path and attempt, to the run's ``on_event`` callbacks, ``run.events()``
        and its trace (an event on the task's span)::

            ctx.emit("tool_call", tool="search", query=query)

        ``data`` is JSON data (strings, numbers, booleans, None, lists and dicts of them); its
        strings are redacted. An :class:`~fanfold.events.AgentEvent` (or a subclass of it) may
        be passed instead of a name: it is sent with this task's run id, path, time and attempt.
        Works from sync agents in worker threads too.
        """
        state = self.run_state
        made = agent_event(event, data, state.run_id, self.path, state.now(), self.attempt)
        bus = state.bus
        if bus.active:
            if asyncio._get_running_loop() is state.loop:
                bus.emit(made)
            else:  # a sync agent in a worker thread: the bus belongs to the run's loop
                state.loop.call_soon_threadsafe(bus.emit, made)

    def __repr__(self) -> str:
        return f"Context(run_id={self.run_id!r}, path={self.path!r}, attempt={self.attempt})"
