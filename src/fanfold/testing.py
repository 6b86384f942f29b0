"""Test doubles for pipelines built on fanfold, the same ones fanfold's own tests use.

- :class:`EventLog`: an ``on_event`` callback that keeps every event, with helpers to query it.
- :class:`ConcurrencyProbe`: counts how many calls are inside it at once, overall and per
  resource, and remembers the peaks.
- :class:`Action` and :func:`act`: an agent whose input says what it should do (return a value,
  fail, hang until cancelled, yield to the loop a few times, fail its first attempts), so a
  test can script any mix of successes, failures, timeouts and cancellations.
- :class:`VirtualClock`: a fake clock under which sleeps, backoffs, timeouts and deadlines take
  no real time and happen in a deterministic order.
- :class:`SimulatedProvider`: a simulated LLM provider on a real loopback HTTP server, speaking
  OpenAI's and Anthropic's APIs with rate limits, latency, faults and deterministic answers.
"""

from __future__ import annotations

import asyncio
import selectors
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from fanfold import _exports
from fanfold._agent import agent
from fanfold._context import Context
from fanfold._errors import Skip
from fanfold._events import Event, TaskFinished, TaskStarted
from fanfold._outcome import Status

if TYPE_CHECKING:  # the simulated provider (aiohttp and all) loads on first use; see _LAZY
    from fanfold._backends._local_ray import LocalRayCluster
    from fanfold._sim import Faults, Latency, RampLimit, Reply, SimLimits, SimRequest, SimStats, SimulatedProvider

__all__ = [
    "Action",
    "ConcurrencyProbe",
    "EventLog",
    "Faults",
    "Latency",
    "LocalRayCluster",
    "RampLimit",
    "Reply",
    "ScriptedError",
    "SimLimits",
    "SimRequest",
    "SimStats",
    "SimulatedProvider",
    "VirtualClock",
    "act",
    "actions",
]

E = TypeVar("E", bound=Event)

_LAZY = {
    name: f"fanfold._sim:{name}"
    for name in ("Faults", "Latency", "RampLimit", "Reply", "SimLimits", "SimRequest", "SimStats", "SimulatedProvider")
}
_LAZY["LocalRayCluster"] = "fanfold._backends._local_ray:LocalRayCluster"  # a real Ray cluster on loopback

if not TYPE_CHECKING:  # hidden from type checkers, which would take any name as valid through it

    def __getattr__(name: str) -> Any:
        return _exports.load(__name__, _LAZY, name)


def __dir__() -> list[str]:
    return sorted({*__all__, *(name for name in globals() if name.startswith("__"))})


