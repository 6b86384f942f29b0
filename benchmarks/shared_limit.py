"""One limit across processes: four processes share one provider key through Redis.

Four OS processes each send CALLS model calls (default 80) to one simulated provider at 600
requests/min and 45,000 tokens/min, which charges each request its prompt plus its max_tokens on
arrival, as OpenAI does. Each process is given the provider's limits. With the shared Redis
limiter, together they use the binding limit to the brim (target: >= 97% in the steady state,
<= 0.5% of calls answered 429, none failed); with in-process governors (the baseline, measured
in the same run) each assumes it owns the whole limit, and they overshoot it fourfold. Then a
process holding every slot is killed (-9): the others send their first call within the lease TTL
and run at the full limit. Last, what one admission costs: round trips and microseconds, against
the in-process limiter.

    python benchmarks/shared_limit.py          # needs Redis on 127.0.0.1:6379 (REDIS_URL to change)
    CALLS=200 python benchmarks/shared_limit.py
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any

import fanfold as ff
from _common import SimulatorProcess, check, info, steady_rate, title
from fanfold._limits import ConcurrencyLimiter

CALLS = int(os.environ.get("CALLS", "60"))
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
PROCESSES = 4
RPM, TPM = 600, 45_000
MAX_TOKENS = 64
TICKET = (
    "the export to CSV fails for accounts with over ten thousand rows; the job times out after "
    "five minutes, the file is empty, and support has had four complaints this week from the "
    "largest customers, two of whom threatened to leave."
)
LEASE = 3.0
MODEL = "openai-chat:sim-1"
SIM_ARGS = ("--rpm", str(RPM), "--tpm", str(TPM), "--latency", "0.3", "--latency-sigma", "0.3")
SIM_ARGS += ("--output-tokens", "40", "--seed", "1")


# -- one process of the fleet -------------------------------------------------------------------


def child(config: dict[str, Any]) -> None:
    if config.get("hold"):  # take every slot of the model's resource and keep it until killed
        slots = config["rate"]["concurrency"]

        @ff.agent(resources=[MODEL])
        async def holder(i: int) -> None:
            print("holding", flush=True)
            await asyncio.Event().wait()

        ff.run_sync(ff.map(holder), range(slots), limits=ff.Limits(resources={MODEL: slots}), limiter=config["limiter"])
        return
    limits = ff.Limits(resources={MODEL: ff.RateLimit(**config["rate"])})
    agent = ff.llm(MODEL, base_url=config["base_url"], api_key="sk-bench", model_settings={"max_tokens": MAX_TOKENS})
    prompts = [
        f"Summarise ticket #{config['name']}-{i}: the CSV export fails for large accounts." for i in range(CALLS)
    ]
    began = time.perf_counter()
    result = ff.run_sync(ff.map(agent), prompts, limits=limits, limiter=config["limiter"])
    summary = result.summary
    failed = summary.failed + summary.counts[ff.Status.TIMED_OUT]
    figures = {"succeeded": summary.succeeded, "failed": failed, "seconds": time.perf_counter() - began}
    print(json.dumps(figures), flush=True)


def spawn(config: dict[str, Any]) -> subprocess.Popen[str]:
    command = [sys.executable, __file__, "--child", json.dumps(config)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def fleet(sim: SimulatorProcess, limiter: str | None, rate: dict[str, Any]) -> tuple[list[dict[str, Any]], float]:
    began = time.perf_counter()
    config = {"base_url": sim.openai_base_url, "limiter": limiter, "rate": rate}
    children = [spawn({**config, "name": f"p{i}"}) for i in range(PROCESSES)]
    results = [json.loads(c.communicate()[0]) for c in children]
    return results, time.perf_counter() - began


def storm(sim: SimulatorProcess, rate: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The baseline: the same processes, each with its own in-process governor, stopped after
    ``seconds`` (left alone they take many times as long: a 429 spends quota too)."""
    config = {"base_url": sim.openai_base_url, "limiter": None, "rate": rate}
    children = [spawn({**config, "name": f"b{i}"}) for i in range(PROCESSES)]
    with contextlib.suppress(subprocess.TimeoutExpired):
        children[0].wait(seconds)
    stats = sim.stats()
    for child in children:
        child.kill()
        child.communicate()
    return stats


# -- the figures ----------------------------------------------------------------------------------


def use_of_limit(stats: dict[str, Any]) -> tuple[float, float]:
    """The steady state's share of the request limit and of the token limit (the provider
    charges the prompt plus max_tokens on arrival, and credits back the unused output)."""
    requests = steady_rate(list(stats["timeline_ok"])) / (RPM / 60)
    return requests, steady_rate(list(stats["timeline_tokens"])) / (TPM / 60)


def report(name: str, stats: dict[str, Any], results: list[dict[str, Any]], wall: float) -> tuple[float, float, int]:
    requests_use, tokens_use = use_of_limit(stats)
    rejected = stats["by_status"].get("429", 0)
    calls = sum(r["succeeded"] for r in results)
    failed = sum(r["failed"] for r in results)
    info(
        f"{name}: {calls} of {CALLS * len(results)} calls succeeded in {wall:.1f}s; steady state "
        f"{requests_use:.1%} of requests/min, {tokens_use:.1%} of tokens/min; "
        f"{rejected} answered 429 of {stats['requests']} requests; {failed} failed; "
        f"peak {stats['peak_concurrency']} at once"
    )
    return max(requests_use, tokens_use), rejected / max(1, stats["requests"]), failed


