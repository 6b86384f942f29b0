"""Streaming through a run handle keeps counts, not outcomes (unless asked to)."""

from __future__ import annotations

import asyncio

import fanfold as ff


async def same(x: int) -> int:
    return x


def test_streaming_through_the_handle_keeps_no_outcomes() -> None:
    async def main() -> tuple[list[int], ff.Result[object]]:
        seen = []
        async with ff.start(ff.map(same), (i for i in range(500)), limits=ff.Limits(concurrency=7)) as run:
            async for outcome in run.as_completed():
                seen.append(outcome.value)
        return seen, await run.result()

    seen, result = asyncio.run(main())
    assert sorted(seen) == list(range(500))
    assert result.outcomes == []  # streamed, so not kept: memory stays flat
    assert result.summary.total == 500
    assert result.summary.succeeded == 500


def test_streaming_with_keep_true_keeps_every_outcome() -> None:
    async def main() -> ff.Result[object]:
        async with ff.start(ff.map(same), range(50), keep=True) as run:
            assert len([o async for o in run.as_completed()]) == 50
        return await run.result()

    result = asyncio.run(main())
    assert [o.value for o in result.outcomes] == list(range(50))


def test_a_handle_nobody_streams_keeps_every_outcome() -> None:
    async def main() -> ff.Result[object]:
        async with ff.start(ff.map(same), range(30)) as run:
            pass
        return await run.result()

    assert asyncio.run(main()).outputs == list(range(30))


def test_streaming_that_begins_late_drops_what_was_kept() -> None:
    async def main() -> tuple[int, ff.Result[object]]:
        gate = asyncio.Event()

        async def held(x: int) -> int:
            if x >= 5:
                await gate.wait()
            return x

        count = 0
        async with ff.start(ff.map(held), range(40), limits=ff.Limits(concurrency=4)) as run:
            async for event in run.events():  # wait for five outcomes to be kept first
                if isinstance(event, ff.events.TaskSucceeded) and event.path.startswith("map["):
                    count += 1
                    if count == 5:
                        break
            stream = run.as_completed()
            gate.set()
            streamed = len([o async for o in stream])
        return streamed, await run.result()

    streamed, result = asyncio.run(main())
    assert streamed == 35
    assert result.outcomes == []
    assert result.summary.total == 40
