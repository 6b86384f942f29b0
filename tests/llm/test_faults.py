"""Faults do not stall a run: isolated 429s and server errors are retried by their own call
alone, and the first model call does not block the event loop while its client is built."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import openai
import pytest

import fanfold as ff
from fanfold import events
from fanfold._sim import Faults, Latency, SimLimits, SimulatedProvider
from fanfold.testing import EventLog


async def _served(faults: Faults, run: Any) -> tuple[ff.Result[Any], SimulatedProvider]:
    limits = SimLimits(requests_per_minute=60_000)  # a limit far away: headers say room is left
    async with SimulatedProvider(limits=limits, faults=faults, latency=Latency.fixed(0.05)) as sim:
        return await run(sim), sim


def test_an_isolated_429_is_retried_alone_while_the_others_carry_on() -> None:
    log = EventLog()
    faults = Faults(script=lambda n, request: "429" if n == 1 else None)

    def run(sim: SimulatedProvider) -> Any:
        agent = ff.llm("openai-chat:sim-1", base_url=sim.openai_base_url, api_key="sk-test")
        return ff.run(ff.map(agent), [f"q{i}" for i in range(12)], limits=ff.Limits(concurrency=4), on_event=log)

    result, _ = asyncio.run(_served(faults, run))
    assert result.summary.succeeded == 12
    (throttled,) = log.of_type(events.Throttled)
    assert throttled.pause == 0.0  # the provider had room: no pause for everyone
    (retrying,) = log.of_type(events.TaskRetrying)
    assert retrying.delay == pytest.approx(1.0)  # the call itself waits what its answer asked
    calls = log.of_type(events.ModelCalled)
    # Other calls were answered while the throttled one waited out its second.
    assert any(throttled.at < c.at < throttled.at + 1.0 and c.status == "ok" for c in calls)


def test_server_errors_do_not_pause_the_resource() -> None:
    log = EventLog()
    faults = Faults(script=lambda n, request: "500" if n <= 3 else None)

    def run(sim: SimulatedProvider) -> Any:
        agent = ff.llm("openai-chat:sim-1", base_url=sim.openai_base_url, api_key="sk-test")
        return ff.run(ff.map(agent), [f"q{i}" for i in range(8)], on_event=log)

    result, sim = asyncio.run(_served(faults, run))
    assert result.summary.succeeded == 8
    assert log.of_type(events.Throttled) == []
    assert sim.stats.by_status[500] == 3


def test_the_first_model_call_builds_its_client_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    # Building a client (the SDK, its HTTP session and SSL context) takes a good part of a
    # second; on the loop it would hold up every sibling branch.
    built_on: list[int] = []
    original = openai.AsyncOpenAI.__init__

    def recording(self: openai.AsyncOpenAI, *args: Any, **kwargs: Any) -> None:
        built_on.append(threading.get_ident())
        original(self, *args, **kwargs)

    monkeypatch.setattr(openai.AsyncOpenAI, "__init__", recording)

    async def main() -> tuple[int, ff.Result[Any]]:
        async with SimulatedProvider(latency=Latency.fixed(0.01)) as sim:
            agent = ff.llm("openai-chat:sim-1", base_url=sim.openai_base_url, api_key="sk-test")
            return threading.get_ident(), await ff.run(ff.map(agent), ["a", "b", "c"])

    loop_thread, result = asyncio.run(main())
    assert result.summary.succeeded == 3
    assert len(built_on) == 1  # one client per model and run, however many calls ask at once
    assert built_on[0] != loop_thread
