"""The leaf boundary: every leaf call is admitted, retried, timed out and counted here.

A leaf call is a function agent on one input, one model request, a streamed model request (and
later a remote call on a backend, or a foreign framework's agent). Each attempt of each of them
takes the same admitted-call path::

    reserve from the budget -> admission (here, or deferred to the wire) -> send, bounded by the
    attempt timeout from admission on and cancellable by the budget -> learn from the answer or
    the error -> account (usage, busy time, leaf calls) -> settle the budget -> release

and one attempt loop wraps it: the first attempt outside tenacity, then retries by the call's
policy (its own, else the run's, else its kind's default), all within the task timeout (its
own, else the run's). What differs between kinds of leaf is a :class:`LeafCall` subclass that
plugs into that path; nothing re-implements it.

A hedged attempt (a backup raced against a late call) is an attempt strategy of this same loop,
so it lives here rather than in :mod:`fanfold._hedge` (which holds the policy and the learnt
latencies): it calls the bounded attempt and the attempt loop calls it, and splitting them would
make an import cycle. That is why this module runs near 500 lines.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from types import TracebackType
from typing import Any, ClassVar, Self

from fanfold._context import Context
from fanfold._errors import BudgetExhausted, TaskTimeout
from fanfold._events import HedgeStarted, HedgeWon, TaskRetrying, TaskStarted
from fanfold._hedge import SCOPE, Book, Hedge, book
from fanfold._limits import Admission
from fanfold._outcome import ErrorInfo
from fanfold._retry import SIGNALS_ONLY, RetryPolicy, Timeouts, call_with_retries, delay_hint
from fanfold._usage import Usage

_NOTHING = Usage()


class LeafCall(Admission, abc.ABC):
    """One leaf call of some kind on its way through the boundary.

    It is its own :class:`Admission` (what it asks the limiter for: its ``resources`` and
    ``cost``), one object for all its attempts: the boundary's bookkeeping costs no allocation
    of its own, which every call of every run would pay. ``retry`` and ``timeouts`` are the
    call's own, if it has them.

    A kind of leaf subclasses it: :meth:`begin` starts an attempt and says what it reserves
    from the run's budget, :meth:`send` makes it; :meth:`answered` and :meth:`failed` learn
    from how it ended (and set ``spent``, which is charged to the task and settles the budget).
    The boundary sets ``attempt`` before each attempt and ``began`` (the clock) at admission.
    A kind that ``defers_admission`` calls :meth:`admit` itself as the call goes out (a model
    request on a client fanfold built is admitted by the client's request hook, after
    pydantic-ai and the SDK have done their work); its attempt timeout starts there.

    Use it with :func:`call_leaf` (retried), or as ``async with`` around a block (once, not retried
    and not timed out: a stream, whose answer the caller reads inside the block; the block
    calls :meth:`answered` itself).
    """

    __slots__ = (
        "attempt",
        "began",
        "ctx",
        "defers_admission",
        "hedge",
        "limit",
        "on_admitted",
        "reserved",
        "retry",
        "scope",
        "spent",
        "timeouts",
    )

    default_retry: ClassVar[RetryPolicy] = SIGNALS_ONLY  # when neither the call nor the run has one
    what: ClassVar[str] = "attempt"  # how a timed-out attempt is named

    # Set as each attempt begins.
    attempt: int
    began: float | None
    spent: Usage | None
    reserved: tuple[float, float] | None
    limit: float | None  # with ``scope``: the attempt timeout

    def __init__(self, ctx: Context, resources: tuple[str, ...], cost: Mapping[str, float] | None = None) -> None:
        self.resources = resources
        self.cost = cost
        self.usage = None
        self.priority = False
        self.ctx = ctx
        self.retry: RetryPolicy | None = None
        self.timeouts: Timeouts | None = None
        self.defers_admission = False
        self.scope: asyncio.Timeout | None = None  # the attempt's timeout, while it runs
        self.hedge: Hedge | None = None  # the call's own hedge (else its pattern's, or the run's)
        self.on_admitted: Callable[[], None] | None = None  # a hedged call's timer starts here

    # An admission is one call's, not a value: compare and hash by identity.
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    # -- what a kind of leaf plugs in --------------------------------------------------------

    @abc.abstractmethod
    def begin(self) -> tuple[float, float] | None:
        """An attempt begins (``self.attempt`` is its number): return the tokens and dollars
        it reserves from the run's budget, or None if it spends none."""

    @abc.abstractmethod
    def send(self) -> Awaitable[Any]:
        """Make the attempt, admitted (or admitting itself, for a kind that defers admission)."""

    def answered(self, result: Any) -> None:
        """The attempt succeeded, and is about to be released: learn from its answer, set
        ``spent``, report it."""

    def failed(self, exc: BaseException) -> None:
        """The attempt raised ``exc`` (admitted or not, as ``began`` says), and is about to be
        released: learn from it (a 429 pauses a resource), set ``spent``, report it."""

    def delay(self, exc: BaseException | None) -> float | None:
        """The wait before the next attempt that ``exc`` asks for (None: the policy's backoff)."""
        return delay_hint(exc)

    def backup(self) -> LeafCall | None:
        """A second, identical call to hedge this one with (None: this kind cannot be hedged)."""
        return None

    def hedge_key(self) -> object:
        """What the latencies a hedge learns from are kept by: the call's resources."""
        return self.resources

    # -- the admitted-call path --------------------------------------------------------------

    async def admit(self) -> None:
        """Wait for admission; the attempt's time starts now."""
        state = self.ctx.run_state
        limiter = state.limiter
        if not limiter.try_acquire(self):
            await limiter.acquire(self)
        began = self.began = state.clock()
        scope = self.scope
        if scope is not None and self.limit is not None:  # admitted on the wire, inside the attempt's scope
            scope.reschedule(began + self.limit)
        if self.on_admitted is not None:  # a hedged call's timer starts now
            self.on_admitted()

    def _begin(self) -> bool:
        """Begin an attempt; True if it is open already: nothing to reserve from the budget, and
        room in the limiter (most calls). Else :meth:`_open` opens it."""
        self.began = self.spent = self.usage = None
        reserved = self.reserved = self.begin()
        if reserved is not None or self.defers_admission:
            return False
        state = self.ctx.run_state
        if not state.limiter.try_acquire(self):
            return False
        self.began = state.clock()
        return True

    async def _open(self) -> None:
        """Reserve from the budget, and take admission unless the kind takes it on the wire."""
        reserved = self.reserved
        if reserved is not None:
            await self.ctx.run_state.ledger.reserve(*reserved)
        if not self.defers_admission:
            try:
                await self.admit()
            except BaseException as exc:  # cancelled while waiting: give the reservation back
                self._close(exc)
                raise

    def _close(self, error: BaseException | None) -> None:
        """The attempt ended (raising ``error``, or not): account for it, settle, release."""
        if error is not None:
            self.failed(error)
        ctx = self.ctx
        state = ctx.run_state
        spent = self.spent
        if spent is not None:
            ctx.charge(spent)
        reserved = self.reserved
        if reserved is not None:
            state.ledger.settle(*reserved, spent or _NOTHING)
        began = self.began
        if began is not None:  # it was admitted: give the admission back, and count the call
            state.limiter.release(self)
            state.busy += state.clock() - began
            state.leaf_calls += 1

    async def __aenter__(self) -> Self:
        self.attempt = 1
        if not self._begin():
            await self._open()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._close(exc)


