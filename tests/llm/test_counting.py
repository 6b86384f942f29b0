"""Every request that left the process is counted once: the simulated provider's own count
(a real HTTP server on loopback) equals the run's ``summary.usage.requests``, whatever became
of the requests: answered, refused (429, 5xx), timed out, answered with a garbled body, or
cancelled in flight (vote samples after the vote was decided, a race's loser, a deadline)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic_ai.exceptions import ModelAPIError, ModelHTTPError, UnexpectedModelBehavior

import fanfold as ff
from fanfold.testing import Faults, Latency, SimRequest, SimulatedProvider

KEY = "sk-test-counting-0123456789"
T = TypeVar("T")

# Transient failures retried quickly, so that a storm of them ends soon.
# Long enough that no answer (10 ms) is cut by it, even behind a stall of the loop (a full
# garbage collection late in a long test session): an answer cut as it arrived is counted by the
# provider and estimated by the run, and the exact comparisons below would not hold. The hung
# requests (the "timeout" fault) are cut by it.
ATTEMPT = 2.0
QUICK = ff.RetryPolicy(
    retry_on=(ModelHTTPError, ModelAPIError, UnexpectedModelBehavior, ff.TaskTimeout), attempts=4, initial=0.01
)


def served(body: Callable[[SimulatedProvider], Awaitable[T]], **options: Any) -> tuple[T, SimulatedProvider]:
    """Run ``body`` against a simulated provider serving in the same event loop."""
    options.setdefault("answer", "yes")
    options.setdefault("latency", Latency.fixed(0.01))

    async def main() -> tuple[T, SimulatedProvider]:
        async with SimulatedProvider(**options) as sim:
            await warm_up(sim)
            return await body(sim), sim

    return asyncio.run(main())


async def warm_up(sim: SimulatedProvider) -> None:
    """One request first, its count then forgotten: a request counts from the moment it is
    admitted to go on the wire, and the first one of a process waits there for the HTTP
    stack's first use (imports, a resolver thread), on a busy machine long enough for a
    deadline or a timeout to cut it before it reached the provider."""
    once = ff.RetryPolicy(retry_on=Exception, attempts=1)
    await ff.run(ff.map(model(sim, retry=once)), ["warm-up"], timeouts=ff.Timeouts(attempt=1.0))
    sim.reset_stats()


def model(sim: SimulatedProvider, **options: Any) -> ff.LLMAgent:
    return ff.llm("openai-chat:sim-1", base_url=sim.openai_base_url, api_key=KEY, **options)


def hang_first(n: int) -> Callable[[int, SimRequest], str | None]:
    """A fault script: each prompt's first ``n`` requests hang (the server holds them until the
    client goes away), the others are answered. The hung ones have arrived before any answer
    that could end the pattern waiting on them: they are in flight when it is cancelled."""
    seen: Counter[str] = Counter()

    def script(number: int, request: SimRequest) -> str | None:
        seen[request.last_user_text] += 1
        return "timeout" if seen[request.last_user_text] <= n else None

    return script


def assert_counted(usage: ff.Usage, sim: SimulatedProvider) -> None:
    stats = sim.stats
    assert usage.requests == stats.requests
    # What the provider answered is counted as it said; only the rest is estimated.
    assert usage.tokens - usage.estimated_tokens == stats.input_tokens + stats.output_tokens
    assert 0 <= usage.estimated_requests <= usage.requests


def test_a_fault_storm_counts_every_request_the_provider_received() -> None:
    storm = Faults(rate_429=0.05, rate_500=0.15, rate_timeout=0.1, rate_malformed=0.15, hang=30.0)
    result, sim = served(
        lambda sim: ff.run(
            ff.map(model(sim, retry=QUICK)),
            [f"q{i}" for i in range(40)],
            limits=ff.Limits(concurrency=8),
            timeouts=ff.Timeouts(attempt=ATTEMPT),
        ),
        faults=storm,
        seed=7,
    )
    faults = sim.stats.faults
    assert faults.get("timeout", 0) > 0  # the storm had requests that hung
    assert faults.get("malformed", 0) > 0  # and garbled answers
    assert_counted(result.summary.usage, sim)
    # A request timed out or garbled has no usage from the provider: its tokens are estimated.
    assert result.summary.usage.estimated_requests == faults["timeout"] + faults["malformed"]


def test_vote_samples_cancelled_in_flight_are_counted() -> None:
    # The first two samples of each vote to arrive hang; the other three answer "yes", which
    # decides the vote: the two in flight are cancelled, and were sent all the same.
    result, sim = served(
        lambda sim: ff.run(ff.map(ff.vote(model(sim), 5)), ["a", "b", "c"], limits=ff.Limits(concurrency=15)),
        faults=Faults(script=hang_first(2)),
    )
    assert result.output == ["yes", "yes", "yes"]
    assert sim.stats.requests == 15
    assert_counted(result.summary.usage, sim)
    assert result.summary.usage.estimated_requests == 6


def test_a_race_loser_cancelled_in_flight_is_counted() -> None:
    # Each prompt's first request hangs; the hedge sent after the stagger wins.
    result, sim = served(
        lambda sim: ff.run(ff.map(ff.race(model(sim), model(sim), stagger=0.05)), ["a", "b"]),
        faults=Faults(script=hang_first(1)),
    )
    assert result.output == ["yes", "yes"]
    assert sim.stats.requests == 4
    assert_counted(result.summary.usage, sim)
    assert result.summary.usage.estimated_requests == 2


def test_requests_a_deadline_cuts_in_flight_are_counted() -> None:
    # Every request hangs; the deadline cancels those in flight.
    result, sim = served(
        lambda sim: ff.run(
            ff.map(model(sim)), [f"q{i}" for i in range(20)], limits=ff.Limits(concurrency=6), deadline=0.5
        ),
        faults=Faults(rate_timeout=1.0, hang=30.0),
    )
    counts = result.summary.counts
    assert counts[ff.Status.TIMED_OUT] + counts[ff.Status.SKIPPED] == 20  # cut, or never started
    assert sim.stats.requests > 0
    assert_counted(result.summary.usage, sim)
    assert result.summary.usage.estimated_requests == sim.stats.requests


def test_a_request_budget_bounds_what_the_provider_receives_under_faults() -> None:
    # Each request reserves one of the 60 before it goes, and settles as one, whatever became
    # of it: the provider receives at most 60, and the run counts each of them.
    storm = Faults(rate_500=0.2, rate_timeout=0.15, rate_malformed=0.2, hang=30.0)
    result, sim = served(
        lambda sim: ff.run(
            ff.map(model(sim, retry=QUICK)),
            [f"q{i}" for i in range(60)],
            limits=ff.Limits(concurrency=8),
            timeouts=ff.Timeouts(attempt=ATTEMPT),
            budget=ff.Budget(requests=60),
        ),
        faults=storm,
        seed=3,
    )
    assert sim.stats.requests == 60
    assert_counted(result.summary.usage, sim)
    assert result.summary.counts[ff.Status.SKIPPED] > 0


def test_a_request_cut_before_it_was_written_is_not_counted() -> None:
    # A server that accepts the connections and never answers the TLS handshake: the requests
    # are admitted and reach aiohttp, and the run is cancelled before a byte of HTTP is written.
    # They never left the process: the provider could not count (or charge) them.
    async def main() -> ff.Result[Any]:
        held: list[asyncio.StreamWriter] = []
        both = asyncio.Event()

        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            held.append(writer)  # keep the connection open, say nothing
            if len(held) == 2:
                both.set()

        server = await asyncio.start_server(hold, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        agent = ff.llm("openai-chat:sim-1", base_url=f"https://127.0.0.1:{port}/v1", api_key=KEY)
        async with server, ff.start(ff.map(agent), ["a", "b"]) as run:
            await both.wait()
            run.cancel()
            result = await run.result()
            for writer in held:
                writer.close()
        return result

    result = asyncio.run(main())
    assert result.summary.counts[ff.Status.CANCELLED] == 2
    usage = result.summary.usage
    assert (usage.requests, usage.tokens, usage.cost) == (0, 0, 0.0)
