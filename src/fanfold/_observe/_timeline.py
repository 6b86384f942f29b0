"""A run's timeline: one self-contained HTML file (inline CSS and SVG, nothing fetched to view it).

Each task is a bar on a lane (lanes assigned greedily, so there are as many as tasks ran at once),
coloured by its outcome; a bar with a dark outline was retried, an orange mark at its start says
the provider answered one of its calls with a 429; hovering a bar shows its path, key, tokens,
cost and error. A task's model requests are thinner bars inside its bar, one per attempt, from
admission to answer (a pale lead-in: the wait for admission), coloured by how each ended; a 429
is followed by a hatched orange stretch, the pause it put on its resource; a hedge's backup
request sits in the lower half, outlined in violet, with a violet diamond at its start, filled
when the backup won (a star above it). Hovering a request shows its task's path, its model,
tokens and cost. Dashed lines mark where each attempt at the run began (a resume), red ones each
attempt's deadline; the bars of earlier attempts are paler. Above :data:`DENSE_ABOVE` bars the
lanes are grouped into bands and time into bins, and each cell shows how many tasks of each
status it held (a heatmap), so a 10,000-task run stays readable and the file stays small.

Built from the journal alone, so it works for finished, crashed and resumed runs::

    fanfold runs timeline RUN_ID -o run.html
    await ff.timeline(run_id, "run.html", store="runs.db")

or from a finished run's :class:`~fanfold.Result` (its top fan-out's tasks only: a run with a
store journals the nested ones too): ``await ff.timeline(result, "run.html")``.
"""

from __future__ import annotations

import asyncio
import html
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fanfold._errors import UsageError
from fanfold._observe._spans import (
    STATUSES,
    Span,
    SpanReader,
    assign_lanes,
    attempt_offsets,
    bin_spans,
    span_of_outcome,
)
from fanfold._outcome import Call
from fanfold._records import RunRecord, Store, open_store
from fanfold._redact import redact
from fanfold._run import Result

DENSE_ABOVE = 2_000  # bars; above this the timeline is a heatmap
COLOURS = {"succeeded": "#2e9d57", "failed": "#d64541", "timed_out": "#e08e0b", "cancelled": "#8e8e8e",
           "skipped": "#8da0cb"}  # fmt: skip
WIDTH, LEFT, TOP = 1100, 90, 30  # the plot's width, and the margins for lane labels and the axis

_CSS = """
body{font:13px system-ui,sans-serif;margin:16px;color:#222}
h1{font-size:17px;margin:0 0 4px} .meta{color:#555;margin:0 0 10px}
.legend span{display:inline-block;margin-right:14px} .legend i{display:inline-block;width:11px;height:11px;
margin-right:4px;vertical-align:-1px;border-radius:2px}
svg{background:#fafafa;border:1px solid #ddd} .axis{stroke:#bbb} text{font-size:11px;fill:#555}
.bar{stroke-width:0} .retried{stroke:#222;stroke-width:1.2} .earlier{opacity:.5} .bar:hover{stroke:#000;stroke-width:2}
.attempt{stroke:#555;stroke-dasharray:4 3} .deadline{stroke:#d00;stroke-width:1.5}
.m429{fill:#f28c00} .call{stroke-width:0} .call:hover{stroke:#000;stroke-width:1.5} .wait{fill:#000;opacity:.12}
.hedge{stroke:#7b3fb5;stroke-width:1.2;stroke-dasharray:3 1} .hedge-mark{fill:#fff;stroke:#7b3fb5;stroke-width:1.2}
.hedge-mark.won{fill:#7b3fb5} .pause{fill:url(#hatch)}
"""
# A model request's bar, by how it ended ("ok", "429", anything else: an error, or cancelled).
CALL_COLOURS = {"ok": "#16592f", "429": "#f28c00", "CancelledError": "#b0b0b0"}
CALL_ERROR = "#8f1d1a"
_DEFS = ("<defs><pattern id='hatch' width='4' height='4' patternUnits='userSpaceOnUse' patternTransform='rotate(45)'>"
         "<rect width='2' height='4' fill='#f28c00' fill-opacity='.7'/></pattern></defs>")  # fmt: skip


