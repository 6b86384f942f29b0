"""Admission control at the leaves.

A leaf call (a function agent today, a model request or tool call later) asks the run's limiter
for a slot on the global limit and on each named resource it uses, holds it only while it runs,
and gives it back. Composites never hold a slot, so nested fan-outs cannot deadlock.

:class:`Limiter` is the seam: a rate limiter (requests and tokens per minute) or a distributed
limiter implements the same three methods and the scheduler does not change.
"""

from __future__ import annotations

import abc
import asyncio
import importlib
import itertools
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from fanfold._errors import UsageError
from fanfold._governor import ProviderResource, RateLimit
from fanfold._redact import redact_url
from fanfold._usage import Budget, Ledger


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """How much may run at once.

    ``concurrency``: leaf calls running at once across the whole run (``None``: no global cap).
    ``resources``: named resources and how many leaf calls may use each at once; a leaf names the
    resources it uses (``@ff.agent(resources=["db"])``); a name with no limit here is unlimited.
    A provider resource takes a :class:`RateLimit` instead of a count (requests and tokens per
    minute, concurrency), keyed by ``provider:model`` or by provider.
    ``window``: how many inputs each fan-out keeps in flight (default: ``concurrency``, or 1024
    with no cap). A finished input's worker takes the next input and its slot at once, which
    keeps the makespan at the ideal; raise it when inputs spend long in backoffs, so that others
    use the slots they leave free.
    ``threads``: worker threads for sync function agents (default: ``concurrency``, or 64).

    >>> ff.Limits(concurrency=50, resources={"db": 5})
    Limits(concurrency=50, resources={'db': 5}, window=None, threads=None)
    """

    concurrency: int | None = 64
    resources: Mapping[str, int | RateLimit] = field(default_factory=dict)
    window: int | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        _positive("Limits(concurrency=...)", self.concurrency, allow_none=True)
        _positive("Limits(window=...)", self.window, allow_none=True)
        _positive("Limits(threads=...)", self.threads, allow_none=True)
        if not isinstance(self.resources, Mapping):
            raise UsageError(f"Limits(resources={self.resources!r}): pass a dict of name -> limit, e.g. {{'db': 5}}")
        for name, limit in self.resources.items():
            if not isinstance(name, str) or not name:
                raise UsageError(f"Limits(resources=...) has the key {name!r}; resource names are non-empty strings")
            if not isinstance(limit, RateLimit):
                _positive(f"Limits(resources={{{name!r}: ...}})", limit, allow_none=False)

    @property
    def fanout_window(self) -> int:
        return self.window or self.concurrency or 1024

    @property
    def thread_count(self) -> int:
        return self.threads or self.concurrency or 64


