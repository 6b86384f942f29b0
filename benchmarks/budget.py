"""Budget: 500 parallel calls under a token budget worth 100 of them.

fanfold reserves each call's estimated tokens (its prompt, a token per four characters, plus its
max_tokens) before admitting it and settles what it spent after, so a fan-out cannot overshoot
N-fold. Targets: the overshoot is at most what was in flight (here: none, as reservations cover
what calls spend), and every input has an outcome. Beside it, the usual hand-written guard (check
the running total before each call, add to it after) lets every call in flight through.
"""

from __future__ import annotations

import asyncio
from typing import Any

import openai

import fanfold as ff
from _common import SimulatorProcess, check, gated_gather, info, title

CALLS = 500
WORTH = 100
MAX_TOKENS = 50
SIM_ARGS = ("--latency", "0.3", "--latency-sigma", "0.4", "--output-tokens", "40", "--seed", "3")


def prompts(n: int) -> list[str]:
    return [f"Grade essay #{i}: 'The industrial revolution changed how people worked and lived.'" for i in range(n)]


async def one_call_tokens(sim: SimulatorProcess) -> int:
    agent = ff.llm(
        "openai-chat:sim-1", base_url=sim.openai_base_url, api_key="sk", model_settings={"max_tokens": MAX_TOKENS}
    )
    result = await ff.run(agent, prompts(1)[0])
    return result.summary.usage.tokens


async def with_fanfold(sim: SimulatorProcess, budget: int) -> ff.Result[Any]:
    agent = ff.llm(
        "openai-chat:sim-1", base_url=sim.openai_base_url, api_key="sk", model_settings={"max_tokens": MAX_TOKENS}
    )
    limits = ff.Limits(concurrency=CALLS)
    return await ff.run(ff.map(agent), prompts(CALLS), limits=limits, budget=ff.Budget(tokens=budget))


async def hand_guarded(sim: SimulatorProcess, budget: int) -> int:
    spent = 0
    async with openai.AsyncOpenAI(base_url=sim.openai_base_url, api_key="sk", max_retries=0) as client:

        async def call(prompt: str) -> None:
            nonlocal spent
            if spent >= budget:
                return
            answer = await client.chat.completions.create(
                model="sim-1", messages=[{"role": "user", "content": prompt}], max_tokens=MAX_TOKENS
            )
            assert answer.usage is not None
            spent += answer.usage.total_tokens

        await gated_gather(call, prompts(CALLS), CALLS)
    return spent


def main() -> None:
    title(f"budget: {CALLS} parallel calls under a token budget worth {WORTH}")
    with SimulatorProcess(*SIM_ARGS) as sim:
        per_call = asyncio.run(one_call_tokens(sim))
        budget = per_call * WORTH
        sim.reset()
        result = asyncio.run(with_fanfold(sim, budget))
        stats = sim.stats()
        sim.reset()
        naive_spent = asyncio.run(hand_guarded(sim, budget))
    spent = result.summary.usage.tokens
    counts = result.summary.counts
    info(f"a call spends {per_call} tokens; the budget is {budget:,} ({WORTH} calls)")
    info(f"fanfold: {result.summary}")
    info(
        f"fanfold: {stats['requests']} calls reached the provider, {spent:,} tokens spent "
        f"({spent / budget:.1%} of the budget), {counts[ff.Status.SKIPPED]} inputs skipped with the reason"
    )
    info(f"hand-written guard: {naive_spent:,} tokens spent ({naive_spent / budget:.0%} of the budget)")
    overshoot = max(0, spent - budget)
    check("fanfold's overshoot, in calls' worth of tokens", overshoot / per_call, 0, unit="")
    check("inputs without an outcome", CALLS - sum(counts.values()), 0, unit="")


if __name__ == "__main__":
    main()