async def write_timeline(
    run: str | Result[Any],
    path: str | os.PathLike[str] = "timeline.html",
    *,
    store: Store | str | os.PathLike[str] | None = None,
) -> Path:
    """Write a run's timeline, one self-contained HTML file, to ``path``, and return its path.

    ``run`` is a run id (its journal read from ``store``: a :class:`~fanfold.Store`, opened if
    need be and left open, or what ``ff.run(store=...)`` takes, opened and closed here), or a
    finished run's :class:`~fanfold.Result` (its top fan-out's tasks, with their model requests).

    >>> import pathlib, tempfile
    >>> result = ff.run_sync(ff.map(str.upper), ["a", "b"])
    >>> asyncio.run(ff.timeline(result, pathlib.Path(tempfile.mkdtemp()) / "run.html")).name
    'run.html'

    From a store, for any run it holds (finished, crashed or resumed)::

        await ff.timeline("3f9c0a1b2d4e", "run.html", store="runs.db")
    """
    if isinstance(run, Result):
        if store is not None:
            raise UsageError("ff.timeline(result, store=...): a Result holds its tasks; pass a run id with store=")
        record = RunRecord(run.run_id, "run", status=run.status.value, attempts=({"started": 0.0},))
        return await _write(render(record, [span_of_outcome(o) for o in run.outcomes]), path)
    if not isinstance(run, str) or not run:
        raise UsageError(f"ff.timeline({run!r}): pass a run id (a str, with store=...) or a finished run's ff.Result")
    if store is None:
        raise UsageError(f"ff.timeline({run!r}): a run id needs the store that journaled it; pass store='runs.db'")
    if isinstance(store, Store):
        await store.open()
        return await timeline(store, run, path)
    async with open_store(store) as opened:
        return await timeline(opened, run, path)


async def timeline(store: Store, run_id: str, path: str | os.PathLike[str]) -> Path:
    """Write the timeline of run ``run_id`` (in ``store``, opened by the caller) to ``path``."""
    record = await store.get_run(run_id)
    if record is None:
        raise UsageError(f"{store.url} has no run {run_id!r}; `fanfold runs list` shows the runs it has")
    reader = SpanReader(record)
    spans = reader.read([entry async for entry in store.entries(run_id)])
    return await _write(render(record, spans), path)


async def _write(text: str, path: str | os.PathLike[str]) -> Path:
    target = Path(path)
    try:
        await asyncio.to_thread(target.write_text, text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write the timeline to {str(target)!r}: {exc.strerror or exc}") from exc
    return target


def render(record: RunRecord, spans: Sequence[Span]) -> str:
    """The timeline page of a run, as HTML text."""
    lanes = assign_lanes(spans)
    offsets = attempt_offsets(record)
    end = max([s.end or s.start or 0.0 for s in spans] + [c.end + c.pause for s in spans for c in s.calls]
              + [offsets[-1], 1e-3])  # fmt: skip
    started = sum(1 for lane in lanes if lane >= 0)
    dense = started > DENSE_ABOVE
    body = _heatmap(spans, lanes, end) if dense else _bars(spans, lanes, end)
    svg, height = body
    marks = _marks(record, offsets, end, height)
    mode = f"heatmap: {started:,} bars binned" if dense else f"{started:,} bars"
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>fanfold run {_e(record.run_id)}</title><style>{_CSS}</style></head><body>"
        f"<h1>run {_e(record.run_id)} ({_e(record.name)}): {_e(record.status)}</h1>"
        f"<p class='meta'>{_e(_meta(record, spans, lanes))}; {mode}</p>{_legend(dense)}"
        f"<svg id='timeline' xmlns='http://www.w3.org/2000/svg' width='{WIDTH + LEFT + 30}' "
        f"height='{height + TOP + 10}' data-mode='{'heatmap' if dense else 'bars'}'>"
        f"{_DEFS}{_axis(end, height)}{svg}{marks}</svg>"
        "</body></html>"
    )