def call_leaf(leaf: LeafCall) -> Coroutine[Any, Any, Any]:
    """Make a leaf call: its attempts, retried by its policy, within its task timeout."""
    timeouts = leaf.timeouts or leaf.ctx.run_state.timeouts
    if leaf.hedge is None:
        leaf.hedge = SCOPE.get()
    # A plain function, not a coroutine: one frame fewer for every leaf call of every run.
    if timeouts is None:
        return _attempts(leaf, None)
    if timeouts.task is None:
        return _attempts(leaf, timeouts.attempt)
    return within(timeouts.task, _attempts(leaf, timeouts.attempt), "task")


async def _attempts(leaf: LeafCall, limit: float | None) -> Any:
    attempt = _attempt if leaf.hedge is None else _hedged
    # The first attempt runs outside tenacity: most calls succeed, and they should cost nothing extra.
    try:
        return await attempt(leaf, 1, limit)
    except Exception as first:
        state = leaf.ctx.run_state
        policy = leaf.retry or state.retry or leaf.default_retry
        if policy.attempts == 1 or not policy.should_retry(first):
            raise
        failed_first = first

    async def replay(n: int) -> Any:
        if n == 1:
            raise failed_first
        return await attempt(leaf, n, limit)

    def on_retry(n: int, delay: float, exc: BaseException) -> None:
        state.retries += 1
        leaf.ctx.retried()
        if state.bus.active:
            state.bus.emit(TaskRetrying(state.run_id, leaf.ctx.path, state.now(), n + 1, delay, ErrorInfo.of(exc)))

    return await call_with_retries(replay, policy, on_retry, hint=leaf.delay)


async def _attempt(leaf: LeafCall, n: int, limit: float | None) -> Any:
    """One attempt through the admitted-call path."""
    leaf.attempt = n
    if not leaf._begin():
        await leaf._open()  # admits it (calling on_admitted), unless it is admitted on the wire
    elif leaf.on_admitted is not None:  # a hedged call, admitted at once: its timer starts
        leaf.on_admitted()
    try:
        budget = leaf.ctx.run_state.ledger.budget
        cancellable = leaf.reserved is not None and budget is not None and budget.in_flight == "cancel"
        if limit is None and not cancellable:
            result = await leaf.send()
        else:
            result = await _bounded(leaf, limit, cancellable)
        leaf.answered(result)
    except BaseException as exc:
        leaf._close(exc)
        raise
    leaf._close(None)
    return result


