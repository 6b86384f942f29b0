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
import heapq
import itertools
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

    @property
    def ranked(self) -> list[float]:
        """The latencies, sorted (do not change it)."""
        return self._sorted

    def quantile(self, q: float) -> float:
        ranked = self._sorted
        return ranked[min(len(ranked) - 1, math.ceil(q * len(ranked)) - 1)]


_PAST = 1e-3  # seconds past a learnt quantile at which a call is late


class Book:
    """One run's hedging: latencies learnt per resource, calls so far, hedges started and won.

    A call is past a quantile when few enough of the calls that have run as long as it has are
    still running or answered later. Counting only answers would be wrong while calls run: the
    fastest answer first, so the p95 of the first answers of a fan-out is the p95 of its fast
    calls, and hedging by it would spend the cap on calls that are merely average. So the calls
    still running count too, each as at least as slow as its time so far (a survival estimate):

        longer = answered later than e (a share of the latest answers, scaled to all of them)
                 + running calls admitted no later than this one
        hedge when longer <= (1 - q) * (answered + those running calls)
    """

    def __init__(self) -> None:
        self.latencies: dict[object, Latencies] = {}
        self.done: dict[object, int] = {}  # hedged calls of a resource that have ended
        self.running: dict[object, list[float]] = {}  # their admission times, sorted
        self.waiters: dict[object, list[tuple[int, int, asyncio.Future[None]]]] = {}  # heap by ends
        self._order = itertools.count()
        self.calls = 0
        self.started = 0
        self.won = 0

    def admitted(self, key: object, began: float) -> None:
        """A hedged call (or its backup) of ``key`` was admitted at ``began``; :meth:`ended`
        says when it ended."""
        running = self.running.get(key)
        if running is None:
            running = self.running[key] = []
        if not running or running[-1] <= began:
            running.append(began)
        else:
            bisect.insort(running, began)

    def ended(self, key: object, began: float, seconds: float | None) -> None:
        """A call of ``key`` admitted at ``began`` ended after ``seconds`` (answered, or lost a
        hedge); None: it failed, and how soon says nothing of how long answers take."""
        seen = self.latencies.get(key)
        if seen is None:
            seen = self.latencies[key] = Latencies()
        if seconds is not None:
            seen.add(seconds)
        running = self.running[key]
        del running[bisect.bisect_left(running, began)]
        done = self.done[key] = self.done.get(key, 0) + 1
        waiters = self.waiters.get(key)
        while waiters and waiters[0][0] <= done:
            future = heapq.heappop(waiters)[2]
            if not future.done():
                future.set_result(None)

    def wait(self, hedge: Hedge, key: object, began: float, now: float) -> float | asyncio.Future[None]:
        """How long a call of ``key`` admitted at ``began`` waits before its backup: 0.0 (now),
        seconds (then ask again), or a future that is done when more calls of ``key`` have
        ended (ask again then)."""
        after = hedge.after
        if not isinstance(after, str):
            return max(0.0, began + after - now)
        seen = self.latencies.get(key)
        done = self.done.get(key, 0)
        if seen is None or len(seen) < hedge.min_samples:
            return self._after_ends(key, done + hedge.min_samples - (0 if seen is None else len(seen)))
        q = quantile_of(after)
        ranked = seen.ranked
        elapsed = now - began
        older = bisect.bisect_right(self.running.get(key, ()), began)  # running as long, at least
        room = (1 - q) * (done + older) - older  # for answers slower than ``elapsed``
        if room < 0:  # too many older calls still run: only their ends can tell
            return self._after_ends(key, done + math.floor(-room) + 1)
        allowed = math.floor(room * len(ranked) / done) if done else 0
        if allowed >= len(ranked):
            return 0.0
        # Past the quantile: slower than all but ``allowed`` answers (strictly: a call that takes
        # as long as the quantile is not late).
        threshold = ranked[len(ranked) - 1 - allowed]
        if elapsed > threshold:
            return 0.0
        # Look again by then at the latest, or sooner: the answers' own quantile (low while many
        # calls run, and a time when the estimate will have moved), else a quarter of it later.
        answers = seen.quantile(q)
        sooner = answers - elapsed if answers > elapsed else answers / 4
        return min(threshold - elapsed, sooner) + _PAST

    def _after_ends(self, key: object, done: int) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self.waiters.setdefault(key, []), (done, next(self._order), future))
        return future

    def allows(self, hedge: Hedge) -> bool:
        """Room for one more backup under the hedge's caps."""
        started = self.started
        if hedge.max_hedges is not None and started >= hedge.max_hedges:
            return False
        return hedge.max_extra is None or started + 1 <= hedge.max_extra * self.calls


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