def _e(text: object) -> str:
    return html.escape(redact(str(text)), quote=True)


def _x(t: float, end: float) -> float:
    return LEFT + WIDTH * t / end


def _meta(record: RunRecord, spans: Sequence[Span], lanes: Sequence[int]) -> str:
    counts = dict.fromkeys(STATUSES, 0)
    for span in spans:
        counts[span.status] = counts.get(span.status, 0) + 1
    tokens, cost = sum(s.tokens for s in spans), sum(s.cost for s in spans)
    calls = [c for s in spans for c in s.calls]
    # The tasks' own retries, and their model requests' (a hedge's backup is no retry).
    retries = sum(max(0, s.attempts - 1) for s in spans) + sum(c.attempt > 1 and not c.hedge for c in calls)
    throttled = sum(s.throttled for s in spans)
    hedges, won = sum(c.hedge for c in calls), sum(c.won for c in calls)
    parts = ", ".join(f"{n:,} {s}" for s, n in counts.items() if n) or "no tasks journaled"
    return (f"{len(spans):,} tasks: {parts}; {max(lanes, default=-1) + 1} lanes; {len(calls):,} model requests; "
            f"{tokens:,} tokens, ${cost:.4f}; {retries:,} retries, {throttled:,} calls answered 429; "
            f"{hedges:,} hedges ({won:,} won); "
            f"{len(record.attempts) or 1} attempt(s) at the run")  # fmt: skip


def _legend(dense: bool) -> str:
    items = "".join(f"<span><i style='background:{c}'></i>{s.replace('_', ' ')}</span>" for s, c in COLOURS.items())
    extra = ("<span>cell opacity: tasks in that band and time bin</span>" if dense else
             "<span><i style='border:1.5px solid #222'></i>retried</span>"
             "<span><i class='m429' style='background:#f28c00'></i>a 429</span>"
             "<span><i style='background:#16592f;height:5px'></i>model request</span>"
             "<span><i style='background:repeating-linear-gradient(45deg,#f28c00 0 2px,#fff 2px 4px)'></i>429 pause"
             "</span><span><i style='border:1.5px dashed #7b3fb5'></i>hedge (backup request)</span>"
             "<span><i style='background:#7b3fb5;transform:rotate(45deg) scale(.7)'></i>hedge won</span>")  # fmt: skip
    return (f"<p class='legend'>{items}{extra}<span><i style='border-left:2px dashed #555'></i>attempt at the run"
            "</span><span><i style='border-left:2px solid #d00'></i>deadline</span></p>")  # fmt: skip


def _axis(end: float, height: float) -> str:
    step = _nice_step(end / 10)
    ticks, t = [], 0.0
    while t <= end + 1e-9:
        x = _x(t, end)
        ticks.append(f"<line class='axis' x1='{x:.1f}' x2='{x:.1f}' y1='{TOP - 4}' y2='{TOP + height}'/>"
                     f"<text x='{x + 2:.1f}' y='{TOP - 8}'>{t:g}s</text>")  # fmt: skip
        t = round(t + step, 9)
    return "".join(ticks)


def _nice_step(raw: float) -> float:
    for scale in (0.001, 0.01, 0.1, 1, 10, 60, 600, 3600, 36000):
        for m in (1, 2, 5):
            if m * scale >= raw:
                return m * scale
    return raw


def _tooltip(span: Span) -> str:
    when = "never started" if span.start is None else f"{span.start:.3f}s to {(span.end or span.start):.3f}s"
    lines = [span.path, f"key: {span.key}", f"{span.status.replace('_', ' ')}, {when}",
             f"tries: {span.attempts}; attempt at the run: {span.run_attempt}",
             f"tokens: {span.tokens:,}; cost: ${span.cost:.6f}; 429s: {span.throttled}"]  # fmt: skip
    if span.error:
        lines.append(span.error[:300])
    return _e("\n".join(lines))