async def _bounded(leaf: LeafCall, limit: float | None, cancellable: bool) -> Any:
    """Send, bounded by the attempt timeout from admission on, and cancellable by the budget."""
    ledger = leaf.ctx.run_state.ledger
    # Not admitted yet (it will be on the wire): no bound until then; admit() sets it.
    scope = asyncio.timeout(limit if leaf.began is not None else None)
    try:
        async with scope:
            leaf.scope, leaf.limit = scope, limit
            if cancellable:
                ledger.track(scope)
            return await leaf.send()
    except TimeoutError:
        if not scope.expired():
            raise  # the call's own TimeoutError stays what it is
        if cancellable and ledger.exhausted is not None:
            raise BudgetExhausted(f"the run's budget is exhausted ({ledger.exhausted}); cancelled in flight") from None
        raise TaskTimeout(f"{leaf.what} {leaf.attempt} timed out after {limit:g}s") from None
    finally:
        leaf.scope = None
        if cancellable:
            ledger.untrack(scope)


async def _hedged(leaf: LeafCall, n: int, limit: float | None) -> Any:
    """One attempt, hedged: if it is still running its hedge's delay after its admission (not
    after it was queued), a backup call goes through the same admitted path (budget, admission
    ahead of calls that have not started, accounting); the first success wins and the other is
    cancelled, counted like any cancelled call. Both failing raise the first call's error, to
    the attempt loop.

    The first call runs in the caller's task, inside a cancel scope; no task waits for the
    trigger (the book's watcher of the resource for a quantile, a timer for a fixed delay), so
    a call that answers in time (most do) costs a place in a heap, or a timer, and nothing
    else. The backup is a task of its own, started by the trigger; its win cancels the first
    call through the scope, and the backup is always awaited before this returns.
    """
    race = _Race(leaf, n, limit)
    leaf.on_admitted = race.admitted
    try:
        try:
            async with asyncio.timeout(None) as scope:
                race.scope = scope
                error, value = await _timed(leaf, n, limit, race.books, race.key)
        except TimeoutError:
            if not race.won:
                raise
            error, value = None, race.winner  # the backup answered first; the first call was cancelled
            _won(leaf, race.books, race.key)
        else:
            race.close()
            backup = race.backup
            if error is not None and backup is not None:  # the first call failed: the backup decides
                other_error, other_value = await backup
                if other_error is None:
                    _won(leaf, race.books, race.key)
                    return other_value
        if error is not None:
            raise error
        return value
    finally:
        race.close()
        backup = race.backup
        if backup is not None and not backup.done():  # the loser: cancelled, released and counted
            backup.cancel()
            await asyncio.wait((backup,))


class _Race:
    """A hedged attempt's trigger and its backup: when the first call is past its hedge's
    delay, start the backup (if the cap allows); if the backup answers while the first call
    still runs, cancel the first call through ``scope``."""

    __slots__ = ("backup", "books", "closed", "handle", "hedge", "key", "leaf", "limit", "n", "scope", "winner", "won")

    def __init__(self, leaf: LeafCall, n: int, limit: float | None) -> None:
        assert leaf.hedge is not None
        self.leaf, self.n, self.limit, self.hedge = leaf, n, limit, leaf.hedge
        self.books = book(leaf.ctx.run_state)
        self.key = leaf.hedge_key()
        self.books.calls += 1
        self.scope: asyncio.Timeout | None = None
        self.handle: asyncio.TimerHandle | None = None
        self.backup: asyncio.Task[tuple[Exception | None, Any]] | None = None
        self.winner: Any = None
        self.won = False  # the backup answered first (its answer may be None)
        self.closed = False

    def admitted(self) -> None:
        """The first call was admitted: its time starts now. A quantile's trigger is watched by
        the book, with the resource's other calls; a fixed delay's by a timer of its own."""
        began = self.leaf.began
        assert began is not None
        self.books.admitted(self.key, began)
        after = self.hedge.after
        if isinstance(after, str):
            self.books.watch(self.hedge, self.key, began, self)
        else:
            self.handle = asyncio.get_running_loop().call_at(began + after, self.fire)

    def fire(self) -> None:
        """Past the trigger: start the backup, if the caps allow."""
        self.handle = None
        if self.closed or self.backup is not None or not self.books.allows(self.hedge):
            return
        leaf = self.leaf
        assert leaf.began is not None
        after = self.hedge.after
        delay = after if not isinstance(after, str) else leaf.ctx.run_state.clock() - leaf.began
        second = _backup(leaf, self.books, self.key, delay)
        if second is not None:
            attempt = _timed(second, self.n, self.limit, self.books, self.key)
            self.backup = asyncio.get_running_loop().create_task(attempt)
            self.backup.add_done_callback(self.answered)

    def answered(self, backup: asyncio.Task[tuple[Exception | None, Any]]) -> None:
        """The backup ended: if it answered while the first call still runs, it wins."""
        if self.closed or backup.cancelled():
            return
        error, value = backup.result()
        if error is None and self.scope is not None:
            self.winner, self.won = value, True
            self.closed = True
            self.scope.reschedule(asyncio.get_running_loop().time())  # cancels the first call

    def close(self) -> None:
        self.closed = True
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


