"""The run object (everything that changes during a run) and the per-task context.

Specs are frozen and shared; a :class:`RunState` holds one run's limiter, defaults, event bus,
counters and channels; a :class:`Context` is one task's view of it: its path in the tree, its
attempt, its deadline and its branch-local state.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from fanfold._errors import UsageError
from fanfold._events import EventBus
from fanfold._limits import Limits, open_limiter
from fanfold._outcome import Outcome, empty_counts
from fanfold._usage import Usage

if TYPE_CHECKING:
    from fanfold._journal import Journal
    from fanfold._options import Settings

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Channel(Generic[T]):
    """Shared state with a merge rule, the one sanctioned way for branches to share data.

    >>> seen = ff.Channel("seen", merge=lambda total, n: total + n, initial=0)
    >>> def count(x, ctx):
    ...     ctx.publish(seen, x)      # from any task of the run
    ...     return x
    >>> ff.run_sync(ff.map(count), [1, 2, 3]).channels
    {'seen': 6}
    """

    name: str
    merge: Callable[[T, T], T]
    initial: T

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise UsageError(f"Channel(name={self.name!r}) needs a name; pass a non-empty string")


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
        self.channels: dict[str, Any] = {}
        self.channel_lock = threading.Lock()  # sync agents publish from worker threads
        self.root_sink = OutcomeSink(keep=options.keep, stream_size=2 * self.window)
        self.ledger = limiter.begin_run(options.budget)
        # Per-run services that agents set up on first use (HTTP clients, models), keyed by
        # their owner, and closed when the run ends.
        self.services: dict[object, Any] = {}
        self.cleanups: list[Callable[[], Any]] = [limiter.end_run]  # closed last: the services' calls settle first
        self.journal: Journal | None = None  # set when the run has a store
        self._executor: ThreadPoolExecutor | None = None

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
        """Close the per-run services, newest first."""
        while self.cleanups:
            result = self.cleanups.pop()()
            if asyncio.iscoroutine(result):
                await result

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
            ctx.state      # branch-local dict: copied from the parent, never shared with siblings
    """

    __slots__ = ("_path", "_state", "attempt", "index", "kind", "label", "parent", "run_state", "start", "usage")

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
            self._state = dict(self.parent.state) if self.parent is not None else {}
        return self._state

    def charge(self, usage: Usage) -> None:
        """Add a model call's usage to this task and every task above it."""
        ctx: Context | None = self
        while ctx is not None:
            ctx.usage = usage if ctx.usage is None else ctx.usage + usage
            ctx = ctx.parent

    def publish(self, channel: Channel[T], value: T) -> None:
        """Merge ``value`` into the run's shared ``channel``."""
        channels = self.run_state.channels
        with self.run_state.channel_lock:
            current = channels.get(channel.name, channel.initial)
            channels[channel.name] = channel.merge(current, value)

    def read(self, channel: Channel[T]) -> T:
        """The channel's merged value so far."""
        value: T = self.run_state.channels.get(channel.name, channel.initial)
        return value

    def __repr__(self) -> str:
        return f"Context(run_id={self.run_id!r}, path={self.path!r}, attempt={self.attempt})"
