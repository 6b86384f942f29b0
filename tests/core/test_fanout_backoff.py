"""A fan-out's window and backoffs: an input waiting out a backoff holds no place in the window
(other inputs start in its place), and however many back off, at most two windows of inputs are
in memory at once."""

from __future__ import annotations

import asyncio
import os
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fanfold as ff

SETTINGS = settings(
    max_examples=int(os.environ.get("FANFOLD_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_an_input_waiting_out_a_backoff_leaves_its_place_to_the_next_inputs() -> None:
    # A window of 2. Inputs 0 and 1 are asked to retry on their first attempt; their second
    # attempt needs inputs 2 and 3 to have run. With the backoffs holding the window's two
    # places, 2 and 3 could not start before 0 and 1 end: the bound below would fail them.
    attempts: Counter[int] = Counter()
    others_ran = asyncio.Event()
    ran: set[int] = set()

    @ff.agent
    async def row(i: int) -> int:
        attempts[i] += 1
        if i in (0, 1):
            if attempts[i] == 1:
                raise ff.Retry("busy", after=0.01)
            try:
                await asyncio.wait_for(others_ran.wait(), timeout=10)
            except TimeoutError:
                raise RuntimeError("inputs 2 and 3 never started while 0 and 1 backed off") from None
        ran.add(i)
        if {2, 3} <= ran:
            others_ran.set()
        return i

    result = ff.run_sync(ff.map(row, window=2), range(6), limits=ff.Limits(concurrency=8))
    assert [o.status for o in result.outcomes] == [ff.Status.SUCCEEDED] * 6, [o.error for o in result.outcomes]
    assert result.output == list(range(6))
    assert attempts[0] == attempts[1] == 2


@SETTINGS
@given(
    window=st.integers(1, 4),
    backoffs=st.lists(st.integers(0, 2), max_size=30),
    streamed=st.booleans(),
)
def test_at_most_two_windows_of_inputs_are_in_memory_however_many_back_off(
    window: int, backoffs: list[int], streamed: bool
) -> None:
    # Input i asks to retry backoffs[i] times. Inputs in memory: pulled from the source and not
    # yet ended (counted as each is pulled).
    attempts: Counter[int] = Counter()
    done = 0
    pulled = 0
    most = 0

    def note_pull() -> None:
        nonlocal pulled, most
        pulled += 1
        most = max(most, pulled - done)

    def source() -> object:
        for i in range(len(backoffs)):
            note_pull()
            yield i

    async def streamed_source() -> object:
        for i in range(len(backoffs)):
            note_pull()
            yield i

    @ff.agent
    async def row(i: int) -> int:
        nonlocal done
        attempts[i] += 1
        await asyncio.sleep(0)  # let the others interleave
        if attempts[i] <= backoffs[i]:
            raise ff.Retry("busy", after=0.005)  # long enough for the others to pull inputs
        done += 1
        return i

    inputs = streamed_source() if streamed else source()
    result = ff.run_sync(ff.map(row, window=window), inputs, limits=ff.Limits(concurrency=window))
    assert result.output == list(range(len(backoffs)))
    assert most <= 2 * window
    assert all(attempts[i] == backoffs[i] + 1 for i in range(len(backoffs)))


def test_a_backoff_outside_a_fanout_is_a_plain_wait() -> None:
    # A single input (no fan-out's window above it) backs off as before.
    calls = 0

    @ff.agent
    async def once(x: int) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ff.Retry("busy", after=0)
        return x

    assert ff.run_sync(once, 7).output == 7
    assert calls == 2
