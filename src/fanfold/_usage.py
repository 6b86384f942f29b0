"""What model calls spend (tokens, requests, cost), per call, per task and per run, and the
budget that bounds it.

A :class:`Budget` is checked *before* a call is admitted: the call reserves what it may spend
(its input estimate plus its output cap), and settles what it did spend afterwards. So a
fan-out of a thousand calls cannot overshoot a budget a thousand-fold: the most it can overshoot
is what the calls in flight spend beyond their reservations.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, fields
from typing import Literal

from fanfold._errors import BudgetExhausted, UsageError


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens, requests and cost (in dollars) spent by model calls.

    Every request that left the process is counted once in ``requests``, whatever became of
    it: answered, refused (429, 5xx), timed out, cancelled in flight, or answered with a body
    that could not be read. The tokens and cost of an answered request are the provider's
    word (none for an error status); those of a request the provider never answered usably
    (timed out, cancelled, garbled, connection lost) are not known, and are *estimated* as
    what it reserved: its input estimate and its output allowance. ``estimated_requests``
    counts those requests and ``estimated_tokens`` their tokens (included in
    ``input_tokens``/``output_tokens``).

    ``output_retries`` counts answers sent back to the model because they failed validation;
    ``throttled`` counts calls the provider answered with a 429 (or an overload).

    >>> print(ff.Usage(requests=1, input_tokens=120, output_tokens=30) + ff.Usage(requests=1, input_tokens=80))
    2 requests, 200 tokens in, 30 out
    >>> print(ff.Usage(requests=1, input_tokens=120, output_tokens=512, estimated_requests=1, estimated_tokens=632))
    1 requests, 120 tokens in, 512 out (1 unanswered, 632 tokens estimated)
    """

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    output_retries: int = 0
    throttled: int = 0
    estimated_requests: int = 0
    estimated_tokens: int = 0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.requests + other.requests,
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cost + other.cost,
            self.output_retries + other.output_retries,
            self.throttled + other.throttled,
            self.estimated_requests + other.estimated_requests,
            self.estimated_tokens + other.estimated_tokens,
        )

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))

    def __str__(self) -> str:
        text = f"{self.requests} requests, {self.input_tokens:,} tokens in, {self.output_tokens:,} out"
        if self.cost:
            text += f", ${self.cost:.4f}"
        if self.estimated_requests:
            text += f" ({self.estimated_requests} unanswered, {self.estimated_tokens:,} tokens estimated)"
        return text

    def as_dict(self) -> dict[str, int | float]:
        """The usage as JSON-ready data (every field, by name)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class Price:
    """Dollars per million tokens, to override or fill in the built-in price table.

    >>> ff.Price(input=0.25, output=2.0).of(1_000_000, 100_000)
    0.45
    """

    input: float
    output: float

    def __post_init__(self) -> None:
        for name in ("input", "output"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise UsageError(f"Price({name}={value!r}): pass dollars per million tokens, >= 0")

    def of(self, input_tokens: float, output_tokens: float) -> float:
        return round((input_tokens * self.input + output_tokens * self.output) / 1_000_000, 12)


@dataclass(frozen=True, slots=True, kw_only=True)
class Budget:
    """What a run may spend on model calls: ``tokens`` (input plus output), ``cost`` (dollars)
    and ``requests``. Calls reserve before they are admitted and settle after.

    A call larger than what is left is not made, and its task ends ``skipped`` ("larger than
    the budget left"); the inputs after it go on. Once nothing the size of a call already made
    fits, the budget is spent: the call is not made, and its task ends ``skipped`` with the
    reason, as does every input not yet started. Every request that left the process spends,
    whatever became of it (see :class:`Usage`): the requests counted never exceed ``requests``.
    With ``in_flight="finish"`` (the default), calls in flight finish, and a call that would
    fit once they have (they may spend less than they reserved) waits for them; with
    ``in_flight="cancel"``, the first call that does not fit ends the spending: calls in flight
    are cancelled and end ``skipped`` too (each still spends what it reserved).

    >>> ff.Budget(tokens=1_000_000, cost=5.0)
    Budget(tokens=1000000, cost=5.0, requests=None, in_flight='finish')
    """

    tokens: int | None = None
    cost: float | None = None
    requests: int | None = None
    in_flight: Literal["finish", "cancel"] = "finish"

    def __post_init__(self) -> None:
        for name in ("tokens", "cost", "requests"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0):
                raise UsageError(f"Budget({name}={value!r}): pass a number >= 0, or None for no bound")
        if self.in_flight not in ("finish", "cancel"):
            raise UsageError(f"Budget(in_flight={self.in_flight!r}): pass 'finish' or 'cancel'")


class Ledger:
    """A run's spending against its budget: what is spent, what is reserved, what is in flight."""

    def __init__(self, budget: Budget | None) -> None:
        self.budget = budget
        self.spent = Usage()
        self._reserved_tokens = 0.0
        self._reserved_cost = 0.0
        self._reserved_requests = 0
        self.exhausted: str | None = None
        self._scopes: set[asyncio.Timeout] = set()
        self._settled = asyncio.Event()
        self._waiting = 0
        # The smallest request granted yet (none: infinite): while one its size fits in what is
        # left, a larger request that does not is refused alone; once none does, the budget is spent.
        self._least_tokens = math.inf
        self._least_cost = math.inf

    async def reserve(self, tokens: float, cost: float) -> None:
        """Reserve one request's worth. A request that fits only once calls in flight have
        settled (they may spend less than they reserved) waits for them. One larger than what
        is left of the budget, whatever they spend, raises :class:`BudgetExhausted` for itself
        alone ("larger than the budget left"), and the requests after it go on; unless the
        budget is spent, which ends the spending: no request left fits, not even one the size
        of the smallest it has granted (then this one and every later one raises, naming the
        limit)."""
        budget = self.budget
        if budget is None:
            return
        # Under "cancel", the first call that does not fit ends the spending; under "finish",
        # calls in flight finish and what they leave is used.
        patient = budget.in_flight == "finish"
        while True:
            if self.exhausted is None:
                beyond = self._beyond(budget, tokens, cost)
                if beyond is not None and not beyond[1]:
                    raise BudgetExhausted(beyond[0])  # this request alone
                short = beyond[0] if beyond is not None else None if patient else self._short(budget, tokens, cost)
                if short is not None:
                    self._exhaust(short)
            if self.exhausted is not None:
                raise BudgetExhausted(f"the run's budget is exhausted ({self.exhausted})")
            if self._short(budget, tokens, cost) is None:
                break
            self._waiting += 1
            try:
                await self._settled.wait()
            finally:
                self._waiting -= 1
        self._reserved_requests += 1
        self._reserved_tokens += tokens
        self._reserved_cost += cost
        self._least_tokens = min(self._least_tokens, tokens)
        self._least_cost = min(self._least_cost, cost)

    def _beyond(self, budget: Budget, tokens: float, cost: float) -> tuple[str, bool] | None:
        """If this request does not fit in what is left of the budget (whatever the calls in
        flight spend): why, and whether the budget is spent rather than this request too large."""
        spent = self.spent
        if budget.requests is not None and spent.requests + 1 > budget.requests:
            return f"requests: {spent.requests} of {budget.requests} spent", True
        if budget.tokens is not None:
            left = budget.tokens - spent.tokens
            if tokens > left:
                if left <= 0 or left < self._least_tokens < math.inf:
                    return f"tokens: {spent.tokens:,} of {budget.tokens:,} spent", True
                return f"larger than the budget left: needs {tokens:,.0f} tokens, {left:,.0f} left", False
        if budget.cost is not None:
            dollars = budget.cost - spent.cost
            if cost > dollars:
                if dollars <= 0 or dollars < self._least_cost < math.inf:
                    return f"cost: ${spent.cost:.4f} of ${budget.cost:.4f} spent", True
                return f"larger than the budget left: needs ${cost:.4f}, ${dollars:.4f} left", False
        return None

    def _short(self, budget: Budget, tokens: float, cost: float) -> str | None:
        """What the budget is short of for this request, counting the reservations in flight."""
        spent = self.spent
        if budget.requests is not None and spent.requests + 1 + self._reserved_requests > budget.requests:
            return f"requests: {spent.requests} of {budget.requests} spent"
        if budget.tokens is not None and spent.tokens + tokens + self._reserved_tokens > budget.tokens:
            return f"tokens: {spent.tokens:,} of {budget.tokens:,} spent"
        if budget.cost is not None and spent.cost + cost + self._reserved_cost > budget.cost:
            return f"cost: ${spent.cost:.4f} of ${budget.cost:.4f} spent"
        return None

    def settle(self, tokens: float, cost: float, spent: Usage) -> None:
        """Replace a reservation by what the call spent."""
        self.spent = self.spent + spent
        if self.budget is not None:
            self._reserved_requests -= 1
            self._reserved_tokens -= tokens
            self._reserved_cost -= cost
            if self._waiting:
                self._settled.set()  # wake every waiter to look again, then arm anew
                self._settled = asyncio.Event()

    def _exhaust(self, what: str) -> None:
        self.exhausted = what
        if self.budget is not None and self.budget.in_flight == "cancel":
            loop = asyncio.get_running_loop()
            for scope in self._scopes:
                scope.reschedule(loop.time())

    def track(self, scope: asyncio.Timeout) -> None:
        """Register an in-flight call's scope, to be expired if the budget runs out mid-call."""
        self._scopes.add(scope)

    def untrack(self, scope: asyncio.Timeout) -> None:
        self._scopes.discard(scope)
