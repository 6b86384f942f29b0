"""Hedged model requests against the simulated provider over real HTTP: the backup is a request
like any other, the loser is cancelled through the normal path, and the provider's count of
requests is the run's."""

from __future__ import annotations

import asyncio
from typing import Any

import fanfold as ff
from fanfold.testing import Latency, SimulatedProvider

KEY = "sk-test-do-not-leak-0123456789"


# The loser of a hedge is cancelled in flight, and counted: the provider and the run agree.
def test_hedged_requests_win_on_a_slow_tail_and_every_request_is_counted() -> None:
    # One request in five is 200x slower (2 s); a backup goes out 0.1 s after admission.
    latency = Latency(median=0.01, distribution="fixed", sigma=0.0, slow_fraction=0.2, slow_factor=200.0)

    async def main() -> tuple[Any, int]:
        async with SimulatedProvider(latency=latency, seed=3) as sim:
            model = ff.llm(
                "openai-chat:sim-1",
                base_url=sim.openai_base_url,
                api_key=KEY,
                hedge=ff.Hedge(after=0.1, max_extra=0.5),
            )
            result = await ff.run(ff.map(model), [f"q{i}" for i in range(30)])
            return result, sim.stats.requests

    result, served = asyncio.run(main())
    assert result.summary.succeeded == 30
    summary = result.summary
    assert summary.hedges > 0
    assert summary.hedges_won > 0
    # Every request that reached the provider is counted, the losers' too. A backup cancelled
    # right after its admission on the wire (its first call answered meanwhile) may never reach
    # the provider; the client counts it all the same (estimated, the safe side for budgets).
    assert 30 + summary.hedges_won <= served <= summary.usage.requests <= 30 + summary.hedges
