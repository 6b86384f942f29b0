"""One owner per run, between real processes: a second resume of a live run is refused naming
the owner, a killed owner's run shows interrupted once its lease lapses, and a resume takes it
over; every input is executed once in all (counted by a side-effect file each execution appends
to). On SQLite and on the local Postgres."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fanfold._records import RunRecord, open_store

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL")

POSTGRES_URL = os.environ.get("FANFOLD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
DONE, TOTAL = 50, 200  # journaled by the first run; inputs of the resume

# A child process: run (or resume) a map over TOTAL inputs whose agent appends each execution to
# a file, and waits for a gate file first (so the test decides when the owner may finish).
CHILD = """
import asyncio, os, sys
from pathlib import Path
import fanfold as ff

store, run_id, mode, count, work = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), Path(sys.argv[5])

async def item(x: int) -> int:
    while not (work / "gate").exists():
        await asyncio.sleep(0.01)
    with (work / "executions").open("a") as f:
        f.write(f"{x}\\n")
    return x * 2

def started(event: ff.events.Event) -> None:
    if isinstance(event, ff.events.RunStarted):
        print("started", flush=True)

try:
    ff.run_sync(ff.map(ff.agent(item, name="item"), key=lambda x: x), list(range(count)), store=store, run_id=run_id,
                resume=None if mode == "run" else run_id, take_over=mode == "take_over", on_event=started)
except ff.UsageError as exc:
    print(f"{type(exc).__name__}: {exc}", flush=True)
    sys.exit(3)
