"""The Ray backend on a real local cluster of two nodes (one CPU each), started for the session
with ``ray start --block`` and stopped at the end: outcomes, order and retries; patterns and
teams; a worker killed mid-call; a cancelled leaf's task killed; a driver killed and its run
resumed from the Postgres journal on the cluster."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import backend_patterns
import backend_work as work
import pytest

import fanfold as ff
from fanfold import events
from fanfold.testing import LocalRayCluster

HERE = Path(__file__).resolve().parent
PG = "postgresql://127.0.0.1/test"


@pytest.fixture(scope="session")
def cluster() -> Iterator[str]:
    """A real two-node Ray cluster (head + one worker node, 1 CPU each); its GCS address."""
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'fanfold[ray]' to run these tests")
    with LocalRayCluster(num_cpus=1) as local:
        local.add_node()
        yield local.address


def backend(address: str) -> ff.Ray:
    # The workers import these tests' functions by module name: put their folder on their path.
    return ff.Ray(address=address, runtime_env={"env_vars": {"PYTHONPATH": str(HERE)}})


def wait_for_exit(pid: int) -> bool:
    """Block until process ``pid`` exits (at most 60 s); True if it did."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], 60)[0])
    finally:
        os.close(fd)


def test_outcomes_order_and_retries_on_the_cluster(cluster: str) -> None:
    result = ff.run_sync(ff.map(work.double), range(30), backend=backend(cluster))
    assert result.output == [2 * i for i in range(30)]
    assert result.summary.succeeded == 30

    retry = ff.RetryPolicy(retry_on=KeyError, attempts=3, initial=0)
    failed = ff.run_sync(ff.map(work.fails, policy=ff.Collect()), [5], backend=backend(cluster), retry=retry)
    [outcome] = failed.outcomes
    assert outcome.status is ff.Status.FAILED
    assert outcome.error is not None
    assert (outcome.error.type, outcome.attempts) == ("KeyError", 3)  # the function's own error, not Ray's
    assert failed.summary.retries == 2


def test_a_context_snapshot_and_a_large_input_by_reference(cluster: str) -> None:
    snap = ff.run_sync(ff.map(work.snapshot), ["x"], backend=backend(cluster), run_id="on-ray")
    assert snap.output == [{"run_id": "on-ray", "path": "map[0]", "attempt": 1, "index": 0, "type": "TaskInfo"}]
    big = "x" * 300_000  # over Ray(put_over=100_000): sent with ray.put
    assert ff.run_sync(ff.map(work.size), [big, "y"], backend=backend(cluster)).output == [300_000, 1]


def test_map_vote_and_team_run_unchanged(cluster: str) -> None:
    backend_patterns.check_map_vote_and_team(backend(cluster))


def test_a_ray_worker_killed_mid_call_is_retried_once_and_nothing_else_runs_twice(cluster: str, tmp_path: Path) -> None:
    log, pidfile = tmp_path / "runs.log", tmp_path / "victim.pid"
    n, victim = 30, 11
    items = [{"i": i, "log": str(log), "victim": victim, "pidfile": str(pidfile)} for i in range(n)]
    retried: list[events.TaskRetrying] = []
    result = ff.run_sync(
        ff.map(work.work),
        items,
        backend=backend(cluster),
        on_event=lambda e: retried.append(e) if isinstance(e, events.TaskRetrying) else None,
    )
    assert result.output == [2 * i for i in range(n)]
    assert [o.attempts for o in result.outcomes] == [2 if i == victim else 1 for i in range(n)]
    dead = int(pidfile.read_text())
    assert dead != os.getpid()
    assert wait_for_exit(dead)
    runs = work.executions(log)
    assert runs == {i: [1, 2] if i == victim else [1] for i in range(n)}
    assert [e.error.type for e in retried] == ["WorkerLost"]


def test_a_cancelled_leaf_kills_its_ray_task(cluster: str, tmp_path: Path) -> None:
    # A race: `started` wins once `spin` runs on the other CPU; the race cancels `spin`.
    pidfile, fifo = tmp_path / "spin.pid", tmp_path / "started.fifo"
    os.mkfifo(fifo)
    item = {"pidfile": str(pidfile), "fifo": str(fifo), "seconds": 600}
    result = ff.run_sync(ff.race(work.spin, work.started), item, backend=backend(cluster))
    assert result.output == "spin runs"
    assert wait_for_exit(int(pidfile.read_text()))  # ray.cancel(force=True) killed it, long before 600 s


