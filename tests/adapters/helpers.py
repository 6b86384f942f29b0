"""Other frameworks' agents, really installed, against the simulated provider on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import fanfold as ff
from fanfold.testing import Latency, SimulatedProvider

KEY = "sk-test-adapters-0123456789"
T = TypeVar("T")


def served(body: Callable[[SimulatedProvider, Any], Awaitable[T]], **options: Any) -> tuple[T, SimulatedProvider]:
    """Run ``body(sim, client)`` against a simulated provider in the same event loop, with a
    governed OpenAI client (closed afterwards) on model ``openai:sim-1``."""
    options.setdefault("latency", Latency.fixed(0.05))
    client_options = options.pop("client", {})

    async def main() -> tuple[T, SimulatedProvider]:
        async with SimulatedProvider(**options) as sim:
            client = ff.openai_client("openai:sim-1", base_url=sim.openai_base_url, api_key=KEY, **client_options)
            async with client:
                return await body(sim, client), sim

    return asyncio.run(main())


def anthropic(sim: SimulatedProvider, **options: Any) -> Any:
    return ff.anthropic_client("anthropic:sim-1", base_url=sim.anthropic_base_url, api_key=KEY, **options)