async def admission_cost(n: int) -> tuple[float, float, float]:
    """Microseconds per acquire + release, in-process and on Redis, and Redis round trips per
    admission on the hot path."""
    limits = ff.Limits(resources={"db": 10})
    admission = ff.Admission(resources=("db",))
    local = ConcurrencyLimiter(limits)
    began = time.perf_counter()
    for _ in range(n):
        if not local.try_acquire(admission):
            await local.acquire(admission)
        local.release(admission)
    in_process = (time.perf_counter() - began) / n * 1e6
    async with ff.RedisLimiter(REDIS_URL, namespace=f"bench-{uuid.uuid4().hex[:8]}", limits=limits) as shared:
        link = shared._link
        calls = 0
        call = link.call

        async def counted(*args: Any) -> Any:
            nonlocal calls
            calls += 1
            return await call(*args)

        link.call = counted  # type: ignore[method-assign]
        await shared.acquire(admission)  # connect, load the scripts
        shared.release(admission)
        calls = 0
        began = time.perf_counter()
        for _ in range(n):
            if not shared.try_acquire(admission):
                await shared.acquire(admission)
            shared.release(admission)
        await link.flush()
        on_redis = (time.perf_counter() - began) / n * 1e6
    return in_process, on_redis, calls / n


def main() -> None:
    title(f"one limit across {PROCESSES} processes: {CALLS} calls each at {RPM} requests/min and {TPM:,} tokens/min")
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    shared = f"{REDIS_URL}?namespace={namespace}&lease={LEASE}"
    rate = {"requests_per_minute": RPM, "tokens_per_minute": TPM}
    with SimulatorProcess(*SIM_ARGS) as sim:
        results, wall = fleet(sim, shared, rate)
        use, rejected, failed = report("shared Redis limiter", sim.stats(), results, wall)
        sim.reset()
        time.sleep(3)  # let the provider's buckets refill before the baseline
        base = storm(sim, rate, wall)
        base_use = max(use_of_limit(base))
        base_rejected = base["by_status"].get("429", 0) / max(1, base["requests"])
        info(
            f"in-process governors (baseline), stopped after {wall:.0f}s: {sum(base['timeline_ok'])} of "
            f"{CALLS * PROCESSES} calls succeeded; steady state {base_use:.1%} of the binding limit; "
            f"{base['by_status'].get('429', 0)} answered 429 of {base['requests']} requests; "
            f"peak {base['peak_concurrency']} at once"
        )
        info(f"429s: {rejected:.2%} of requests shared, {base_rejected:.2%} with in-process governors")

        title(f"a process killed holding every slot (lease {LEASE:g}s)")
        sim.reset()
        time.sleep(3)
        held = {"concurrency": 4, "requests_per_minute": RPM, "tokens_per_minute": TPM}
        killed_ns = f"{REDIS_URL}?namespace={namespace}-kill&lease={LEASE}"
        victim = spawn({"limiter": killed_ns, "rate": held, "hold": True})
        assert victim.stdout is not None
        for _ in range(held["concurrency"]):
            assert victim.stdout.readline().strip() == "holding"
        survivors = [
            spawn({"base_url": sim.openai_base_url, "limiter": killed_ns, "rate": held, "name": f"s{i}"})
            for i in range(2)
        ]
        time.sleep(4.0)  # the survivors are up (imports take a while) and waiting on the victim's slots
        victim.kill()
        killed_at = time.time()
        victim.communicate()
        survived = [json.loads(c.communicate()[0]) for c in survivors]
        stats = sim.stats()
        first_call = stats["first_arrival"] - killed_at
        after_use, _, after_failed = report("survivors", stats, survived, time.time() - killed_at)
        info(f"first call {first_call:.2f}s after the kill")

    title("what one admission costs")
    in_process, on_redis, trips = asyncio.run(admission_cost(2_000))
    info(f"in-process limiter: {in_process:.1f} us per admission")
    info(f"Redis limiter: {on_redis:.1f} us per admission, {trips:.2f} round trips on the hot path")
    info(f"Redis / in-process: {on_redis / in_process:.0f}x")

    check("shared limiter's share of the binding limit used, short of 100%", 1 - use, 0.03, unit="")
    check("calls answered 429 with the shared limiter", rejected * 100, 0.5, unit="%")
    check("calls failed with the shared limiter", failed, 0, unit="")
    info(f"baseline share of requests answered 429: {base_rejected:.1%} (a storm: each process owns the limit)")
    check("seconds from the kill to the survivors' first call, over the lease", first_call - LEASE, 0.0, unit="s")
    check("survivors' share of the binding limit used, short of 100%", 1 - after_use, 0.03, unit="")
    check("survivors' calls failed", after_failed, 0, unit="")
    check("Redis round trips per admission on the hot path", trips, 1.0, unit="")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(json.loads(sys.argv[2]))
    else:
        main()