DRIVER = """
import json, os, sys
from pathlib import Path
sys.path.insert(0, {here!r})
import backend_work as work
import fanfold as ff

Path({driverfile!r}).write_text(str(os.getpid()))
items = [dict(i=i, log={log!r}, driverfile={driverfile!r}, kill_driver_at={kill_at}) for i in range({n})]
backend = ff.Ray(address={address!r}, runtime_env={{"env_vars": {{"PYTHONPATH": {here!r}}}}})
options = dict(store={store!r}, limits=ff.Limits(concurrency=2), backend=backend)
if sys.argv[1] == "start":
    result = ff.run_sync(ff.map(work.kill_driver), items, run_id=sys.argv[2], **options)
else:
    result = ff.run_sync(ff.map(work.kill_driver), items, resume=sys.argv[2], **options)
print(json.dumps({{"output": result.output, "resumed": sum(o.resumed for o in result.outcomes)}}))
"""


def test_a_killed_driver_resumes_from_the_postgres_journal_on_the_cluster(cluster: str, tmp_path: Path) -> None:
    psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed: pip install 'fanfold[postgres]'")
    try:
        psycopg.connect(PG, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        pytest.skip(f"no Postgres at {PG}: {exc}")
    n, kill_at = 40, 25
    log, driverfile = tmp_path / "runs.log", tmp_path / "driver.pid"
    script = tmp_path / "driver.py"
    script.write_text(
        DRIVER.format(
            here=str(HERE), driverfile=str(driverfile), log=str(log), kill_at=kill_at, n=n, address=cluster, store=PG
        )
    )
    run_id = f"ray-resume-{os.getpid()}-{tmp_path.name}"
    # A dead driver's lease lapses within a second, and the resume may take the run over.
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "FANFOLD_LEASE_TTL": "1"}
    killed = subprocess.run([sys.executable, str(script), "start", run_id], capture_output=True, text=True, env=env)
    assert killed.returncode == -9, killed.stderr[-2000:]  # the task at input 25 killed its driver
    before = work.executions(log)
    assert kill_at in before
    assert status_once_lapsed(run_id) == "interrupted"

    resumed = subprocess.run([sys.executable, str(script), "resume", run_id], capture_output=True, text=True, env=env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    report: dict[str, Any] = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert report["output"] == [2 * i for i in range(n)]
    assert report["resumed"] > 0  # journaled outcomes came back, not run again

    runs = work.executions(log)
    assert sorted(runs) == list(range(n))  # every input done
    twice = [i for i, attempts in runs.items() if len(attempts) > 1]
    # Only calls in flight when the driver died (done, but not yet journaled) run again: at most
    # the run's window, and each at most twice.
    assert len(twice) <= ff.Limits(concurrency=2).fanout_window
    assert all(len(attempts) <= 2 for attempts in runs.values())
    assert report["resumed"] + len([i for i in runs if i not in before or len(runs[i]) > 1]) >= n


def status_once_lapsed(run_id: str, within: float = 30.0) -> str:
    """The run's status in Postgres once its lease has lapsed (polled, up to ``within`` seconds)."""
    import asyncio
    import time

    async def status() -> str:
        async with ff.PostgresStore(PG) as store:
            record = await store.get_run(run_id)
            assert record is not None
            return record.status

    give_up = time.monotonic() + within
    while (found := asyncio.run(status())) == "running" and time.monotonic() < give_up:
        time.sleep(0.05)  # the condition is checked each time; the pause only spares the CPU
    return found


def test_without_ray_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    from fanfold._backends._ray import _import_ray

    with pytest.raises(ff.UsageError, match=r"pip install 'fanfold\[ray\]'"):
        _import_ray()
    with pytest.raises(ff.UsageError, match=r"pip install 'fanfold\[ray\]'"):
        ff.run_sync(ff.map(work.double), [1], backend="ray")
    with pytest.raises(ff.UsageError, match=r"pip install 'fanfold\[ray\]'"):
        ff.Ray(address="127.0.0.1:6379")


def test_fanfold_run_backend_ray_runs_a_python_pipeline_on_the_cluster(cluster: str, tmp_path: Path) -> None:
    from test_processes import fanfold_run

    # Ray's workers find a driver's modules in its working directory (`fanfold run` from the
    # project's folder): put the pipeline's module there.
    shutil.copy(work.__file__, tmp_path / "backend_work.py")
    done = fanfold_run(tmp_path, "--backend", "ray", "--ray-address", cluster)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [line["value"]["type"] for line in lines] == ["TaskInfo", "TaskInfo"]