class EventLog:
    """Collects events; pass it as ``on_event``.

    >>> log = EventLog()
    >>> _ = ff.run_sync(ff.map(str.upper), ["a"], on_event=log)
    >>> log.statuses()[ff.Status.SUCCEEDED]   # over every task in the tree: the input and the map
    2
    >>> log.max_running("map")                 # the inputs of the map running at once
    1
    """

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of_type(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    def finished(self) -> list[TaskFinished]:
        return [e for e in self.events if isinstance(e, TaskFinished)]

    def statuses(self) -> Counter[Status]:
        return Counter(e.outcome.status for e in self.finished())

    def max_running(self, kind: str | None = None) -> int:
        """The most tasks that had started and not yet finished at any moment, by the events;
        with ``kind``, only the tasks of that kind: ``"verify"`` counts ``verify[3]`` and
        ``map[2]/verify[0]``, not ``verify[3]/vote[1]``."""
        running = peak = 0
        for event in self.events:
            if kind is not None and not event.path.rpartition("/")[2].startswith(kind + "["):
                continue
            if isinstance(event, TaskStarted):
                running += 1
                peak = max(peak, running)
            elif isinstance(event, TaskFinished) and event.outcome.start is not None:
                running -= 1
        return peak


class ConcurrencyProbe:
    """Counts calls in flight, overall and per resource, and keeps the peaks::

    probe = ConcurrencyProbe()
    async with probe.inside("db"):
        ...
    assert probe.peak <= 5 and probe.peaks["db"] <= 2
    """

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.current: Counter[str] = Counter()
        self.peaks: Counter[str] = Counter()
        self.entered = 0

    @asynccontextmanager
    async def inside(self, *resources: str) -> AsyncIterator[None]:
        self.entered += 1
        self.now += 1
        self.peak = max(self.peak, self.now)
        for name in resources:
            self.current[name] += 1
            self.peaks[name] = max(self.peaks[name], self.current[name])
        try:
            yield
        finally:
            self.now -= 1
            for name in resources:
                self.current[name] -= 1


@dataclass(frozen=True, slots=True)
class Action:
    """What :func:`act` does with this input.

    ``yields``: how many times to give way to the event loop first (interleaves tasks without
    sleeping); ``fail_attempts``: attempts that raise ``error`` before one succeeds (``-1``: every
    attempt); ``hang``: wait until cancelled (a timeout or deadline ends it); ``skip``: raise
    ``ff.Skip``. Otherwise return ``value``.
    """

    value: Any = None
    yields: int = 0
    fail_attempts: int = 0
    error: str = "boom"
    hang: bool = False
    skip: bool = False

    @classmethod
    def failing(cls, error: str = "boom") -> Action:
        return cls(fail_attempts=-1, error=error)


class ScriptedError(RuntimeError):
    """Raised by :func:`act` for an :class:`Action` that fails."""


@agent
async def act(action: Action, ctx: Context) -> Any:
    """Do what the :class:`Action` says (see there)."""
    for _ in range(action.yields):
        await asyncio.sleep(0)
    if action.skip:
        raise Skip("scripted skip")
    if action.fail_attempts < 0 or ctx.attempt <= action.fail_attempts:
        raise ScriptedError(f"{action.error} (attempt {ctx.attempt})")
    if action.hang:
        await asyncio.Event().wait()
    return action.value


def actions(values: Iterable[Any]) -> list[Action]:
    """Plain values as actions that return them."""
    return [Action(value=v) for v in values]


class _JumpingSelector(selectors.DefaultSelector):
    """Polls for real I/O without waiting; when there is none, jumps the clock to the next timer."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or (timeout is not None and timeout <= 0):
            return ready
        if timeout is None:  # no timer at all: wait for real I/O (a worker thread finishing, say)
            return super().select(None)
        self._clock.now += timeout
        return []


class _VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self, clock: VirtualClock) -> None:
        super().__init__(_JumpingSelector(clock))
        self._clock = clock

    def time(self) -> float:
        return self._clock.now


class VirtualClock:
    """A fake clock for tests: time stands still while anything is ready to run, and jumps to
    the next timer the moment the event loop would wait. Sleeps, backoffs, timeouts and deadlines
    then take no real time and happen in a deterministic order, however loaded the machine.

    Every event loop created inside the block (``ff.run_sync``, ``asyncio.run``) uses it::

        with VirtualClock() as clock:
            result = ff.run_sync(ff.map(slow), items, deadline=60)   # returns at once
        assert clock.now >= 60

    Sync agents run in real threads, so do not combine them with timers under a virtual clock:
    the clock may jump past a timeout while a thread is still working.
    """

    def __init__(self) -> None:
        self.now = 0.0
        self._previous: asyncio.AbstractEventLoopPolicy | None = None

    def __enter__(self) -> VirtualClock:
        clock = self

        class Policy(asyncio.DefaultEventLoopPolicy):
            def new_event_loop(self) -> asyncio.AbstractEventLoop:
                return _VirtualTimeLoop(clock)

        self._previous = asyncio.get_event_loop_policy()
        asyncio.set_event_loop_policy(Policy())
        return self

    def __exit__(self, *exc_info: object) -> None:
        asyncio.set_event_loop_policy(self._previous)


_exports.adopt(globals(), __name__, [name for name in __all__ if name not in _LAZY])