def _bars(spans: Sequence[Span], lanes: Sequence[int], end: float) -> tuple[str, float]:
    lane_count = max(lanes, default=-1) + 1
    tallest = 30.0 if any(s.calls for s in spans) else 18.0  # room for the model requests inside a bar
    lane_h = max(3.0, min(tallest, 640 / max(lane_count, 1)))
    last = max((s.run_attempt for s in spans), default=1)
    out: list[str] = []
    if lane_h >= 9:
        out.extend(f"<text x='4' y='{TOP + (i + 0.75) * lane_h:.1f}'>lane {i + 1}</text>" for i in range(lane_count))
    for span, lane in zip(spans, lanes, strict=True):
        if lane < 0 or span.start is None:
            continue
        x = _x(span.start, end)
        w = max(1.0, _x(span.end if span.end is not None else span.start, end) - x)
        y = TOP + lane * lane_h + 1
        classes = "bar" + (" retried" if span.attempts > 1 else "") + (" earlier" if span.run_attempt < last else "")
        out.append(f"<rect class='{classes}' data-status='{span.status}' x='{x:.1f}' y='{y:.1f}' width='{w:.1f}' "
                   f"height='{lane_h - 2:.1f}' fill='{COLOURS.get(span.status, '#999')}'>"
                   f"<title>{_tooltip(span)}</title></rect>")  # fmt: skip
        if span.throttled:
            out.append(f"<path class='m429' d='M{x:.1f} {y:.1f}l5 0l-5 5z'><title>{span.throttled} call(s) answered "
                       "429: admission paused, then resumed</title></path>")  # fmt: skip
        if span.calls:
            out.append(_calls(span, y, lane_h - 2, end))
    return "".join(out), lane_count * lane_h


def _calls(span: Span, y: float, h: float, end: float) -> str:
    """The task's model requests, inside its bar: first tries and retries in the upper half, a
    hedge's backups in the lower one."""
    out: list[str] = []
    half = h / 2
    # A 429's request waited until its next attempt began (its Retry-After, or the resource's pause).
    resumed = {(c.attempt, c.hedge): c.start for c in span.calls}
    for call in span.calls:
        top = y + (half if call.hedge else 0.0) + h * 0.1
        ch = half - h * 0.15
        x0, xa, x1 = _x(call.start, end), _x(call.admitted, end), _x(call.end, end)
        if xa - x0 >= 1:
            out.append(f"<rect class='wait' x='{x0:.1f}' y='{top:.1f}' width='{xa - x0:.1f}' height='{ch:.1f}'/>")
        colour = CALL_COLOURS.get(call.status, CALL_ERROR)
        classes = "call" + (" hedge" if call.hedge else "") + (" won" if call.won else "")
        out.append(f"<rect class='{classes}' data-status='{_e(call.status)}' x='{xa:.1f}' y='{top:.1f}' "
                   f"width='{max(1.0, x1 - xa):.1f}' height='{ch:.1f}' fill='{colour}'>"
                   f"<title>{_call_tooltip(span, call)}</title></rect>")  # fmt: skip
        if call.status == "429":
            waited = resumed.get((call.attempt + 1, call.hedge), call.end + call.pause) - call.end
            xp = _x(call.end + max(waited, call.pause), end)
            out.append(f"<rect class='pause' data-seconds='{waited:.3f}' x='{x1:.1f}' y='{top:.1f}' "
                       f"width='{max(1.0, xp - x1):.1f}' height='{ch:.1f}'><title>429: the request waited "
                       f"{waited:.2f}s before trying again (the resource paused {call.pause:.2f}s)"
                       "</title></rect>")  # fmt: skip
        if call.hedge:
            d = max(2.5, min(5.0, ch / 2))
            cy = top + ch / 2
            mark = "hedge-mark won" if call.won else "hedge-mark"
            what = "won: it answered first, the request it hedged was cancelled" if call.won else "did not win"
            out.append(f"<path class='{mark}' d='M{xa:.1f} {cy - d:.1f}l{d:.1f} {d:.1f}l-{d:.1f} {d:.1f}l-{d:.1f} "
                       f"-{d:.1f}z'><title>hedge: a backup request sent at {call.admitted:.3f}s; {what}"
                       "</title></path>")  # fmt: skip
    return "".join(out)


