import asyncio
import io

import pytest
from rich.console import Console

import fanfold as ff
from fanfold import events
from fanfold._progress import ProgressDisplay
from fanfold.testing import Action, EventLog, VirtualClock, act


async def hang_odd(x: int) -> int:
    if x % 2:
        await asyncio.Event().wait()
    return x


def test_deadline_returns_partial_results_with_every_item_marked(clock: VirtualClock) -> None:
    result = ff.run_sync(ff.map(hang_odd), range(6), deadline=60)
    assert result.status is ff.RunStatus.PARTIAL
    assert not result.complete
    assert result.outputs == [0, 2, 4]
    timed_out = [o for o in result.outcomes if o.status is ff.Status.TIMED_OUT]
    assert [o.index for o in timed_out] == [1, 3, 5]
    assert all(o.reason == "the run's deadline passed" for o in timed_out)
    assert result.summary.total == 6


def test_deadline_marks_inputs_never_started_as_skipped(clock: VirtualClock) -> None:
    async def forever(x: int) -> int:
        await asyncio.Event().wait()
        return x

    result = ff.run_sync(ff.map(forever, window=2), range(5), deadline=60)
    statuses = [o.status for o in result.outcomes]
    assert statuses[:2] == [ff.Status.TIMED_OUT] * 2
    assert statuses[2:] == [ff.Status.SKIPPED] * 3
    assert sum(result.summary.counts.values()) == 5


def test_nested_fanouts_under_a_deadline_report_every_level(clock: VirtualClock) -> None:
    log = EventLog()
    spec = ff.map(ff.map(hang_odd))
    result = ff.run_sync(spec, [[0, 1], [2, 4]], deadline=60, on_event=log)
    assert [o.status for o in result.outcomes] == [ff.Status.TIMED_OUT, ff.Status.SUCCEEDED]
    inner = {e.path: e.outcome.status for e in log.finished() if e.path.count("/") == 1}
    assert inner == {
        "map[0]/map[0]": ff.Status.SUCCEEDED,
        "map[0]/map[1]": ff.Status.TIMED_OUT,
        "map[1]/map[0]": ff.Status.SUCCEEDED,
        "map[1]/map[1]": ff.Status.SUCCEEDED,
    }


def test_cancel_through_the_handle_returns_partial_results() -> None:
    async def main() -> ff.Result[object]:
        async with ff.start(ff.map(hang_odd), range(4)) as run:
            async for event in run.events():
                if isinstance(event, events.TaskSucceeded) and event.outcome.index == 2:
                    run.cancel()
            return await run.result()

    result = asyncio.run(main())
    assert result.status is ff.RunStatus.CANCELLED
    assert [o.status for o in result.outcomes] == [
        ff.Status.SUCCEEDED,
        ff.Status.CANCELLED,
        ff.Status.SUCCEEDED,
        ff.Status.CANCELLED,
    ]


def test_cancelling_the_caller_cancels_every_descendant() -> None:
    started = 0
    cleaned = 0

    async def slow(x: int) -> int:
        nonlocal started, cleaned
        started += 1
        try:
            await asyncio.Event().wait()
        finally:
            cleaned += 1
        return x

    async def main() -> None:
        task = asyncio.ensure_future(ff.run(ff.map(ff.map(slow)), [[1, 2], [3, 4]]))
        while started < 4:
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert cleaned == 4
        assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []

    asyncio.run(main())


def test_root_failure_raises_run_failed_keeping_the_result() -> None:
    def broken(_: object) -> None:
        raise LookupError("no such thing")

    with pytest.raises(ff.RunFailed, match="LookupError: no such thing") as info:
        ff.run_sync(broken, None)
    assert isinstance(info.value.__cause__, LookupError)
    assert info.value.result.outcomes[0].status is ff.Status.FAILED


def test_fail_fast_cancels_siblings_and_keeps_what_finished() -> None:
    inputs = [Action(value=0), Action(hang=True), Action.failing(), Action(value=3)]
    with pytest.raises(ff.RunFailed) as info:
        ff.run_sync(ff.map(act, policy=ff.FailFast(), window=2), inputs)
    outcomes = info.value.result.outcomes
    assert [o.status for o in outcomes] == [
        ff.Status.SUCCEEDED,
        ff.Status.CANCELLED,
        ff.Status.FAILED,
        ff.Status.SKIPPED,
    ]
    assert outcomes[1].reason == "fail-fast: an input failed"
    assert isinstance(info.value.__cause__, ff.FanoutFailed)


def test_events_come_typed_with_paths_and_in_order() -> None:
    log = EventLog()
    ff.run_sync(ff.map(ff.vote(lambda x: x, n=2, early_stop=False)), [7], on_event=log)
    kinds = [type(e).__name__ for e in log.events]
    assert kinds[0] == "RunStarted"
    assert kinds[-1] == "RunFinished"
    sample = [type(e).__name__ for e in log.events if e.path == "map[0]/vote[1]"]
    assert sample == ["TaskQueued", "TaskStarted", "TaskSucceeded"]
    assert all(e.run_id == log.events[0].run_id for e in log.events)
    times = [e.at for e in log.events]
    assert times == sorted(times)


