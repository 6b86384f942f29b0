"""Budget: 500 parallel calls under a token budget worth 100 of them; and every request
counted once under a storm of faults.

fanfold reserves each call's estimated tokens (its prompt, a token per four characters, plus its
max_tokens) before admitting it and settles what it spent after, so a fan-out cannot overshoot
N-fold. Targets: the overshoot is at most what was in flight (here: none, as reservations cover
what calls spend), and every input has an outcome. Beside it, the usual hand-written guard (check
the running total before each call, add to it after) lets every call in flight through.

Then the provider's own count of the requests it received against the run's count
(``summary.usage.requests``), under 429s, 500s, 529s, requests that hang until the attempt
times out and garbled answers: a plain fan-out, a request budget, early-stopped votes (samples
cancelled in flight), hedged races (losers cancelled in flight) and a deadline cutting requests
in flight. Target: the ratio is exactly 1.000 in each, and under the request budget the provider
receives no more than the budget.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import openai
from pydantic_ai.exceptions import ModelAPIError, ModelHTTPError, UnexpectedModelBehavior

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


STORM_ARGS = (
    *("--latency", "0.2", "--latency-sigma", "0.6", "--seed", "5"),
    *("--rate-429", "0.03", "--rate-500", "0.1", "--rate-529", "0.05"),
    *("--rate-timeout", "0.1", "--rate-malformed", "0.1", "--hang", "30"),
)
STORM_CALLS = 300
QUICK = ff.RetryPolicy(
    retry_on=(ModelHTTPError, ModelAPIError, UnexpectedModelBehavior, ff.TaskTimeout), attempts=4, initial=0.05
)


def storm_agent(sim: SimulatorProcess) -> ff.LLMAgent:
    return ff.llm("openai-chat:sim-1", base_url=sim.openai_base_url, api_key="sk", retry=QUICK)


async def storm(sim: SimulatorProcess, case: str) -> ff.Result[Any]:
    agent = storm_agent(sim)
    options: dict[str, Any] = {"limits": ff.Limits(concurrency=64), "timeouts": ff.Timeouts(attempt=1.0)}
    if case == "fan-out":
        return await ff.run(ff.map(agent), prompts(STORM_CALLS), **options)
    if case == "request budget 150":
        return await ff.run(ff.map(agent), prompts(STORM_CALLS), budget=ff.Budget(requests=150), **options)
    if case == "vote, 5 samples":
        return await ff.run(ff.map(ff.vote(agent, 5)), prompts(STORM_CALLS // 5), **options)
    if case == "hedged race":
        return await ff.run(ff.map(ff.race(agent, agent, stagger=0.2)), prompts(STORM_CALLS // 2), **options)
    # Past the fan-out's start: a request admitted on the wire in the first second may wait that
    # long for the loop (every task's request is being built) before it is written, and one
    # cut there is counted though the provider never received it (see the README).
    return await ff.run(ff.map(agent), prompts(STORM_CALLS), deadline=3.0, **options)


def counting(sim: SimulatorProcess) -> bool:
    asyncio.run(ff.run(ff.map(storm_agent(sim)), ["warm-up"]))  # the HTTP stack's first use, not counted
    ok = True
    for case in ("fan-out", "request budget 150", "vote, 5 samples", "hedged race", "a deadline of 3s"):
        sim.reset()
        result = asyncio.run(storm(sim, case))
        received, counted = sim.stats()["requests"], result.summary.usage
        ratio = counted.requests / received if received else (1.0 if not counted.requests else math.inf)
        info(
            f"{case:>20}: the provider received {received:4}, the run counted {counted.requests:4} "
            f"(ratio {ratio:.3f}; {counted.estimated_requests} unanswered, their tokens estimated)"
        )
        ok &= check(f"{case}: |run's count / provider's count - 1|", abs(ratio - 1.0), 0, unit="")
        if case.startswith("request budget"):
            ok &= check(f"{case}: requests beyond the budget", max(0, received - 150), 0, unit="")
    return ok


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

    title(f"counting: the provider's count against the run's, under faults ({STORM_CALLS} requests a case)")
    with SimulatorProcess(*STORM_ARGS) as sim:
        counting(sim)


if __name__ == "__main__":
    main()
