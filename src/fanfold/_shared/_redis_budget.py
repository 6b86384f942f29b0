"""A run's ledger whose budget is shared through Redis by every process of a namespace.

A call reserves from the shared budget before it is admitted (one script, one round trip) and
settles after (a queued write, sent in order with the releases). What this process spent stays
in :attr:`Ledger.spent`, for its own summary; what all of them spent and hold is in Redis. The
first process to find the budget short marks it exhausted there and tells the others, who stop
at their next call (or, under ``in_flight="cancel"``, cancel the calls they have in flight).
"""

from __future__ import annotations

import asyncio
import itertools
import uuid

from fanfold._errors import BudgetExhausted
from fanfold._shared._link import Link
from fanfold._usage import Budget, Ledger, Usage


class RedisLedger(Ledger):
    """The ledger of a run whose budget is its namespace's, shared in Redis."""

    def __init__(self, budget: Budget, link: Link) -> None:
        super().__init__(budget)
        self._link = link
        self._keys = (f"{link.prefix}:budget", f"{link.prefix}:budget:held")
        # Reservations by their amounts: a settlement names its amounts, and reservations of the
        # same amounts are interchangeable.
        self._held: dict[tuple[float, float], list[str]] = {}
        self._me = uuid.uuid4().hex[:12]
        self._ids = itertools.count()
        link.listeners.append(self._heard)

    async def reserve(self, tokens: float, cost: float) -> None:
        budget = self.budget
        assert budget is not None
        link = self._link
        await link.open()
        bounds = tuple(-1 if bound is None else bound for bound in (budget.requests, budget.tokens, budget.cost))
        patient = int(budget.in_flight == "finish")
        while True:
            if self.exhausted is not None:
                raise BudgetExhausted(f"the run's budget is exhausted ({self.exhausted})")
            rid = f"{self._me}:{next(self._ids)}"
            since = link.generation
            args = (rid, link.lease_ms, link.idle_ms, link.channel, tokens, cost, *bounds, patient)
            try:
                verdict = await link.call("RESERVE", self._keys, args)
            except asyncio.CancelledError:
                link.write("SETTLE", self._keys, (rid, link.channel, link.idle_ms, 0, 0, 0))  # it may have been made
                raise
            answer = _text(verdict[0])
            if answer == "ok":
                self._held.setdefault((tokens, cost), []).append(rid)
                link.leases.setdefault(self._keys[1], set()).add(rid)
                return
            if answer == "exhausted":
                self._exhaust(self._describe(_text(verdict[1]), float(verdict[2])))
                continue
            # It fits once calls in flight (here or elsewhere) settle: until one does, or a lease lapses.
            lapse = float(verdict[1]) / 1000
            await link.changed(since, (lapse if lapse >= 0 else link.lease_ms / 1000) + 0.001)

    def settle(self, tokens: float, cost: float, spent: Usage) -> None:
        self.spent = self.spent + spent
        held = self._held.get((tokens, cost))
        if not held:
            return
        rid = held.pop()
        link = self._link
        link.leases[self._keys[1]].discard(rid)
        link.write("SETTLE", self._keys, (rid, link.channel, link.idle_ms, spent.requests, spent.tokens, spent.cost))

    def _heard(self, message: str) -> None:
        if message.startswith("x ") and self.exhausted is None:  # another process exhausted the budget
            measure, _, spent = message[2:].partition(" ")
            self._exhaust(self._describe(measure, float(spent)))

    def _describe(self, measure: str, spent: float) -> str:
        budget = self.budget
        assert budget is not None
        where = f"shared in namespace {self._link.prefix.removeprefix('fanfold:')}"
        if measure == "requests":
            return f"requests: {spent:.0f} of {budget.requests} spent, {where}"
        if measure == "tokens":
            return f"tokens: {spent:,.0f} of {budget.tokens:,} spent, {where}"
        return f"cost: ${spent:.4f} of ${budget.cost:.4f} spent, {where}"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
