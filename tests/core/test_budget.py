"""Budgets: a call that can never fit in what is left is skipped alone, and the rest go on;
the budget ends the spending only once it is spent. Against the simulated provider over real
HTTP, and the ledger itself (property-based)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fanfold as ff
from fanfold._usage import Ledger
from fanfold.testing import Latency, SimulatedProvider

EXAMPLES = int(os.environ.get("FANFOLD_EXAMPLES", "60"))
KEY = "sk-test-budget-0123456789"
T = TypeVar("T")

HUGE = "x" * 800_000  # ~200,000 tokens by the default estimate (a token per four characters)
SMALL = [f"small {i}" for i in range(8)]


def served(body: Callable[[SimulatedProvider], Awaitable[T]]) -> tuple[T, SimulatedProvider]:
    async def main() -> tuple[T, SimulatedProvider]:
        async with SimulatedProvider(answer="ok", latency=Latency.fixed(0)) as sim:
            return await body(sim), sim

    return asyncio.run(main())


def model(sim: SimulatedProvider) -> ff.LLMAgent:
    return ff.llm("openai-chat:sim-1", base_url=sim.openai_base_url, api_key=KEY)


def test_one_oversized_input_is_skipped_alone_and_the_rest_go_on() -> None:
    result, sim = served(
        lambda sim: ff.run(
            ff.map(model(sim)), [HUGE, *SMALL], budget=ff.Budget(tokens=100_000), limits=ff.Limits(concurrency=1)
        )
    )
    first, *rest = result.outcomes
    assert first.status is ff.Status.SKIPPED
    assert first.reason is not None
    assert first.reason.startswith("larger than the budget left: needs 200,")
    assert first.reason.endswith(" tokens, 100,000 left")
    assert [o.status for o in rest] == [ff.Status.SUCCEEDED] * 8
    assert sim.stats.requests == 8 == result.summary.usage.requests


def test_an_oversized_input_midway_is_skipped_alone() -> None:
    result, sim = served(
        lambda sim: ff.run(
            ff.map(model(sim)),
            [*SMALL[:4], HUGE, *SMALL[4:]],
            budget=ff.Budget(tokens=100_000),
            limits=ff.Limits(concurrency=1),
        )
    )
    statuses = [o.status for o in result.outcomes]
    assert statuses == [ff.Status.SUCCEEDED] * 4 + [ff.Status.SKIPPED] + [ff.Status.SUCCEEDED] * 4
    assert (result.outcomes[4].reason or "").startswith("larger than the budget left")
    assert sim.stats.requests == 8


@pytest.mark.parametrize("in_flight", ["finish", "cancel"])
def test_a_spent_budget_still_skips_every_input_after_it(in_flight: Any) -> None:
    # Each call reserves its input estimate plus 512 tokens of output: three fit in 1,600.
    result, sim = served(
        lambda sim: ff.run(
            ff.map(model(sim)),
            SMALL,
            budget=ff.Budget(tokens=1_600, in_flight=in_flight),
            limits=ff.Limits(concurrency=1),
        )
    )
    statuses = [o.status for o in result.outcomes]
    succeeded = statuses.count(ff.Status.SUCCEEDED)
    assert succeeded >= 3
    assert statuses == [ff.Status.SUCCEEDED] * succeeded + [ff.Status.SKIPPED] * (8 - succeeded)
    skipped = [o for o in result.outcomes if o.status is ff.Status.SKIPPED]
    assert all("the run's budget is exhausted (tokens: " in (o.reason or "") for o in skipped)
    assert sim.stats.requests == succeeded


def test_an_oversized_call_does_not_cancel_calls_in_flight() -> None:
    # Under in_flight="cancel", a call that can never fit is refused alone: it does not end the
    # spending, so nothing in flight is cancelled.
    result, sim = served(
        lambda sim: ff.run(
            ff.map(model(sim)),
            [*SMALL[:3], HUGE, *SMALL[3:]],
            budget=ff.Budget(tokens=100_000, in_flight="cancel"),
            limits=ff.Limits(concurrency=4),
        )
    )
    statuses = [o.status for o in result.outcomes]
    assert statuses.count(ff.Status.SUCCEEDED) == 8
    assert statuses[3] is ff.Status.SKIPPED
    assert sim.stats.requests == 8


# -- the ledger itself ------------------------------------------------------------------------


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    budget=st.integers(0, 2_000),
    calls=st.lists(st.tuples(st.integers(1, 3_000), st.floats(0, 1)), max_size=30),
)
def test_the_ledger_refuses_alone_what_cannot_fit_and_ends_only_when_spent(
    budget: int, calls: list[tuple[int, float]]
) -> None:
    """Calls one at a time (nothing in flight): each reserves ``tokens`` and spends a share of it."""

    async def main() -> None:
        ledger = Ledger(ff.Budget(tokens=budget))
        granted: list[int] = []
        for tokens, share in calls:
            left = budget - ledger.spent.tokens
            was_exhausted = ledger.exhausted is not None
            refused: str | None = None
            try:
                await ledger.reserve(tokens, 0.0)
            except ff.BudgetExhausted as exc:
                refused = str(exc)
            if refused is not None:
                assert tokens > left or was_exhausted  # only what does not fit is refused
                if ledger.exhausted is None:  # refused alone: the budget is not spent
                    assert refused == f"larger than the budget left: needs {tokens:,} tokens, {left:,} left"
                    assert left > 0
                    assert not granted or min(granted) <= left
                else:  # spent: nothing the size of a call granted fits any more
                    assert left <= 0 or (granted and min(granted) > left)
                    assert "the run's budget is exhausted" in refused
                continue
            assert not was_exhausted
            assert tokens <= left  # never granted beyond what is left
            granted.append(tokens)
            ledger.settle(tokens, 0.0, ff.Usage(requests=1, input_tokens=int(tokens * share)))
        assert ledger.spent.tokens <= budget

    asyncio.run(main())