print("finished", flush=True)
"""


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "runs.db")
    problem = _postgres_problem()
    if problem is not None:
        pytest.skip(f"no Postgres at {POSTGRES_URL}: {problem}")
    return POSTGRES_URL


def _postgres_problem() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        return str(exc)
    return None


@pytest.fixture
def work(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def child(store: str, run_id: str, mode: str, count: int, work: Path, ttl: str = "1") -> subprocess.Popen[str]:
    env = {**os.environ, "FANFOLD_LEASE_TTL": ttl}
    return subprocess.Popen([sys.executable, "-c", CHILD, store, run_id, mode, str(count), str(work)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def first_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    return process.stdout.readline().strip()


def executions(work: Path) -> list[int]:
    path = work / "executions"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def record(store: str, run_id: str) -> RunRecord:
    async def get() -> RunRecord:
        async with open_store(store) as s:
            found = await s.get_run(run_id)
            assert found is not None
            return found

    return asyncio.run(get())


def status_once_lapsed(store: str, run_id: str, within: float = 30.0) -> str:
    give_up = time.monotonic() + within
    while (found := record(store, run_id).status) == "running" and time.monotonic() < give_up:
        time.sleep(0.05)  # the condition is checked each time; the pause only spares the CPU
    return found


@pytest.fixture
def half_done(store_url: str, work: Path) -> Iterator[str]:
    """A run that journaled DONE inputs; yields its id."""
    run_id = f"lease-{uuid.uuid4().hex[:12]}"
    (work / "gate").touch()
    first = child(store_url, run_id, "run", DONE, work)
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, out + err
    (work / "gate").unlink()
    (work / "executions").unlink()
    return run_id


def test_a_second_resume_of_a_live_run_is_refused_naming_its_owner(store_url: str, work: Path, half_done: str) -> None:
    owner = child(store_url, half_done, "resume", TOTAL, work)
    try:
        assert first_line(owner) == "started"  # it holds the lease, and waits at the gate
        second = child(store_url, half_done, "resume", TOTAL, work)
        out, err = second.communicate(timeout=60)
        assert second.returncode == 3, out + err
        assert out.startswith("RunOwned: ")
        assert f"process {owner.pid} on host" in out
        assert "lapses within 1 seconds" in out
        assert executions(work) == []  # the refused process ran nothing
    finally:
        (work / "gate").touch()
        out, err = owner.communicate(timeout=60)
    assert owner.returncode == 0, out + err
    ran = executions(work)
    assert sorted(ran) == list(range(DONE, TOTAL))  # exactly the inputs not yet journaled, once each
    final = record(store_url, half_done)
    assert final.status == "succeeded"
    assert final.lease is None
    assert [a["status"] for a in final.attempts] == ["succeeded", "succeeded"]


def test_resumes_started_together_run_each_input_once(store_url: str, work: Path, half_done: str) -> None:
    (work / "gate").touch()
    both = [child(store_url, half_done, "resume", TOTAL, work) for _ in range(2)]
    results = [(p.communicate(timeout=60), p.returncode) for p in both]
    codes = sorted(code for _, code in results)
    ran = executions(work)
    # One of them ran every input not yet journaled. The other was refused while the first held
    # the run, or (had the first already finished) found every input journaled and ran none.
    assert sorted(ran) == list(range(DONE, TOTAL)), results
    assert codes in ([0, 3], [0, 0]), results
    refused = [out for (out, _), code in results if code == 3]
    assert all("RunOwned" in text for text in refused)


def test_a_killed_owner_shows_interrupted_and_a_resume_takes_over(store_url: str, work: Path, half_done: str) -> None:
    victim = child(store_url, half_done, "resume", TOTAL, work)
    assert first_line(victim) == "started"
    assert record(store_url, half_done).status == "running"
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=10)

    assert status_once_lapsed(store_url, half_done) == "interrupted"
    listed = subprocess.run([sys.executable, "-m", "fanfold._cli._app", "runs", "list", "--store", store_url,
                             "--json", "--limit", "200"], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    runs = {data["run_id"]: data for data in map(json.loads, listed.stdout.splitlines())}
    assert runs[half_done]["status"] == "interrupted"

    (work / "gate").touch()
    heir = child(store_url, half_done, "resume", TOTAL, work)
    out, err = heir.communicate(timeout=60)
    assert heir.returncode == 0, out + err
    assert sorted(executions(work)) == list(range(DONE, TOTAL))
    final = record(store_url, half_done)
    assert final.status == "succeeded"
    assert [a["status"] for a in final.attempts] == ["succeeded", "interrupted", "succeeded"]
    assert final.attempts[1]["pid"] == victim.pid
    assert final.resumes == 2


def test_take_over_is_refused_while_the_owner_lives_on_this_host(store_url: str, work: Path, half_done: str) -> None:
    owner = child(store_url, half_done, "resume", TOTAL, work, ttl="600")
    try:
        assert first_line(owner) == "started"
        heir = child(store_url, half_done, "take_over", TOTAL, work, ttl="600")
        out, err = heir.communicate(timeout=60)
        assert heir.returncode == 3, out + err
        assert out.startswith("RunOwned: ")
        assert f"take_over refused, its owner, process {owner.pid} on this host" in out
        assert executions(work) == []
    finally:
        (work / "gate").touch()
        owner.communicate(timeout=60)
    assert owner.returncode == 0


def test_take_over_of_a_killed_owner_does_not_wait_for_the_lease(store_url: str, work: Path, half_done: str) -> None:
    victim = child(store_url, half_done, "resume", TOTAL, work, ttl="600")
    assert first_line(victim) == "started"
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=10)
    (work / "gate").touch()
    plain = child(store_url, half_done, "resume", TOTAL, work, ttl="600")
    out, err = plain.communicate(timeout=60)
    assert plain.returncode == 3, out + err
    assert "lapses within 600 seconds" in out  # the lease still lives: a plain resume waits for it

    heir = child(store_url, half_done, "take_over", TOTAL, work, ttl="600")
    out, err = heir.communicate(timeout=60)
    assert heir.returncode == 0, out + err
    assert sorted(executions(work)) == list(range(DONE, TOTAL))
    final = record(store_url, half_done)
    assert final.status == "succeeded"
    assert [a["status"] for a in final.attempts] == ["succeeded", "interrupted", "succeeded"]
    assert final.attempts[1]["pid"] == victim.pid
