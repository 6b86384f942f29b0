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
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from fanfold._errors import UsageError


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """How much may run at once.

    ``concurrency``: leaf calls running at once across the whole run (``None``: no global cap).
    ``resources``: named resources and how many leaf calls may use each at once; a leaf names the
    resources it uses (``@ff.agent(resources=["db"])``); a name with no limit here is unlimited.
    ``window``: how many inputs each fan-out keeps in flight (default: ``concurrency``, or 1024
    with no cap). A finished input's worker takes the next input and its slot at once, which
    keeps the makespan at the ideal; raise it when inputs spend long in backoffs, so that others
    use the slots they leave free.
    ``threads``: worker threads for sync function agents (default: ``concurrency``, or 64).

    >>> ff.Limits(concurrency=50, resources={"db": 5})
    Limits(concurrency=50, resources={'db': 5}, window=None, threads=None)
    """

    concurrency: int | None = 64
    resources: Mapping[str, int] = field(default_factory=dict)
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
    """

    resources: tuple[str, ...] = ()
    cost: Mapping[str, float] | None = None
    usage: dict[str, float] | None = None


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


class ConcurrencyLimiter(Limiter):
    """A global slot count plus per-resource counts, granted all at once in FIFO order.

    A leaf waits until *every* slot it needs is free and then takes them together, so two leaves
    needing the same two resources can never each hold one and wait for the other. A waiter that
    does not fit does not block later waiters that do.
    """

    def __init__(self, limits: Limits) -> None:
        self._free_total: float = limits.concurrency if limits.concurrency is not None else math.inf
        self._free: dict[str, int] = dict(limits.resources)
        self._waiters: deque[tuple[Admission, asyncio.Future[None]]] = deque()

    def _fits(self, resources: tuple[str, ...]) -> bool:
        if self._free_total < 1:
            return False
        if not resources:
            return True
        free = self._free
        return all(free.get(name, 1) > 0 for name in resources)

    def _take(self, resources: tuple[str, ...]) -> None:
        self._free_total -= 1
        free = self._free
        for name in resources:
            if name in free:
                free[name] -= 1

    def try_acquire(self, admission: Admission) -> bool:
        resources = admission.resources
        if self._waiters or not self._fits(resources):
            return False
        self._take(resources)
        return True

    async def acquire(self, admission: Admission) -> None:
        if self.try_acquire(admission):
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (admission, future)
        self._waiters.append(entry)
        self._wake()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(admission)  # granted and cancelled in the same breath: give it back
            elif entry in self._waiters:
                self._waiters.remove(entry)
            raise

    def release(self, admission: Admission) -> None:
        self._free_total += 1
        free = self._free
        for name in admission.resources:
            if name in free:
                free[name] += 1
        if self._waiters:
            self._wake()

    def _wake(self) -> None:
        waiters = self._waiters
        passed_over: list[tuple[Admission, asyncio.Future[None]]] = []
        while waiters and self._free_total >= 1:
            entry = waiters.popleft()
            admission, future = entry
            if future.done():
                continue
            if self._fits(admission.resources):
                self._take(admission.resources)
                future.set_result(None)
            else:
                passed_over.append(entry)
        waiters.extendleft(reversed(passed_over))
