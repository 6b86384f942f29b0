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
from typing import TYPE_CHECKING, Any, Protocol

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
    """The latest ``size`` latencies of a resource, kept sorted."""

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


_PAST = 1e-3  # seconds past a learnt quantile at which a call is late
_STEPS = 32  # answers are taken in at most this many steps along the survival curve


class Late(Protocol):
    """A call a quantile hedge watches: :meth:`fire` starts its backup (if the caps allow);
    ``closed`` once it needs none (it ended, or its backup started)."""

    closed: bool

    def fire(self) -> None: ...


class _Watch:
    """The calls of one resource under one quantile hedge that may still need a backup, oldest
    first, and when to look at them again: a timer, or a number of ended calls."""

    __slots__ = ("calls", "ends", "handle")

    def __init__(self) -> None:
        self.calls: list[tuple[float, int, Late]] = []  # a heap by admission time
        self.handle: asyncio.TimerHandle | None = None
        self.ends: int | None = None


class Book:
    """One run's hedging: latencies learnt per resource, calls so far, hedges started and won.

    A call is past a quantile ``q`` when the share of calls expected to run longer than it has
    is at most ``1 - q``. Counting only answers would be wrong while calls run: the fastest
    answer first, so the p95 of the first answers of a fan-out is the p95 of its fast calls, and
    hedging by it would spend the cap on calls that are merely average. So the calls still
    running count too, each as at least as slow as its time so far: a survival curve drawn the
    Kaplan-Meier way. Walking up the answers' latencies ``t``, each answer removes its share of
    the calls that had run at least ``t`` (answered later, or running for ``t`` or more)::

        S(t) = product over answers t_i <= t of (1 - 1 / at_risk(t_i))
        at_risk(t) = answers slower than t (the latest answers, scaled to all of them)
                     + calls running for t or more by now
        a call is late when S(its time so far) <= 1 - q

    Risk sets are taken at each answer's own latency, not at the late call's: in a fan-out
    whose calls were all admitted within a few milliseconds, the first answers are weighed
    against every call still running, not only against those admitted before the asking one.

    The curve is the same for every call of a resource, and only its oldest calls can be past
    it, so one watcher per resource and hedge looks at them (:meth:`watch`): it backs up the
    calls past the trigger, then waits for the next oldest to reach it, or, while the curve
    does not reach the quantile, for more calls to end. A thousand calls in flight cost one
    timer, not a thousand wake-ups.
    """

    def __init__(self) -> None:
        self.latencies: dict[object, Latencies] = {}
        self.done: dict[object, int] = {}  # hedged calls of a resource that have ended
        self.answered: dict[object, int] = {}  # of those, the ones that answered (or lost a hedge)
        self.running: dict[object, list[float]] = {}  # their admission times, sorted
        self.watches: dict[tuple[object, Hedge], _Watch] = {}
        self.waiters: dict[object, list[tuple[int, int, tuple[object, Hedge]]]] = {}  # heap by ends
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
            self.answered[key] = self.answered.get(key, 0) + 1
        running = self.running[key]
        del running[bisect.bisect_left(running, began)]
        done = self.done[key] = self.done.get(key, 0) + 1
        waiters = self.waiters.get(key)
        while waiters and waiters[0][0] <= done:  # now, not after the loop's other ready calls
            self._look(heapq.heappop(waiters)[2])

    def watch(self, hedge: Hedge, key: object, began: float, call: Late) -> None:
        """Back up ``call`` (of ``key``, admitted at ``began``) once it is past ``hedge``'s
        quantile (see the class)."""
        watched = (key, hedge)
        watch = self.watches.get(watched)
        if watch is None:
            watch = self.watches[watched] = _Watch()
        heapq.heappush(watch.calls, (began, next(self._order), call))
        if watch.handle is None and watch.ends is None:  # else it looks again soon enough: the
            self._look(watched)  # calls it waits for are older than this one

    def _look(self, watched: tuple[object, Hedge]) -> None:
        """Back up the watched calls past the trigger; then wait for the next one to be, or for
        enough calls to end that the trigger can be known."""
        key, hedge = watched
        watch = self.watches[watched]
        watch.handle, watch.ends = None, None
        calls = watch.calls
        while calls and calls[0][2].closed:
            heapq.heappop(calls)
        if not calls:
            return
        seen = self.latencies.get(key)
        done = self.done.get(key, 0)
        if seen is None or len(seen) < hedge.min_samples:
            self._after_ends(watched, done + hedge.min_samples - (0 if seen is None else len(seen)))
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        threshold, ends = self._curve(key, quantile_of(str(hedge.after)), now)
        if threshold is None:
            self._after_ends(watched, done + ends)
            return
        # Past the quantile (strictly: a call that takes as long as the quantile is not late).
        while calls and (calls[0][2].closed or now - calls[0][0] > threshold):
            call = heapq.heappop(calls)[2]
            if not call.closed:
                call.fire()
        if calls:
            watch.handle = loop.call_later(calls[0][0] + threshold - now + _PAST, self._look, watched)

    def _after_ends(self, watched: tuple[object, Hedge], done: int) -> None:
        self.watches[watched].ends = done
        heapq.heappush(self.waiters.setdefault(watched[0], []), (done, next(self._order), watched))

    def trigger(self, key: object, q: float, now: float) -> float | None:
        """The latency past which a call of ``key`` is late by quantile ``q`` at ``now``; None
        while too few calls have answered for the curve to reach it."""
        return self._curve(key, q, now)[0]

    def _curve(self, key: object, q: float, now: float) -> tuple[float | None, int]:
        """The latency past which a call of ``key`` is late (None: none of the answers so far
        is that slow, the calls still running being as slow as they are), and how many more
        calls should end before asking again."""
        ranked = self.latencies[key].ranked
        running = self.running.get(key, ())
        size = len(ranked)
        weight = self.answered.get(key, size) / size  # answers each of the latest stands for
        target = 1.0 - q + 1e-9  # (a product of floats may miss 1 - q by its last bit)
        survival = 1.0
        threshold: float | None = None
        step = -(-size // _STEPS)
        i = 0
        while i < size and threshold is None:
            j = min(size, i + step)
            # A step of answers, weighed together against the calls at risk at its start...
            at_risk = weight * (size - i) + bisect.bisect_right(running, now - ranked[i])
            after = survival * max(0.0, 1.0 - weight * (j - i) / at_risk)
            if after > target:
                survival, i = after, j
                continue
            # ...unless the curve may reach the quantile within it: then one answer at a time.
            while i < j and survival > target:
                at_risk = weight * (size - i) + bisect.bisect_right(running, now - ranked[i])
                survival *= max(0.0, 1.0 - weight / at_risk)
                i += 1
            if survival <= target:
                threshold = ranked[i - 1]
        ends = 1
        if threshold is None:
            # Past the slowest answer, each answer removes 1 / at_risk of the curve, where the
            # calls at risk are at least those running that long already, at most all those
            # running: between these many answers and four times as many are needed, at least,
            # before the curve can reach the quantile (looking again after a quarter of the
            # most keeps a wave of a thousand calls to a few dozen looks).
            share = 1.0 - target / survival
            beyond = bisect.bisect_right(running, now - ranked[-1])
            ends = max(1, math.floor(beyond * share), math.floor(len(running) * share / 4))
        return threshold, ends

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
