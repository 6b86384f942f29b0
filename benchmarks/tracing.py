"""What tracing costs per task: ``ff.map`` over 100k trivial function tasks, run five ways in the
same process, interleaved, best of a few repeats each:

- ``pre-hook``: the task path without the tracing hook (``execute`` patched to call the task's
  body directly: the hook's one attribute check is the only difference from ``off``);
- ``off``: a run without ``trace`` (what every untraced run pays now);
- ``on, no SDK``: ``trace=True`` with no OpenTelemetry SDK configured (the API's no-op spans:
  fanfold's own cost of being traced, events included);
- ``on, unsampled``: ``trace=True`` with an SDK whose sampler drops the run's trace;
- ``on, every span``: ``trace=True`` with an SDK recording every span (100k ``invoke_agent``
  spans, a ``BatchSpanProcessor`` to an exporter that drops them): mostly the SDK's own cost.

Targets: ``off`` within 1.05x of ``pre-hook``; traced at most 1.5x of ``off`` (checked for the
no-SDK and unsampled runs; the every-span figure is printed and checked too, honestly).

To say how much of the every-span figure is fanfold's, the SDK's own cost of one such span is
measured in the same run, without fanfold: ``start_span`` with the same attributes, made current
and no longer (``attach``/``detach``), two attributes set at its end, ``end``, to the same kind of
processor and exporter. ``off`` plus that floor is the least any tracer could reach recording
one span per task with this SDK; what the every-span run costs above it is fanfold's part.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind

import fanfold as ff
import fanfold._fanout
import fanfold._run
import fanfold._task
from _common import check, info, timed, title

N = 100_000
REPEATS = 3
HOOK_REPEATS = 9  # the hook's cost is a few percent at most: more repeats to see it through the noise
CONCURRENCY = 100


async def f(x: int) -> int:
    return x


class Dropped(SpanExporter):
    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.count += len(spans)
        return SpanExportResult.SUCCESS


def untraced(
    agent: Any,
    value: Any,
    ctx: Any,
    report: Any,
    *,
    key: Any = None,
    timeout: float | None = None,
    delay: float = 0.0,
    stop_reason: Callable[[], str | None] = lambda: None,
) -> Any:
    """The task path before the hook: straight to the body, no check."""
    return fanfold._task._execute(agent, value, ctx, report, key, timeout, delay, stop_reason)


HOOKED = fanfold._task.execute
MODULES = (fanfold._task, fanfold._fanout, fanfold._run)


def use(execute: Any) -> None:
    for module in MODULES:
        module.execute = execute  # type: ignore[attr-defined]


async def fanfold_map(trace: ff.Tracing | bool | None, hook: bool = True) -> None:
    use(HOOKED if hook else untraced)
    try:
        result = await ff.run(ff.map(f), range(N), limits=ff.Limits(concurrency=CONCURRENCY), trace=trace)
    finally:
        use(HOOKED)
    assert result.summary.succeeded == N, result.summary


def sdk_floor() -> float:
    """Seconds per span the SDK takes for a span like a task's, with no fanfold around it."""
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Dropped(), max_queue_size=2 * N))
    tracer = provider.get_tracer("floor")
    started = time.perf_counter()
    for i in range(N):
        attributes = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "f", "fanfold.path": f"map[{i}]",
                      "fanfold.index": i}  # fmt: skip
        span = tracer.start_span("invoke_agent f", kind=SpanKind.INTERNAL, attributes=attributes)
        token = otel_context.attach(trace.set_span_in_context(span))
        otel_context.detach(token)
        span.set_attributes({"fanfold.status": "succeeded", "fanfold.attempts": 1})
        span.end()
    seconds = time.perf_counter() - started
    provider.shutdown()
    return seconds


def main() -> None:
    every = Dropped()
    recording = TracerProvider()
    processor = BatchSpanProcessor(every, max_queue_size=2 * N)
    recording.add_span_processor(processor)
    unsampled = TracerProvider(sampler=ALWAYS_OFF)
    ways: dict[str, Any] = {
        "pre-hook": functools.partial(fanfold_map, None, hook=False),
        "off": functools.partial(fanfold_map, None),
        "on, no SDK": functools.partial(fanfold_map, True),
        "on, unsampled": functools.partial(fanfold_map, ff.Tracing(tracer_provider=unsampled)),
        "on, every span": functools.partial(fanfold_map, ff.Tracing(tracer_provider=recording)),
    }
    title(f"tracing: {N:,} trivial function tasks, us per task (best of {REPEATS}; off, pre-hook: {HOOK_REPEATS})")
    best = dict.fromkeys(ways, float("inf"))
    floor = float("inf")
    for repeat in range(HOOK_REPEATS):
        for name, way in ways.items():
            if repeat < REPEATS or name in ("pre-hook", "off"):
                best[name] = min(best[name], timed(way))
        if repeat < REPEATS:
            floor = min(floor, sdk_floor())
    processor.force_flush()
    us = {name: seconds / N * 1e6 for name, seconds in best.items()}
    for name, value in us.items():
        info(f"{name:>16}: {value:7.2f} us/task  ({value / us['off']:.2f}x off)")
    info(f"spans exported by the every-span runs: {every.count:,} (expected {REPEATS * (N + 1):,})")
    sdk = floor / N * 1e6
    info(f"the SDK alone, one such span (no fanfold): {sdk:.2f} us; the least a tracer recording a span per task "
         f"could reach here: {(us['off'] + sdk) / us['off']:.2f}x off")  # fmt: skip
    info(f"fanfold's own part of the every-span run: {us['on, every span'] - us['off'] - sdk:.2f} us/task")
    check("off / pre-hook (the hook's cost when tracing is off)", us["off"] / us["pre-hook"], 1.05)
    check("on, no SDK / off", us["on, no SDK"] / us["off"], 1.5)
    check("on, unsampled / off", us["on, unsampled"] / us["off"], 1.5)
    check("on, every span recorded / off", us["on, every span"] / us["off"], 1.5)
    recording.shutdown()


if __name__ == "__main__":
    main()