def _call_tooltip(span: Span, call: Call) -> str:
    kind = "hedge backup" + (" (won)" if call.won else "") if call.hedge else f"attempt {call.attempt}"
    lines = [span.path, f"model: {call.model} ({call.resource})", f"{kind}: {call.status}",
             f"queued {call.start:.3f}s, admitted {call.admitted:.3f}s, ended {call.end:.3f}s",
             f"tokens: {call.tokens:,}; cost: ${call.cost:.6f}"]  # fmt: skip
    if call.pause:
        lines.append(f"429: its resource paused {call.pause:.2f}s")
    return _e("\n".join(lines))


def _heatmap(spans: Sequence[Span], lanes: Sequence[int], end: float) -> tuple[str, float]:
    grid = bin_spans(spans, lanes, end, bands=min(16, max(lanes) + 1), bins=160)
    band_h = max(14.0, min(40.0, 640 / grid.bands))
    most = max((sum(cell.values()) for row in grid.counts for cell in row), default=1) or 1
    cell_w = WIDTH / grid.bins
    out: list[str] = []
    for band, row in enumerate(grid.counts):
        first = band * grid.lanes_per_band + 1
        out.append(f"<text x='4' y='{TOP + (band + 0.6) * band_h:.1f}'>lanes {first}-{first + grid.lanes_per_band - 1}"
                   "</text>")  # fmt: skip
        for b, cell in enumerate(row):
            total = sum(cell.values())
            if not total:
                continue
            t0 = b * grid.width
            label = ", ".join(f"{n:,} {s.replace('_', ' ')}" for s, n in cell.items())
            out.append(f"<g class='cell' data-count='{total}'><title>{t0:.2f}s to {t0 + grid.width:.2f}s, lanes "
                       f"{first}-{first + grid.lanes_per_band - 1}: {label}</title>")  # fmt: skip
            y = TOP + band * band_h + 1
            opacity = 0.35 + 0.65 * total / most
            for status in STATUSES:  # stacked: each status's share of the cell's height
                n = cell.get(status, 0)
                if not n:
                    continue
                h = (band_h - 2) * n / total
                out.append(f"<rect class='bin' data-status='{status}' x='{_x(t0, end):.1f}' y='{y:.1f}' "
                           f"width='{cell_w:.2f}' height='{h:.2f}' fill='{COLOURS[status]}' "
                           f"fill-opacity='{opacity:.2f}'/>")  # fmt: skip
                y += h
            out.append("</g>")
    return "".join(out), grid.bands * band_h


def _marks(record: RunRecord, offsets: Sequence[float], end: float, height: float) -> str:
    out = []
    for number, offset in enumerate(offsets[1:], 2):
        x = _x(offset, end)
        out.append(f"<line class='attempt' x1='{x:.1f}' x2='{x:.1f}' y1='{TOP}' y2='{TOP + height}'/>"
                   f"<text x='{x + 3:.1f}' y='{TOP + 12}'>attempt {number} (resumed)</text>")  # fmt: skip
    deadline = _deadline(record)
    if deadline is not None:
        for offset in offsets:
            if offset + deadline <= end * 1.05:
                x = _x(min(offset + deadline, end), end)
                out.append(f"<line class='deadline' x1='{x:.1f}' x2='{x:.1f}' y1='{TOP}' y2='{TOP + height}'>"
                           f"<title>deadline: {deadline:g}s</title></line>")  # fmt: skip
    return "".join(out)


def _deadline(record: RunRecord) -> float | None:
    text = (record.config.get("options") or {}).get("deadline")
    try:
        return None if text is None else float(text)
    except (TypeError, ValueError):
        return None