def _positive(where: str, value: object, *, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        hint = "a whole number >= 1" + (", or None for no limit" if allow_none else "")
        raise UsageError(f"{where} got {value!r}; pass {hint}")


@dataclass(slots=True)
class Admission:
    """One leaf call asking to run.

    ``resources`` names what it uses besides the global limit. ``cost`` is what it is expected
    to spend (for example ``{"input_tokens": 1200}``), for limiters that meter more than slots;
    the call fills in ``usage`` with what it did spend before the admission is released.
    ``priority``: a latency-critical call (a hedge's backup, whose input is already late) that
    the in-process limiter admits ahead of waiting calls without it; a shared limiter may ignore it.
    ``sent``: when a limiter metering a provider resource admitted it (the loop's clock), as
    the resource recorded it: the call tells it back with the provider's answer.
    """

    resources: tuple[str, ...] = ()
    cost: Mapping[str, float] | None = None
    usage: dict[str, float] | None = None
    priority: bool = False
    sent: float | None = None


class Limiter(abc.ABC):
    """Grants leaf calls their admission. ``try_acquire`` is the fast path and must not block.

    Every acquired admission is released exactly once, after the call, with ``usage`` filled in
    where the call reported it. A rate limiter or a distributed limiter implements these three
    methods; the scheduler does not change.
    """

    @abc.abstractmethod
    def try_acquire(self, admission: Admission) -> bool:
        """Admit now if there is room and nobody is waiting ahead; else return False."""

    @abc.abstractmethod
    async def acquire(self, admission: Admission) -> None:
        """Wait until admitted. Cancelling the wait leaves nothing taken."""

    @abc.abstractmethod
    def release(self, admission: Admission) -> None:
        """Give back what ``try_acquire`` or ``acquire`` took."""

    def begin_run(self, budget: Budget | None) -> Ledger:
        """A run begins with this limiter: the ledger that keeps its spending against ``budget``
        (a limiter whose state is shared by several processes shares the budget too)."""
        return Ledger(budget)

    async def end_run(self) -> None:  # noqa: B027 (a hook: most limiters have nothing to close)
        """A run that :meth:`begin_run` began has ended: send what is pending, close what only
        it used."""


# URL scheme -> the limiter that keeps its state there, loaded by name on first use (a wing of
# the package: the core names it, it does not import it).
_LIMITERS = {
    "redis": "fanfold._shared._redis_limiter:RedisLimiter",
    "rediss": "fanfold._shared._redis_limiter:RedisLimiter",
    "unix": "fanfold._shared._redis_limiter:RedisLimiter",
}


def check_limiter_url(target: object) -> str:
    """The scheme of a limiter URL; a :class:`UsageError` naming the value if it is none."""
    scheme = urlsplit(target).scheme if isinstance(target, str) else ""
    if scheme not in _LIMITERS:
        shown = redact_url(target) if isinstance(target, str) else target
        raise UsageError(
            f"limiter={shown!r}: pass a Limiter, or the URL of a Redis that several processes share, "
            "e.g. 'redis://127.0.0.1:6379/0?namespace=my-job'"
        )
    return scheme


def open_limiter(target: Limiter | str | None, limits: Limits) -> Limiter:
    """The limiter ``target`` names: itself, the in-process one for ``None``, or one whose state
    is shared by every process that names the same URL (``"redis://127.0.0.1:6379/0"``, with
    ``?namespace=...`` to keep unrelated jobs apart), governed by ``limits``."""
    if target is None:
        return ConcurrencyLimiter(limits)
    if isinstance(target, Limiter):
        return target
    module, _, name = _LIMITERS[check_limiter_url(target)].partition(":")
    limiter: Limiter = getattr(importlib.import_module(module), name).from_url(target, limits)
    return limiter


class ConcurrencyLimiter(Limiter):
    """The global slot count, counted resources and metered provider resources, granted all at
    once in FIFO order, calls with ``priority`` (a hedge's backups) ahead of the others.

    A leaf waits until *every* slot it needs is free and then takes them together, so two leaves
    needing the same two resources can never each hold one and wait for the other. A waiter
    that does not fit does not block later waiters that need other resources; later waiters on
    the same resource wait behind it, so a large call is never starved by small ones. A waiter
    held by a bucket or a pause is woken by a timer at the moment it will fit. A waiter with
    ``priority`` goes ahead of every waiter without it: a backup is sent because its input is
    late, and the hedge's cap bounds how often it may jump the queue.
    """

    def __init__(self, limits: Limits) -> None:
        self._free_total: float = limits.concurrency if limits.concurrency is not None else math.inf
        self._free: dict[str, int] = {k: v for k, v in limits.resources.items() if isinstance(v, int)}
        self._rates: dict[str, RateLimit] = {k: v for k, v in limits.resources.items() if isinstance(v, RateLimit)}
        self._metered: dict[str, ProviderResource] = {}
        # Waiters queue by their priority and the resources they name (most leaves of a run name
        # the same ones), so a wake looks at one head per queue, not at every waiter behind a busy
        # resource.
        self._queues: dict[tuple[bool, tuple[str, ...]], deque[_Waiter]] = {}
        self._waiting = 0
        self._waiting_first = 0  # of them, with priority
        self._arrivals = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def meter(self, name: str, lookup: tuple[str, ...] = ()) -> ProviderResource:
        """The metered resource ``name``, created on first use from the ``RateLimit`` configured
        under ``name`` or the first of ``lookup`` (e.g. ``"openai:gpt-5-mini"``, ``"openai"``)."""
        resource = self._metered.get(name)
        if resource is None:
            rates = self._rates
            limit = next((rates[key] for key in (name, *lookup) if key in rates), None) or RateLimit()
            resource = self._metered[name] = ProviderResource(name, limit, _now())
        return resource

    def _wait(self, admission: Admission, now: float | None) -> float:
        """0 if it fits now; else seconds until it may (``inf``: until a slot is released)."""
        if self._free_total < 1:
            return math.inf
        resources = admission.resources
        if not resources:
            return 0.0
        free = self._free
        if not all(free.get(name, 1) > 0 for name in resources):
            return math.inf
        metered = self._metered
        if not metered:
            return 0.0
        longest = 0.0
        for name in resources:
            resource = metered.get(name)
            if resource is not None:
                longest = max(longest, resource.wait(admission.cost, _now() if now is None else now))
        return longest

    def _take(self, admission: Admission) -> None:
        self._free_total -= 1
        free = self._free
        metered = self._metered
        for name in admission.resources:
            if name in free:
                free[name] -= 1
            elif name in metered:
                sent = admission.sent = _now()
                metered[name].take(admission.cost, sent)

    def try_acquire(self, admission: Admission) -> bool:
        if (self._waiting_first if admission.priority else self._waiting) or self._wait(admission, None):
            return False
        self._take(admission)
        return True

    async def acquire(self, admission: Admission) -> None:
        if self.try_acquire(admission):
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        key = (admission.priority, admission.resources)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
        queue.append((next(self._arrivals), admission, future))
        self._waiting += 1
        self._waiting_first += admission.priority
        self._wake()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(admission)  # granted and cancelled in the same breath: give it back
            else:
                self._waiting -= 1  # its entry is dropped when it reaches the head of its queue
                self._waiting_first -= admission.priority
                self._wake()  # it may have held back waiters on its resources
            raise

    def release(self, admission: Admission) -> None:
        self._free_total += 1
        free = self._free
        metered = self._metered
        for name in admission.resources:
            if name in free:
                free[name] += 1
            elif name in metered:
                metered[name].release(admission.cost, admission.usage)
        if self._waiting:
            self._wake()

    def _wake(self) -> None:
        held: set[str] = set()  # resources a waiter ahead is waiting for: FIFO per resource
        soonest = math.inf
        now = _now() if self._metered else 0.0
        # Queues with priority first, then in the order their heads arrived, so that across
        # queues the oldest goes first.
        for key, queue in sorted(self._queues.items(), key=_head_arrival):
            if self._free_total < 1:
                break
            resources = key[1]
            if held and not held.isdisjoint(resources):
                continue
            while queue:
                _, admission, future = queue[0]
                if future.done():  # cancelled while waiting
                    queue.popleft()
                    continue
                if self._free_total < 1:
                    break
                wait = self._wait(admission, now)
                if wait:
                    held.update(resources)
                    soonest = min(soonest, wait)
                    break
                queue.popleft()
                self._waiting -= 1
                self._waiting_first -= admission.priority
                self._take(admission)
                future.set_result(None)
            if not queue:
                del self._queues[key]
        if soonest < math.inf and self._waiting:
            self._wake_at(now + soonest)

    def _wake_at(self, when: float) -> None:
        if self._timer is not None and self._timer_at <= when:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = asyncio.get_running_loop().call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        if self._waiting:
            self._wake()


_Waiter = tuple[int, Admission, "asyncio.Future[None]"]


def _head_arrival(item: tuple[tuple[bool, tuple[str, ...]], deque[_Waiter]]) -> tuple[bool, int]:
    (priority, _), queue = item
    return not priority, queue[0][0] if queue else -1


def _now() -> float:
    return asyncio.get_running_loop().time()
