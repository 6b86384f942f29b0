"""Saturation: use a provider's known limits to the brim, without 429s.

1,200 calls against the simulated provider at 1,200 requests/min and 100,000 output tokens/min
(each call reserves its max_tokens of 64, as providers count them), with the limits given to
fanfold. Targets: >= 97% of the binding limit used in the steady state, <= 0.1% of calls
answered 429, none failed. The same calls through naive ``asyncio.gather`` with the OpenAI SDK's
defaults (its own retries, honouring Retry-After) are reported beside it.

Then each provider family's token accounting, on a token-limited provider that fanfold is told
the limits of (``ACCOUNTING_CALLS`` calls each): OpenAI's (the prompt plus ``max_tokens``, or
1,024 where the request sends none, charged on arrival and kept), with and without
``max_tokens``, and Anthropic's (input on arrival, output once known). Targets for each: >= 99%
of the binding limit used in the steady state, <= 0.1% of calls answered 429, none failed.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import openai

import fanfold as ff
from _common import SimulatorProcess, check, info, steady_rate, title

CALLS = int(os.environ.get("CALLS", "1200"))
RPM = 1_200
OTPM = 100_000
MAX_TOKENS = 64
SIM_ARGS = ("--rpm", str(RPM), "--otpm", str(OTPM), "--latency", "0.3", "--latency-sigma", "0.5")
SIM_ARGS += ("--output-tokens", "40", "--seed", "1")


def prompts(n: int) -> list[str]:
    return [f"Summarise ticket #{i}: the export to CSV fails for accounts with over 10k rows." for i in range(n)]


async def with_fanfold(sim: SimulatorProcess) -> tuple[ff.Result[Any], float]:
    agent = ff.llm(
        "openai-chat:sim-1", base_url=sim.openai_base_url, api_key="sk-bench", model_settings={"max_tokens": MAX_TOKENS}
    )
    limit = ff.RateLimit(requests_per_minute=RPM, output_tokens_per_minute=OTPM)
    limits = ff.Limits(resources={"openai-chat:sim-1": limit})  # the default of 64 calls at once
    began = time.perf_counter()
    result = await ff.run(ff.map(agent), prompts(CALLS), limits=limits)
    return result, time.perf_counter() - began


async def naive(sim: SimulatorProcess) -> tuple[int, int, float]:
    async with openai.AsyncOpenAI(base_url=sim.openai_base_url, api_key="sk-bench") as client:

        async def call(prompt: str) -> bool:
            try:
                await client.chat.completions.create(
                    model="sim-1", messages=[{"role": "user", "content": prompt}], max_tokens=MAX_TOKENS
                )
            except openai.APIError:
                return False
            return True

        began = time.perf_counter()
        done = await asyncio.gather(*(call(p) for p in prompts(CALLS)))
        return sum(done), CALLS - sum(done), time.perf_counter() - began


ACCOUNTING_CALLS = int(os.environ.get("ACCOUNTING_CALLS", "300"))
# (label, simulator accounting, model, max_tokens, requests/min, tokens/min)
ACCOUNTING_CASES = (
    ("OpenAI-style, max_tokens=64", "arrival", "openai-chat:sim-1", 64, 600, 45_000),
    ("OpenAI-style, no max_tokens (server reserves 1,024)", "arrival", "openai-chat:sim-1", None, 600, 400_000),
    ("Anthropic-style, usage", "usage", "anthropic:sim-1", 64, 600, 30_000),
)


async def accounting_run(sim: SimulatorProcess, model: str, max_tokens: int | None, rpm: int, tpm: int) -> Any:
    base = sim.url if model.startswith("anthropic") else sim.openai_base_url
    settings: Any = {"max_tokens": max_tokens} if max_tokens else None
    agent = ff.llm(model, base_url=base, api_key="sk-bench", model_settings=settings)
    limits = ff.Limits(resources={model: ff.RateLimit(requests_per_minute=rpm, tokens_per_minute=tpm)})
    return await ff.run(ff.map(agent), prompts(ACCOUNTING_CALLS), limits=limits)


def accounting_case(label: str, accounting: str, model: str, max_tokens: int | None, rpm: int, tpm: int) -> list[bool]:
    title(f"accounting: {label}: {ACCOUNTING_CALLS} calls at {rpm} requests/min and {tpm:,} tokens/min")
    args = ("--rpm", str(rpm), "--tpm", str(tpm), "--latency", "0.3", "--latency-sigma", "0.5")
    with SimulatorProcess(*args, "--output-tokens", "40", "--seed", "3") as sim:
        limits: Any = {"requests_per_minute": rpm, "tokens_per_minute": tpm, "accounting": accounting}
        sim.set_limits(**limits)
        result = asyncio.run(accounting_run(sim, model, max_tokens, rpm, tpm))
        stats = sim.stats()
    ok = max(1, stats["by_status"].get("200", 0))
    per_call_input = stats["input_tokens"] / ok
    # What the provider's limiter charged each call that it served, by its accounting.
    charged = per_call_input + (stats["output_tokens"] / ok if accounting == "usage" else (max_tokens or 1024))
    rate = steady_rate(list(stats["timeline_ok"]))
    request_use, token_use = rate / (rpm / 60), rate * charged / (tpm / 60)
    binding = max(request_use, token_use)
    rejected = stats["by_status"].get("429", 0)
    info(f"fanfold: {result.summary}")
    info(f"429s per second: {stats['timeline_429']}")
    info(
        f"steady state {request_use:.1%} of requests/min, {token_use:.1%} of tokens/min "
        f"({charged:.0f} tokens charged a call); {rejected} answered 429 of {stats['requests']} requests"
    )
    return [
        check("share of the binding limit used, short of 100%", 1 - binding, 0.01, unit=""),
        check("calls answered 429", rejected / ACCOUNTING_CALLS * 100, 0.1, unit="%"),
        check("calls failed", result.summary.failed + result.summary.counts[ff.Status.TIMED_OUT], 0, unit=""),
    ]


def main() -> None:
    title(f"saturation: {CALLS} calls at {RPM} requests/min and {OTPM:,} output tokens/min")
    with SimulatorProcess(*SIM_ARGS) as sim:
        result, wall = asyncio.run(with_fanfold(sim))
        stats = sim.stats()
        rejected = stats["by_status"].get("429", 0)
        request_use = steady_rate(list(stats["timeline_ok"])) / (RPM / 60)
        token_use = steady_rate(list(stats["timeline_ok"])) * MAX_TOKENS / (OTPM / 60)
        binding = max(request_use, token_use)
        info(f"fanfold: {result.summary}")
        info(f"429s per second: {stats['timeline_429']}")
        info(
            f"fanfold: {wall:.1f}s; steady state {request_use:.1%} of requests/min, {token_use:.1%} of "
            f"output tokens/min (reserved); {rejected} answered 429 of {stats['requests']} requests"
        )
        sim.reset()
        time.sleep(3)  # let the provider's buckets refill before the baseline
        ok, failed, naive_wall = asyncio.run(naive(sim))
        naive_stats = sim.stats()
        info(
            f"naive gather, SDK defaults: {ok} of {CALLS} completed ({ok / CALLS:.0%}), {failed} failed, "
            f"{naive_stats['by_status'].get('429', 0)} answered 429 of {naive_stats['requests']} requests, "
            f"{naive_wall:.1f}s"
        )
    check("fanfold's share of the binding limit used, short of 100%", 1 - binding, 0.03, unit="")
    check("calls answered 429", rejected / CALLS * 100, 0.1, unit="%")
    check("calls failed", result.summary.failed + result.summary.counts[ff.Status.TIMED_OUT], 0, unit="")
    for case in ACCOUNTING_CASES:
        accounting_case(*case)


if __name__ == "__main__":
    main()