def test_as_completed_streams_outcomes_with_their_index_and_keeps_none() -> None:
    async def main() -> tuple[list[int], list[int]]:
        indexes, values = [], []
        async for outcome in ff.as_completed(ff.map(lambda x: x * 10), range(20), limits=ff.Limits(concurrency=3)):
            indexes.append(outcome.index)
            values.append(outcome.value)
        return indexes, values

    indexes, values = asyncio.run(main())
    assert sorted(indexes) == list(range(20))
    assert sorted(values) == [i * 10 for i in range(20)]


def test_run_sync_works_inside_a_running_loop_as_in_a_notebook() -> None:
    async def notebook_cell() -> list[int]:
        return ff.run_sync(ff.map(lambda x: x + 1), [1, 2]).output  # type: ignore[no-any-return]

    assert asyncio.run(notebook_cell()) == [2, 3]


def test_summary_adds_up_and_reports_parallelism() -> None:
    result = ff.run_sync(ff.map(act), [Action(value=1), Action.failing(), Action(skip=True)])
    summary = result.summary
    assert summary.total == 3 == sum(summary.counts.values())
    assert summary.counts[ff.Status.SKIPPED] == 1
    assert result.outcomes[2].reason == "scripted skip"
    assert summary.leaf_calls == 3
    assert summary.tasks == 4
    assert summary.busy <= summary.wall * 64
    assert "3 inputs" in str(summary)


@pytest.mark.parametrize(
    ("option", "match"),
    [
        ({"deadline": -1}, "deadline=-1"),
        ({"limits": {"concurrency": 3}}, "pass ff.Limits"),
        ({"retry": 3}, "pass ff.RetryPolicy"),
    ],
)
def test_bad_run_options_name_the_value_and_the_fix(option: dict[str, object], match: str) -> None:
    with pytest.raises(ff.UsageError, match=match):
        ff.run_sync(ff.map(str), ["a"], **option)


def test_progress_display_counts_top_level_inputs() -> None:
    out = io.StringIO()
    display = ProgressDisplay(console=Console(file=out, force_terminal=False, width=100))
    display.start()
    spec = ff.map_reduce(split=lambda n: [Action(value=1), Action.failing(), Action(value=n)], map=act, reduce=len)
    ff.run_sync(spec, 3, on_event=display)
    display.stop()
    assert "3/3" in out.getvalue()
    assert "1 failed" in out.getvalue()


def test_a_raising_event_callback_cannot_lose_the_batch() -> None:
    def broken_callback(event: events.Event) -> None:
        if isinstance(event, events.TaskSucceeded):
            raise ValueError("dashboard down")  # noqa: TRY004 - any bug in a callback

    with pytest.raises(ff.RunFailed, match=r"on_event callback .* raised ValueError: dashboard down") as info:
        ff.run_sync(ff.map(lambda x: x), range(5), on_event=broken_callback)
    assert info.value.result.outputs == [0, 1, 2, 3, 4]
    assert isinstance(info.value.__cause__, ValueError)


def test_a_failing_input_source_keeps_what_was_read_and_names_the_position() -> None:
    def rows():  # type: ignore[no-untyped-def]
        yield 1
        yield 2
        raise OSError("disk gone")

    with pytest.raises(ff.RunFailed, match=r"reading input #2 failed: OSError: disk gone") as info:
        ff.run_sync(ff.map(lambda x: x * 2), rows())
    assert info.value.result.outputs == [2, 4]


def test_as_completed_sync_streams_from_sync_code() -> None:
    seen = sorted((o.index, o.value) for o in ff.as_completed_sync(ff.map(lambda x: x + 1), range(50), buffer=4))
    assert seen == [(i, i + 1) for i in range(50)]


def test_leaving_as_completed_sync_early_cancels_the_run() -> None:
    started: list[int] = []

    async def work(x: int) -> int:
        started.append(x)
        if x >= 3:
            await asyncio.Event().wait()
        return x

    stream = ff.as_completed_sync(ff.map(work), range(1000), limits=ff.Limits(concurrency=5))
    first = next(stream)
    stream.close()  # returns only once the run has ended
    assert first.ok
    assert len(started) < 1000


def test_as_completed_sync_raises_what_the_run_raised() -> None:
    with pytest.raises(ff.RunFailed):
        list(ff.as_completed_sync(ff.map(act, policy=ff.FailFast()), [Action.failing()]))


def test_a_handle_used_outside_its_block_says_how_to_use_it() -> None:
    handle = ff.start(ff.map(str), ["a"])
    with pytest.raises(ff.UsageError, match=r"async with ff.start\(spec, input\) as run"):
        handle.as_completed()


def test_a_results_repr_stays_short_however_many_outcomes() -> None:
    result = ff.run_sync(ff.map(lambda x: x), range(1000))
    assert "outcomes=<1000>" in repr(result)
    assert len(repr(result)) < 300


def test_event_times_count_from_a_wall_clock_start() -> None:
    import time

    log = EventLog()
    before = time.time()
    ff.run_sync(ff.map(str), ["a"], on_event=log)
    (started,) = log.of_type(events.RunStarted)
    assert isinstance(started, events.RunStarted)
    assert before <= started.started_at <= time.time()