def _backup(leaf: LeafCall, books: Book, key: object, delay: float) -> LeafCall | None:
    backup = leaf.backup()
    if backup is not None:
        # Latency-critical, and capped by the hedge: admitted ahead of calls that have not started.
        backup.priority = True
        backup.on_admitted = lambda: books.admitted(key, backup.began)  # type: ignore[arg-type]
        books.started += 1
        state = leaf.ctx.run_state
        if state.bus.active:
            state.bus.emit(HedgeStarted(state.run_id, leaf.ctx.path, state.now(), _label(key), delay))
    return backup


def _won(leaf: LeafCall, books: Book, key: object) -> None:
    books.won += 1
    state = leaf.ctx.run_state
    if state.bus.active:
        state.bus.emit(HedgeWon(state.run_id, leaf.ctx.path, state.now(), _label(key)))


def _label(key: object) -> str:
    return ",".join(map(str, key)) if isinstance(key, tuple) else str(key)


async def _timed(leaf: LeafCall, n: int, limit: float | None, books: Book, key: object) -> tuple[Exception | None, Any]:
    """One attempt of a hedged call: its error or its value; its latency learnt if it answered."""
    clock = leaf.ctx.run_state.clock
    try:
        value = await _attempt(leaf, n, limit)
    except Exception as exc:  # the hedge decides: the other call may still succeed
        if leaf.began is not None:
            books.ended(key, leaf.began, None)  # how soon a call fails says nothing of answers
        return exc, None
    except asyncio.CancelledError:
        if leaf.began is not None:  # the loser: at least this slow
            books.ended(key, leaf.began, clock() - leaf.began)
        raise
    if leaf.began is not None:
        books.ended(key, leaf.began, clock() - leaf.began)
    return None, value


async def within(seconds: float, coro: Coroutine[Any, Any, Any], what: str) -> Any:
    """Await ``coro`` for at most ``seconds``; our own expiry becomes :class:`TaskTimeout`
    (a ``TimeoutError`` the agent raised itself stays what it is)."""
    scope = asyncio.timeout(seconds)
    try:
        async with scope:
            return await coro
    except TimeoutError:
        if scope.expired():
            raise TaskTimeout(f"{what} timed out after {seconds:g}s") from None
        raise


# -- the kind of leaf an agent object is ----------------------------------------------------


class AgentCall(LeafCall):
    """A leaf agent (a function agent, or any agent object that is not a composite) called on
    one input. It may name ``resources``, and have a ``retry`` and ``timeouts`` of its own.
    The task it runs as starts when its first attempt is admitted."""

    __slots__ = ("agent", "is_backup", "value")

    def __init__(self, agent: Any, value: Any, ctx: Context) -> None:
        super().__init__(ctx, getattr(agent, "resources", ()))
        self.retry = getattr(agent, "retry", None)
        self.timeouts = getattr(agent, "timeouts", None)
        self.hedge = getattr(agent, "hedge", None)
        self.agent = agent
        self.value = value
        self.is_backup = False

    def backup(self) -> AgentCall:
        backup = AgentCall(self.agent, self.value, self.ctx)
        backup.hedge, backup.is_backup = None, True
        return backup

    def hedge_key(self) -> object:
        agent = self.agent
        return self.resources or f"agent:{getattr(agent, 'name', None) or type(agent).__name__}"

    def begin(self) -> None:
        self.ctx.attempt = self.attempt

    def send(self) -> Awaitable[Any]:
        ctx = self.ctx
        if self.attempt == 1 and not self.is_backup:
            state = ctx.run_state
            assert self.began is not None
            ctx.start = self.began - state.started
            if state.bus.tasks:
                state.bus.emit(TaskStarted(state.run_id, ctx.path, ctx.start, ctx.index))
        return ctx.run_state.backend.run(self.agent, self.value, ctx)  # here, or on a process or a node


def run_leaf(agent: Any, value: Any, ctx: Context) -> Coroutine[Any, Any, Any]:
    """Call a leaf agent on ``value`` through the boundary."""
    return call_leaf(AgentCall(agent, value, ctx))
