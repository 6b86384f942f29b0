"""A batch killed with SIGKILL half way, then resumed, leaves every input exactly one line, and
pays for (almost) nothing twice: only the calls in flight when it died are made again.

``fanfold simulate`` and ``fanfold run`` each run in a process of their own, as in production.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL")

INPUTS = 5_000
CONCURRENCY = 64
FANFOLD = [sys.executable, "-m", "fanfold._cli._app"]


@pytest.fixture
def simulator() -> Iterator[str]:
    """``fanfold simulate`` in its own process; yields its URL."""
    command = [*FANFOLD, "simulate", "--port", "0", "--latency", "0.02", "--latency-sigma", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        found = re.search(r"http://127\.0\.0\.1:\d+", process.stdout.readline())
        assert found, process.stderr.read() if process.stderr else ""
        yield found.group(0)
    finally:
        process.terminate()
        process.communicate(timeout=10)


def stats(url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{url}/_sim/stats", timeout=10) as response:
        data: dict[str, int] = json.load(response)
    return data


def count_lines(path: Path) -> int:
    try:
        with path.open("rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 16), b""))
    except FileNotFoundError:
        return 0


def status_once_lapsed(path: Path, run_id: str, within: float = 30.0) -> str:
    """The run's status once its lease has lapsed (polled, up to ``within`` seconds)."""
    import asyncio
    import time

    from fanfold._store._sqlite import SQLiteStore

    async def status() -> str:
        async with SQLiteStore(path) as store:
            record = await store.get_run(run_id)
            assert record is not None
            return record.status

    give_up = time.monotonic() + within
    while (found := asyncio.run(status())) == "running" and time.monotonic() < give_up:
        time.sleep(0.05)  # the condition is checked each time; the pause only spares the CPU
    return found


def test_a_killed_batch_resumes_with_each_input_exactly_once(tmp_path: Path, simulator: str) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"id": i, "text": f"row {i}"}) + "\n" for i in range(INPUTS)))
    (tmp_path / "pipeline.yaml").write_text("model: openai-chat:sim-1\nprompt: '{text}'\nkey: id\nretries: 3\n")
    output, store = tmp_path / "out.jsonl", tmp_path / "runs.db"
    run = [*FANFOLD, "run", "pipeline.yaml", "-i", "rows.jsonl", "-o", "out.jsonl", "--store", "runs.db",
           "--run-id", "crash", "--base-url", simulator + "/v1", "-c", str(CONCURRENCY), "--no-progress"]  # fmt: skip
    # A dead owner's lease lapses within a second, and the resume may take the run over.
    env = {**os.environ, "OPENAI_API_KEY": "sk-test", "FANFOLD_LEASE_TTL": "1"}

    # The victim's plain progress lines say how far it got; the test reads them as they come.
    victim = subprocess.Popen([*run[:-1], "--progress", "--progress-every", "0.1"], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert victim.stderr is not None
    seen = []
    for line in victim.stderr:
        seen.append(line)
        done = re.search(r"([\d,]+)/[\d,]+ \(\d+%\) done", line)
        if done and int(done.group(1).replace(",", "")) >= INPUTS // 2:
            break
    else:
        pytest.fail("the run ended before it got half way:\n" + "".join(seen))
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=10)
    assert status_once_lapsed(store, "crash") == "interrupted"
    written = count_lines(output)
    assert written < INPUTS
    before = stats(simulator)["requests"]

    resumed = subprocess.run([*FANFOLD, "runs", "resume", "crash", "--store", str(store), "--no-progress"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr

    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert [line["index"] for line in lines] == list(range(INPUTS))  # each input once, in input order
    assert all(line["status"] == "succeeded" for line in lines)
    summary = json.loads((tmp_path / "out.summary.json").read_text())
    assert summary["resumed"] >= written  # what was written had been journaled: it is not run again
    # Every input was paid for once, plus the retries, plus at most the calls in flight at the kill.
    requests = stats(simulator)["requests"]
    assert INPUTS <= requests <= INPUTS + summary["retries"] + CONCURRENCY
    assert requests - before == INPUTS - summary["resumed"] + summary["retries"]
    # The run's record counts both attempts: the killed one's usage was checkpointed with each
    # journal batch, so only the calls answered in the instant before the kill can be missing.
    import asyncio

    from fanfold._store._sqlite import SQLiteStore

    async def usage() -> tuple[int, list[dict[str, object]]]:
        async with SQLiteStore(store) as s:
            record = await s.get_run("crash")
            assert record is not None
            assert record.summary is not None
            return record.summary["usage"]["requests"], list(record.attempts)

    counted, attempts = asyncio.run(usage())
    assert [a["status"] for a in attempts] == ["interrupted", "succeeded"]
    assert attempts[1]["usage"]["requests"] == requests - before  # the resume's own part, exactly
    assert requests - CONCURRENCY <= counted <= requests
