"""One process of the multi-process tests and benchmark: an LLM fan-out against the simulated
provider, governed by the limiter it is given; prints its summary as JSON.

    python _child.py '{"base_url": ..., "calls": 20, "limiter": "redis://...", "rate": {...}}'
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

MODEL = "openai-chat:sim-1"


def hold(config: dict[str, Any]) -> None:
    """Take ``calls`` slots of the model's resource and hold them until killed, saying so."""
    import asyncio

    import fanfold as ff

    @ff.agent(resources=[MODEL])
    async def holder(i: int) -> None:
        print("holding", flush=True)
        await asyncio.Event().wait()

    limits = ff.Limits(resources={MODEL: config["calls"]})
    ff.run_sync(ff.map(holder), range(config["calls"]), limits=limits, limiter=config["limiter"])


def main(config: dict[str, Any]) -> dict[str, Any]:
    import fanfold as ff

    settings = {"max_tokens": config.get("max_tokens", 16)}
    agent = ff.llm(MODEL, base_url=config["base_url"], api_key="sk-test-child-0123456789", model_settings=settings)
    limits = ff.Limits(concurrency=config.get("concurrency", 64), resources={MODEL: ff.RateLimit(**config["rate"])})
    budget = ff.Budget(**config["budget"]) if config.get("budget") else None
    prompts = [f"{config.get('name', 'call')} {i}" for i in range(config["calls"])]
    began = time.perf_counter()
    result = ff.run_sync(ff.map(agent), prompts, limits=limits, limiter=config.get("limiter"), budget=budget)
    summary = result.summary
    return {
        "succeeded": summary.succeeded,
        "failed": summary.failed,
        "skipped": summary.counts[ff.Status.SKIPPED],
        "throttled": summary.usage.throttled,
        "requests": summary.usage.requests,
        "seconds": time.perf_counter() - began,
    }


if __name__ == "__main__":
    given = json.loads(sys.argv[1])
    if given.get("hold"):
        hold(given)
    else:
        print(json.dumps(main(given)), flush=True)
