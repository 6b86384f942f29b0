"""The run timeline: one self-contained HTML file, built from the journal, opened in a real browser."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.observe.conftest import needs_browser, open_browser

import fanfold as ff
from fanfold._observe._spans import Span, assign_lanes
from fanfold._observe._timeline import DENSE_ABOVE, timeline
from fanfold._records import Entry, RunRecord, open_store


def _span(start: float | None, end: float | None, status: str = "succeeded", path: str = "map[0]") -> Span:
    return Span(path, path, status, start, end, 1, 1, 0, 0.0, 0, None)


@given(st.lists(st.tuples(st.floats(0, 100), st.floats(0.01, 10)), max_size=60))
def test_lanes_never_overlap_and_are_as_few_as_the_most_at_once(times: list[tuple[float, float]]) -> None:
    spans = [_span(start, start + length) for start, length in times]
    lanes = assign_lanes(spans)
    by_lane: dict[int, list[Span]] = {}
    for span, lane in zip(spans, lanes, strict=True):
        by_lane.setdefault(lane, []).append(span)
    for group in by_lane.values():
        group.sort(key=lambda s: (s.start, s.end))
        for a, b in itertools.pairwise(group):
            assert a.end is not None
            assert b.start is not None
            assert a.end <= b.start
    # greedy interval colouring is optimal: the lanes equal the most spans open at one instant
    points = sorted([(s.start, 1) for s in spans] + [(s.end, -1) for s in spans], key=lambda p: (p[0], p[1]))
    most = running = 0
    for _, step in points:
        running += step
        most = max(most, running)
    assert len(by_lane) == most


async def _stall(x: int) -> int:
    for _ in range(x % 4):
        await asyncio.sleep(0)
    if x % 5 == 2:
        raise ValueError(f"input {x} is bad")
    return x


def _journaled_run(db: Path, n: int) -> str:
    async def main() -> str:
        result = await ff.run(ff.map(_stall), range(n), store=str(db), limits=ff.Limits(concurrency=8))
        return result.run_id

    return asyncio.run(main())


def _write_timeline(db: Path, run_id: str, out: Path) -> str:
    async def main() -> Path:
        async with open_store(str(db)) as store:
            return await timeline(store, run_id, out)

    return asyncio.run(main()).read_text()


async def _render(page: Any, html: Path, shot: Path) -> dict[str, Any]:
    await page.goto(html.as_uri())
    await page.wait_for_selector("svg#timeline")
    await page.screenshot(path=str(shot), full_page=True)
    counts: dict[str, Any] = await page.evaluate(
        """() => {
            const svg = document.querySelector('svg#timeline'); const out = {mode: svg.dataset.mode};
            out.bars = svg.querySelectorAll('rect.bar').length;
            out.failed = svg.querySelectorAll('rect.bar[data-status=failed]').length;
            out.cells = svg.querySelectorAll('g.cell').length;
            out.binned = [...svg.querySelectorAll('g.cell')].reduce((n, g) => n + Number(g.dataset.count), 0);
            out.width = svg.getBoundingClientRect().width;
            out.resources = performance.getEntriesByType('resource').length;
            return out;
        }"""
    )
    return counts


@needs_browser
def test_timeline_of_ten_tasks_draws_a_bar_each_coloured_by_outcome(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    run_id = _journaled_run(db, 10)
    text = _write_timeline(db, run_id, tmp_path / "run.html")
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")  # nothing to fetch: no CDN
    assert "input 2 is bad" in text  # the failure's error, in its bar's tooltip

    async def main() -> dict[str, Any]:
        async with open_browser() as browser:
            page = await browser.page(1250, 420)
            return await _render(page, tmp_path / "run.html", tmp_path / "timeline-10.png")

    seen = asyncio.run(main())
    # 10 inputs, plus the map itself (the run's root is journaled too? no: only tasks below it)
    assert seen["mode"] == "bars"
    assert seen["bars"] == 10
    assert seen["failed"] == 2  # inputs 2 and 7
    assert seen["resources"] == 0  # the page loaded nothing else
    assert (tmp_path / "timeline-10.png").stat().st_size > 0


@needs_browser
def test_timeline_of_ten_thousand_tasks_is_a_heatmap_that_counts_every_task(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    n = 10_000
    run_id = _journaled_run(db, n)
    text = _write_timeline(db, run_id, tmp_path / "run.html")
    assert len(text) < 3_000_000  # bins, not 10,000 bars with tooltips

    async def main() -> dict[str, Any]:
        async with open_browser() as browser:
            page = await browser.page(1250, 800)
            return await _render(page, tmp_path / "run.html", tmp_path / "timeline-10000.png")

    seen = asyncio.run(main())
    assert n > DENSE_ABOVE
    assert seen["mode"] == "heatmap"
    assert seen["bars"] == 0
    assert 0 < seen["cells"] <= 16 * 160
    assert seen["binned"] >= n  # each task counts in every bin it overlaps: at least once
    assert re.search(r"10,000 tasks: 8,000 succeeded, 2,000 failed", text)


def test_a_resumed_run_places_each_attempts_entries_after_its_start(tmp_path: Path) -> None:
    """Entries count from the start of the attempt that wrote them; the record says how many
    each attempt journaled."""
    first, second = 1_000.0, 1_100.0
    record = RunRecord(
        "r1", "map", status="succeeded", created_at=first, updated_at=second + 5,
        attempts=({"started": first, "ended": first + 3, "status": "interrupted", "journaled": 2},
                  {"started": second, "ended": second + 5, "status": "succeeded", "journaled": 1}),
    )  # fmt: skip
    entries = [Entry(f"map[{i}]", i, f"map[{i}]", "succeeded", attempts=1, start=1.0, end=2.0) for i in range(3)]

    async def main() -> str:
        async with open_store(str(tmp_path / "runs.db")) as store:
            await store.create_run(record)
            await store.write("r1", entries)
            return (await timeline(store, "r1", tmp_path / "run.html")).read_text()

    text = asyncio.run(main())
    assert "attempt 2 (resumed)" in text
    assert text.count("class='bar earlier'") == 2  # the first attempt's two entries are paler
    starts = [float(m) for m in re.findall(r"(\d+\.\d+)s to", text)]
    assert starts[:3] == [1.0, 1.0, 101.0]  # the third entry is the second attempt's: 100 s later


def test_timeline_of_a_run_the_store_lacks_names_it(tmp_path: Path) -> None:
    async def main() -> None:
        async with open_store(str(tmp_path / "runs.db")) as store:
            await timeline(store, "nope", tmp_path / "run.html")

    with pytest.raises(ff.UsageError, match=r"'nope'.*fanfold runs list"):
        asyncio.run(main())


def test_cli_writes_the_timeline(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fanfold._cli._app import app

    db = tmp_path / "runs.db"
    run_id = _journaled_run(db, 5)
    out = tmp_path / "t.html"
    result = CliRunner().invoke(app, ["runs", "timeline", run_id, "--store", str(db), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().count("<rect class='bar") == 5
    assert json.dumps(run_id)[1:-1] in out.read_text()
