"""The event bus builds per-task events only for listeners that want them: a run's tracer
listens without them, any other listener gets every one."""

from __future__ import annotations

import asyncio

import fanfold as ff
from fanfold import events
from fanfold._events import EventBus


def test_a_listener_that_wants_no_task_events_leaves_them_unbuilt() -> None:
    bus = EventBus()
    assert (bus.active, bus.tasks) == (False, False)
    bus.subscribe(lambda event: None, tasks=False)
    assert (bus.active, bus.tasks) == (True, False)
    bus.subscribe(lambda event: None)
    assert (bus.active, bus.tasks) == (True, True)


def test_dropping_a_broken_listener_says_again_who_wants_task_events() -> None:
    def broken(event: events.Event) -> None:
        raise RuntimeError("no")

    bus = EventBus()
    bus.subscribe(lambda event: None, tasks=False)
    bus.subscribe(broken)
    bus.emit(events.Event("r", "", 0.0))
    assert (bus.active, bus.tasks) == (True, False)
    assert bus.broken is not None


def test_a_stream_wants_task_events() -> None:
    async def main() -> bool:
        bus = EventBus()
        bus.subscribe(lambda event: None, tasks=False)
        bus.stream()
        return bus.tasks

    assert asyncio.run(main())


def test_a_traced_run_still_sends_every_task_event_to_its_callbacks() -> None:
    from opentelemetry.sdk.trace import TracerProvider

    seen: list[events.Event] = []
    recorded = ff.Tracing(tracer_provider=TracerProvider())  # the run's spans are recorded: its tracer listens
    ff.run_sync(ff.map(str.upper), ["a", "b", "c"], trace=recorded, on_event=seen.append)
    assert sum(isinstance(e, events.TaskQueued) for e in seen) == 4  # the map and its three inputs
    assert sum(isinstance(e, events.TaskSucceeded) for e in seen) == 4
