"""The live dashboard in a real browser: a run in another process on the simulated provider,
seen through its store (progress, a failure), and cancelled from the page; a run of this process
seen through its events; the token beyond loopback."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import aiohttp
import pytest
from tests.observe.conftest import keep_image, needs_browser, open_browser

import fanfold as ff
from fanfold._observe._dashboard import Dashboard, serve_dashboard, store_dashboard
from fanfold._observe._feeds import StoreFeed
from fanfold._records import open_store
from fanfold.testing import Faults, Latency, SimulatedProvider

# The run in another process: 300 questions, 4 at a time, each answered after 0.1 s; the ones
# that say "poison" are answered 500 every time, so they fail.
SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    import fanfold as ff

    def started(event):  # the run is journaled: tell the test
        if isinstance(event, ff.events.RunStarted):
            print("started", flush=True)

    async def main():
        once = ff.RetryPolicy(retry_on=Exception, attempts=2, initial=0.01)
        agent = ff.llm("openai:gpt-4o-mini", base_url=sys.argv[1], api_key="sim-key", retry=once)
        questions = [("poison " if i % 40 == 5 else "") + f"question {i}" for i in range(300)]
        result = await ff.run(ff.map(agent), questions, store=sys.argv[2], run_id="live",
                              limits=ff.Limits(concurrency=4), on_event=started)
        print(result.status.value, result.summary)

    asyncio.run(main())
    """
)


def _poison(number: int, request: object) -> str | None:
    return "500" if "poison" in getattr(request, "last_user_text", "") else None


@needs_browser
def test_the_page_follows_a_run_of_another_process_and_its_button_cancels_it(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    sim = SimulatedProvider(latency=Latency.fixed(0.1), faults=Faults(script=_poison))
    shot = tmp_path / "dashboard.png"

    async def main() -> tuple[str, str, int, int]:
        with sim.in_thread():
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-c", SCRIPT, sim.openai_base_url, str(db),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ | {"PYTHONWARNINGS": "ignore"},
            )  # fmt: skip
            try:
                return await _watch_and_cancel(child, db, shot)
            finally:
                if child.returncode is None:
                    child.kill()
                    await child.wait()

    final_status, page_status, first, later = asyncio.run(main())
    assert later > first  # the page saw progress advance
    assert page_status == "cancelled"
    assert final_status == "cancelled"  # the run in the other process ended cancelled
    keep_image(shot, "dashboard.png")


async def _watch_and_cancel(child: asyncio.subprocess.Process, db: Path, shot: Path) -> tuple[str, str, int, int]:
    assert child.stdout is not None
    assert child.stderr is not None
    if await child.stdout.readline() != b"started\n":  # its run is journaled: the store exists
        raise AssertionError((await child.stderr.read()).decode())
    async with open_store(str(db)) as store, store_dashboard(store, port=0) as board, open_browser() as browser:
        page = await browser.page()
        await page.goto(board.url + "?run=live")
        await page.wait_for_function("() => Number(document.getElementById('done').textContent) >= 5")
        first = int(await page.inner_text("#done"))
        await page.wait_for_function(f"() => Number(document.getElementById('done').textContent) > {first}")
        later = int(await page.inner_text("#done"))
        await page.wait_for_selector("#failures li")  # the first poisoned question failed
        assert "ModelHTTPError" in await page.inner_text("#failures") or "500" in await page.inner_text("#failures")
        assert int(await page.get_attribute("#timeline", "data-bars") or 0) >= later  # the timeline grows
        assert "sim-key" not in await page.content()
        await page.screenshot(path=str(shot))
        await page.click("#cancel")
        await page.wait_for_function("() => document.getElementById('status').textContent === 'cancelled'")
        page_status = await page.inner_text("#status")
        await child.wait()
        record = await store.get_run("live")
        assert record is not None
        return record.status, page_status, first, later


async def _slow(x: int) -> int:
    await asyncio.sleep(0.05 if x != 7 else 3600)  # input 7 never ends: it is in flight until cancelled
    if x % 10 == 3:
        raise ValueError(f"input {x} failed")
    return x


@needs_browser
def test_in_process_dashboard_shows_tasks_in_flight_and_cancels_the_run(tmp_path: Path) -> None:
    async def main() -> tuple[ff.Result[object], str]:
        run = ff.start(ff.map(_slow), range(200), limits=ff.Limits(concurrency=4))
        async with run, serve_dashboard(run, port=0) as board, open_browser() as browser:
            page = await browser.page()
            await page.goto(board.url)
            await page.wait_for_function("() => Number(document.getElementById('done').textContent) >= 10")
            await page.wait_for_function("() => document.getElementById('inflight').textContent.includes('[7]')")
            await page.wait_for_selector("#failures li")
            failures = await page.inner_text("#failures")
            await page.click("#cancel")
            await page.wait_for_function("() => document.getElementById('status').textContent === 'cancelled'")
        return await run.result(), failures

    result, failures = asyncio.run(main())
    assert result.status is ff.RunStatus.CANCELLED
    assert "input 3 failed" in failures


def test_beyond_loopback_every_request_wants_the_token(tmp_path: Path) -> None:
    async def main() -> list[int]:
        async with open_store(str(tmp_path / "runs.db")) as store:
            board = Dashboard(StoreFeed(store), host="0.0.0.0", port=0)
            assert board.token is not None  # generated: never served without one
            async with board, aiohttp.ClientSession() as http:
                base = f"http://127.0.0.1:{board.port}"
                codes = []
                for url, headers in [(f"{base}/api/runs", {}), (f"{base}/?token=wrong", {}),
                                     (f"{base}/api/runs?token={board.token}", {}),
                                     (f"{base}/api/runs", {"X-Fanfold-Token": board.token}),
                                     (f"{base}/api/runs/nope/events?token={board.token}", {})]:  # fmt: skip
                    async with http.get(url, headers=headers) as response:
                        codes.append(response.status)
                        if "nope" in url:
                            assert "no run 'nope'" in await response.text()
                return codes

    assert asyncio.run(main()) == [401, 401, 200, 200, 200]


def test_a_cancel_request_for_a_finished_run_is_refused_with_its_status(tmp_path: Path) -> None:
    async def main() -> tuple[int, str]:
        db = str(tmp_path / "runs.db")
        await ff.run(ff.map(str), ["a"], store=db, run_id="done")
        async with (
            open_store(db) as store,
            store_dashboard(store, port=0) as board,
            aiohttp.ClientSession() as http,
            http.post(f"http://127.0.0.1:{board.port}/api/runs/done/cancel") as response,
        ):
            return response.status, await response.text()

    status, text = asyncio.run(main())
    assert status == 404
    assert "succeeded, not running" in text


def test_a_port_that_is_no_port_is_refused() -> None:
    with pytest.raises(ff.UsageError, match="70000"):
        Dashboard(StoreFeed(open_store("memory")), port=70000)
