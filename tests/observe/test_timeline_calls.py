"""A task's model requests in its outcome, its journal entry and the timeline: call bars, the wait
after a 429, hedges and their winner; and journals from before calls were kept still load."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from tests.observe.conftest import keep_image, needs_browser, open_browser

import fanfold as ff
from fanfold._observe._timeline import render
from fanfold._outcome import Call, settle_hedges
from fanfold._records import Entry, RunRecord, open_store
from fanfold.testing import Faults, Latency, SimulatedProvider

KEY = "sk-test-do-not-leak-0123456789"


def _llm_run(db: Path, n: int = 10) -> ff.Result[Any]:
    """``n`` LLM tasks on the simulated provider: requests 3 and 7 answered 429, and three
    requests in ten 20x slower, so hedges go out (and some win)."""
    latency = Latency(median=0.05, distribution="fixed", sigma=0.0, slow_fraction=0.3, slow_factor=20.0)
    faults = Faults(script=lambda number, request: "429" if number in (3, 7) else None)

    async def main() -> ff.Result[Any]:
        async with SimulatedProvider(latency=latency, faults=faults, seed=3) as sim:
            model = ff.llm(
                "openai-chat:sim-1", base_url=sim.openai_base_url, api_key=KEY, hedge=ff.Hedge(after=0.2, max_extra=0.5)
            )
            limits = ff.Limits(concurrency=4)
            return await ff.run(ff.map(model), [f"q{i}" for i in range(n)], store=str(db), limits=limits)

    return asyncio.run(main())


def test_outcomes_carry_their_model_requests_and_the_journal_keeps_them(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    result = _llm_run(db)
    calls = [call for outcome in result.outcomes for call in outcome.calls or ()]
    summary = result.summary
    assert len(calls) == summary.usage.requests  # every request that left the process, once
    assert sum(call.status == "429" for call in calls) == 2
    assert sum(call.hedge for call in calls) == summary.hedges > 0
    assert sum(call.won for call in calls) == summary.hedges_won
    for call in calls:
        assert call.start <= call.admitted <= call.end
        assert call.model == "sim-1"
        assert call.resource.startswith("openai-chat:sim-1")
    # Resumed from the journal: the outcomes come back with the same calls.
    again = ff.run_sync(ff.map(ff.llm("openai-chat:sim-1", api_key=KEY)), [f"q{i}" for i in range(10)],
                        store=str(db), resume=result.run_id)  # fmt: skip
    assert all(o.resumed for o in again.outcomes)

    def rows(result: ff.Result[Any]) -> list[list[Any]]:  # journaled as rows: times to 0.1 ms
        return [[call.as_row() for call in o.calls or ()] for o in result.outcomes]

    assert rows(again) == rows(result)


def test_function_tasks_have_no_calls() -> None:
    result = ff.run_sync(ff.map(str.upper), ["a", "b"])
    assert [o.calls for o in result.outcomes] == [None, None]


def test_a_backup_wins_only_when_it_answered_before_the_call_it_hedged() -> None:
    first = Call("r", "m", 1, 0.0, 0.0, 2.0, "CancelledError")
    backup = Call("r", "m", 1, 1.0, 1.0, 1.5, "ok", hedge=True)
    assert settle_hedges([backup, first])[0].won
    both = Call("r", "m", 1, 0.0, 0.0, 1.5, "ok")  # answered at the same moment: the first call wins
    assert not settle_hedges([backup, both])[0].won
    plain = [Call("r", "m", 1, 0.0, 0.1, 0.2, "ok")]
    assert settle_hedges(plain) == tuple(plain)


@needs_browser
def test_timeline_of_ten_tasks_with_model_requests_draws_calls_429_waits_and_hedges(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    result = _llm_run(db)
    out = asyncio.run(ff.timeline(result.run_id, tmp_path / "run.html", store=str(db)))
    text = out.read_text()
    assert KEY not in text
    assert "model: sim-1" in text  # a call's tooltip names its model

    async def main() -> dict[str, Any]:
        async with open_browser() as browser:
            page = await browser.page(1250, 520)
            await page.goto(out.as_uri())
            await page.wait_for_selector("svg#timeline")
            await page.screenshot(path=str(tmp_path / "timeline-calls.png"), full_page=True)
            seen: dict[str, Any] = await page.evaluate(
                """() => {
                    const svg = document.querySelector('svg#timeline'), n = s => svg.querySelectorAll(s).length;
                    const box = e => e.getBoundingClientRect();
                    const calls = [...svg.querySelectorAll('rect.call')];
                    const visible = calls.filter(c => box(c).width > 0).length;
                    return {bars: n('rect.bar'), calls: calls.length, visible,
                            throttled: n('rect.call[data-status="429"]'), pauses: n('rect.pause'),
                            hedges: n('rect.call.hedge'), marks: n('path.hedge-mark'), won: n('path.hedge-mark.won'),
                            title: calls[0].querySelector('title').textContent};
                }"""
            )
            return seen

    seen = asyncio.run(main())
    summary = result.summary
    assert seen["bars"] == 10
    assert seen["calls"] == seen["visible"] == summary.usage.requests
    assert seen["throttled"] == seen["pauses"] == 2
    assert seen["hedges"] == seen["marks"] == summary.hedges > 0
    assert seen["won"] == summary.hedges_won
    assert seen["title"].startswith("map[")
    assert "tokens:" in seen["title"]
    assert "cost: $" in seen["title"]
    keep_image(tmp_path / "timeline-calls.png", "timeline.png")


def test_a_journal_from_before_calls_were_kept_still_loads_and_renders(tmp_path: Path) -> None:
    """A SQLite file of schema version 3 (no calls column) is migrated, and its entries render."""
    path = tmp_path / "old.db"

    async def make() -> None:
        async with open_store(str(path)) as store:
            await store.create_run(RunRecord("old", "map", status="succeeded", attempts=({"started": 100.0},)))
            await store.write("old", [Entry(f"map[{i}]", i, f"map[{i}]", "succeeded", value_json='"x"', attempts=1,
                                            start=0.1 * i, end=0.1 * i + 0.05) for i in range(3)])  # fmt: skip

    asyncio.run(make())
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE fanfold_entries DROP COLUMN calls")
    db.execute("PRAGMA user_version = 3")
    db.commit()
    db.close()

    async def read() -> tuple[list[Entry], str]:
        async with open_store(str(path)) as store:
            entries = [entry async for entry in store.entries("old")]
            out = await ff.timeline("old", tmp_path / "old.html", store=store)
            return entries, out.read_text()

    entries, text = asyncio.run(read())
    assert [entry.calls for entry in entries] == [None, None, None]
    assert text.count("<rect class='bar") == 3
    assert "class='call" not in text
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone() == (4,)


def test_render_draws_no_calls_for_entries_without_them() -> None:
    record = RunRecord("r", "map", attempts=({"started": 0.0},))
    from fanfold._observe._spans import SpanReader

    spans = SpanReader(record).read([Entry("map[0]", 0, "map[0]", "succeeded", attempts=1, start=0.0, end=1.0)])
    assert spans[0].calls == ()
    assert "class='call" not in render(record, spans)


def test_timeline_names_what_it_wants() -> None:
    with pytest.raises(ff.UsageError, match=r"needs the store"):
        asyncio.run(ff.timeline("abc", "x.html"))
    with pytest.raises(ff.UsageError, match=r"pass a run id"):
        asyncio.run(ff.timeline(42, "x.html"))  # type: ignore[arg-type]
