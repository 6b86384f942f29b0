"""The process backend: sync function agents run in a local process pool, through the same leaf
boundary (order, outcomes, retries, timeouts), and a worker killed mid-call loses nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import backend_patterns
import backend_work as work
import pytest

import fanfold as ff
from fanfold import events


def test_a_map_runs_in_other_processes_in_input_order() -> None:
    result = ff.run_sync(ff.map(work.pid), range(12), backend="processes")
    assert result.summary.succeeded == 12
    assert os.getpid() not in result.output
    assert ff.run_sync(ff.map(work.double), [3, 1, 2], backend=ff.Processes(workers=2)).output == [6, 2, 4]


def test_a_function_that_takes_the_context_gets_a_plain_snapshot() -> None:
    result = ff.run_sync(ff.map(work.snapshot), ["a", "b"], backend="processes", run_id="snap")
    assert result.output == [
        {"run_id": "snap", "path": "map[0]", "attempt": 1, "index": 0, "type": "TaskInfo"},
        {"run_id": "snap", "path": "map[1]", "attempt": 1, "index": 1, "type": "TaskInfo"},
    ]


def test_an_error_in_the_worker_is_the_outcome_and_follows_the_retry_policy() -> None:
    retry = ff.RetryPolicy(retry_on=KeyError, attempts=2, initial=0)
    result = ff.run_sync(ff.map(work.fails, policy=ff.Collect()), [7], backend="processes", retry=retry)
    [outcome] = result.outcomes
    assert outcome.status is ff.Status.FAILED
    assert outcome.error is not None
    assert outcome.error.type == "KeyError"
    assert "no 7" in outcome.error.message
    assert outcome.attempts == 2


def test_map_vote_and_team_run_unchanged() -> None:
    backend_patterns.check_map_vote_and_team(ff.Processes(workers=2))


def local_function(x: int) -> int:  # module level: importable
    return x


@pytest.mark.parametrize(
    ("fn", "what"),
    [(lambda x: x, "a lambda"), (None, "defined inside a function")],
    ids=["lambda", "closure"],
)
def test_a_function_no_process_can_import_is_a_usage_error_naming_it_and_the_fix(fn: Any, what: str) -> None:
    if fn is None:

        def inner(x: int) -> int:
            return x

        fn = inner
    result = ff.run_sync(ff.map(fn, policy=ff.Collect()), [1], backend="processes")
    [outcome] = result.outcomes
    assert outcome.error is not None
    assert outcome.error.type == "UsageError"
    assert what in outcome.error.message
    assert "define it at module level" in outcome.error.message
    assert ("<lambda>" if what == "a lambda" else "inner") in outcome.error.message


def test_a_worker_killed_mid_call_is_retried_and_nothing_is_lost(tmp_path: Path) -> None:
    log, pidfile = tmp_path / "runs.log", tmp_path / "victim.pid"
    n, victim = 40, 13
    items = [{"i": i, "log": str(log), "victim": victim, "pidfile": str(pidfile)} for i in range(n)]
    retried: list[events.TaskRetrying] = []
    result = ff.run_sync(
        ff.map(work.work),
        items,
        backend=ff.Processes(workers=2),
        on_event=lambda e: retried.append(e) if isinstance(e, events.TaskRetrying) else None,
    )
    # Every input ends once, succeeded, with its own value.
    assert [o.status for o in result.outcomes] == [ff.Status.SUCCEEDED] * n
    assert result.output == [2 * i for i in range(n)]
    # The victim's process was a worker, and it is gone.
    dead = int(pidfile.read_text())
    assert dead != os.getpid()
    with pytest.raises(ProcessLookupError):
        os.kill(dead, 0)
    # The victim ran twice; a call in flight in the broken pool ran again; nothing else did.
    runs = work.executions(log)
    assert sorted(runs) == list(range(n))
    assert runs[victim] == [1, 2]
    again = [i for i, attempts in runs.items() if len(attempts) > 1]
    # Again: the victim, and the calls the broken pool held (running, queued to a worker, or done
    # with their result not yet back): at most two per worker and one more, each at most twice.
    assert len(again) <= 5, again
    assert all(len(runs[i]) == 2 for i in again)
    assert all(runs[i] == [1, 2] for i in again)
    assert result.summary.retries >= 1
    assert {e.error.type for e in retried} == {"WorkerLost"}


def test_a_timed_out_leaf_cancels_its_call_if_it_has_not_started(tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    items = [{"i": i, "log": str(log), "seconds": 1.0} for i in range(6)]
    result = ff.run_sync(
        ff.map(work.work, policy=ff.Collect()),
        items,
        backend=ff.Processes(workers=1),
        timeouts=ff.Timeouts(task=0.3),
    )
    assert [o.status for o in result.outcomes] == [ff.Status.TIMED_OUT] * 6
    # One call runs (a running process cannot be interrupted), one more may be queued in the
    # pool already; the others were cancelled before they started.
    assert len(work.executions(log)) <= 2


def test_a_bad_workers_count_names_the_value() -> None:
    with pytest.raises(ff.UsageError, match=r"Processes\(workers=0\)"):
        ff.Processes(workers=0)


def test_an_unknown_backend_names_the_known_ones() -> None:
    with pytest.raises(ff.UsageError, match=r"backend='procs'.*'processes'"):
        ff.run_sync(ff.map(work.double), [1], backend="procs")


def fanfold_run(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """``fanfold run backend_work:snapshot`` over two rows, in a process of its own."""
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"a": 1}\n{"a": 2}\n')
    env = {**os.environ, "PYTHONPATH": str(Path(work.__file__).parent), "RAY_USAGE_STATS_ENABLED": "0"}
    fanfold = str(Path(sys.executable).parent / "fanfold")
    command = [fanfold, "run", "backend_work:snapshot", "-i", str(rows), "-o", str(tmp_path / "out.jsonl")]
    command += ["--store", str(tmp_path / "runs.db"), "--no-progress", *flags]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path)


def test_fanfold_run_backend_processes_runs_a_python_pipeline_in_the_pool(tmp_path: Path) -> None:
    done = fanfold_run(tmp_path, "--backend", "processes")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [line["value"]["type"] for line in lines] == ["TaskInfo", "TaskInfo"]  # a snapshot: it ran in the pool


def test_fanfold_run_refuses_a_ray_address_without_the_ray_backend(tmp_path: Path) -> None:
    done = fanfold_run(tmp_path, "--ray-address", "127.0.0.1:6380")
    assert done.returncode == 2
    assert "--ray-address 127.0.0.1:6380: a Ray address needs --backend ray" in done.stderr
