"""Hedging: a backup call for a straggler, as an attempt strategy of the one leaf boundary.

A :class:`Hedge` says when a leaf call is slow enough to be worth a second, identical call
(a latency quantile learnt per resource, or a fixed delay, timed from the call's *admission*,
never from its queueing) and how many extra calls a run may make for it. The boundary
(``fanfold._leaf``) does the rest: the backup is a call like any other (budget, admission,
retries' accounting), the first success wins, the loser is cancelled through the normal path,
so its request is counted. This module holds the policy and each run's book of it: the learnt
latencies, the calls so far and the hedges started and won.

Where a hedge applies, the narrowest wins: the leaf's own (``ff.agent(hedge=...)``,
``ff.llm(..., hedge=...)``), then the pattern's (``ff.map(agent, hedge=...)``, for every leaf
below it), then the run's (``ff.run(..., hedge=...)``).
"""

from __future__ import annotations

import asyncio
import bisect
import contextvars
import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fanfold._errors import UsageError

if TYPE_CHECKING:
    from fanfold._context import RunState


@dataclass(frozen=True, slots=True)
class Hedge:
    """When to send a backup call for a slow leaf call, and how many backups a run may send.

    ``after`` is a latency quantile learnt per resource (``"p95"``, ``"p99"``, ``"p90"``), or a
    fixed delay in seconds; either is timed from the call's admission. A quantile needs
    ``min_samples`` answered calls of that resource before it hedges. ``max_extra`` caps the
    backups at that fraction of the calls so far; ``max_hedges`` at a number per run (either may
    be None, not both)::

        ff.map(agent, hedge=ff.Hedge(after="p95", max_extra=0.05))
        ff.llm("openai:gpt-5-mini", hedge=ff.Hedge(after=2.0, max_hedges=100))
    """

    after: float | str = "p95"
    max_extra: float | None = 0.05
    max_hedges: int | None = None
    min_samples: int = 20

    def __post_init__(self) -> None:
        after = self.after
        if isinstance(after, str):
            quantile_of(after)
        elif isinstance(after, bool) or not isinstance(after, int | float) or not after >= 0 or math.isinf(after):
            raise UsageError(f"Hedge(after={after!r}): pass a quantile such as 'p95', or seconds >= 0")
        extra = self.max_extra
        if extra is not None and (isinstance(extra, bool) or not isinstance(extra, int | float) or not extra >= 0):
            raise UsageError(f"Hedge(max_extra={extra!r}): pass a fraction of the calls, such as 0.05, or None")
        count = self.max_hedges
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
            raise UsageError(f"Hedge(max_hedges={count!r}): pass a number of backup calls >= 0, or None")
        if extra is None and count is None:
            raise UsageError("Hedge(max_extra=None, max_hedges=None) has no cap; pass max_extra=0.05 or max_hedges=...")
        samples = self.min_samples
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise UsageError(f"Hedge(min_samples={samples!r}): pass a number of calls >= 1")


def quantile_of(after: str) -> float:
    """``"p95"`` -> 0.95, ``"p99.9"`` -> 0.999."""
    text = after[1:] if after[:1] in ("p", "P") else ""
    try:
        q = float(text) / 100
    except ValueError:
        q = -1.0
    if not 0 < q < 1:
        raise UsageError(f"Hedge(after={after!r}): pass a quantile such as 'p95' or 'p99', or seconds >= 0")
    return q


def check_hedge(where: str, hedge: object) -> None:
    if hedge is not None and not isinstance(hedge, Hedge):
        raise UsageError(f"{where}(hedge={hedge!r}): pass ff.Hedge(after='p95', max_extra=0.05), or None")


# The hedge of the pattern a leaf runs under (the run's at the root); a leaf's own comes first.
SCOPE: contextvars.ContextVar[Hedge | None] = contextvars.ContextVar("fanfold_hedge", default=None)


class Latencies:
    """A streaming quantile estimate: the latest ``size`` latencies of a resource, kept sorted."""

    __slots__ = ("_order", "_size", "_sorted")

    def __init__(self, size: int = 512) -> None:
        self._order: deque[float] = deque()
        self._sorted: list[float] = []
        self._size = size

    def add(self, seconds: float) -> None:
        order, ranked = self._order, self._sorted
        if len(order) == self._size:
            old = order.popleft()
            del ranked[bisect.bisect_left(ranked, old)]
        order.append(seconds)
        bisect.insort(ranked, seconds)

    def __len__(self) -> int:
        return len(self._order)

    def quantile(self, q: float) -> float:
        ranked = self._sorted
        return ranked[min(len(ranked) - 1, math.ceil(q * len(ranked)) - 1)]


class Book:
    """One run's hedging: latencies learnt per resource, calls so far, hedges started and won."""

    def __init__(self) -> None:
        self.latencies: dict[object, Latencies] = {}
        self.learnt: dict[object, asyncio.Event] = {}  # set once a resource has min_samples
        self.calls = 0
        self.started = 0
        self.won = 0
        self.wanted: dict[object, int] = {}

    def delay(self, hedge: Hedge, key: object) -> float | None:
        """Seconds from admission after which a call of ``key`` is worth a backup (None: not yet
        known, no hedge)."""
        after = hedge.after
        if not isinstance(after, str):
            return float(after)
        seen = self.latencies.get(key)
        if seen is None or len(seen) < hedge.min_samples:
            return None
        return seen.quantile(quantile_of(after))

    def allows(self, hedge: Hedge) -> bool:
        """Room for one more backup under the hedge's caps."""
        started = self.started
        if hedge.max_hedges is not None and started >= hedge.max_hedges:
            return False
        return hedge.max_extra is None or started + 1 <= hedge.max_extra * self.calls

    def learn(self, key: object, seconds: float) -> None:
        seen = self.latencies.get(key)
        if seen is None:
            seen = self.latencies[key] = Latencies()
        seen.add(seconds)
        learnt = self.learnt.get(key)
        if learnt is not None and len(seen) >= self.wanted.get(key, 1):
            learnt.set()

    def until_learnt(self, hedge: Hedge, key: object) -> asyncio.Event:
        """Set once ``key`` has enough latencies for ``hedge``'s quantile (calls admitted before
        then wait for it, rather than never being hedged)."""
        event = self.learnt.get(key)
        if event is None:
            event = self.learnt[key] = asyncio.Event()
        self.wanted[key] = min(self.wanted.get(key, hedge.min_samples), hedge.min_samples)
        return event


def book(state: RunState) -> Book:
    """The run's book of hedging, made on first use."""
    found: Book | None = state.services.get(Book)
    if found is None:
        found = state.services[Book] = Book()
    return found


def counts(state: RunState) -> dict[str, Any]:
    """The summary's hedge counts."""
    found: Book | None = state.services.get(Book)
    return {"hedges": found.started, "hedges_won": found.won} if found is not None else {}
