"""Mistakes that would break every row are caught before the first call (exit 2, naming the
value and the fix); a run where every input failed exits 1; duplicate keys; SIGTERM; help off a
terminal. Driven through the real ``fanfold`` command."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tests.cli.test_cli_run import invoke, jsonl, lines, python_pipeline, write

from fanfold.testing import SimulatedProvider

FANFOLD = [sys.executable, "-m", "fanfold._cli._app"]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.fixture
def sim() -> object:
    from fanfold.testing import Latency

    with SimulatedProvider(latency=Latency.fixed(0)).in_thread() as provider:
        yield provider


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model", "nosuch:model"], ["--model 'nosuch:model': unknown provider 'nosuch'"]),
        (["--base-url", "ftp://127.0.0.1/v1"], ["--base-url 'ftp://127.0.0.1/v1': pass an http:// or https:// URL"]),
        (["--base-url", "http://[::1:x/v1"], ["--base-url 'http://[::1:x/v1': not a valid URL (Invalid IPv6 URL)"]),
        (["--base-url", "http://127.0.0.1:port/v1"], ["not a valid URL", "http://127.0.0.1:8765/v1"]),
        (
            ["--base-url", "http://me:s3cret@127.0.0.1/v1"],
            ["--base-url 'http://***@127.0.0.1/v1': holds credentials", "environment variable"],
        ),
        (["--store", "nosuch/dir/runs.db"], ["--store 'nosuch/dir/runs.db': the folder 'nosuch/dir' does not exist"]),
    ],
)
def test_a_mistake_that_breaks_every_row_exits_2_before_any_call(
    workdir: Path, sim: SimulatedProvider, args: list[str], expected: list[str]
) -> None:
    rows = jsonl(workdir / "rows.jsonl", [{"text": "a"}, {"text": "b"}])
    yaml = write(workdir / "p.yaml", "model: openai-chat:sim-1\nprompt: '{text}'\n")
    flags = ["--base-url", sim.openai_base_url] if "--base-url" not in args else []
    result = invoke("run", yaml, "-i", rows, "--no-progress", *flags, *args)
    assert result.exit_code == 2, result.output
    for text in expected:
        assert text in result.output
    assert "s3cret" not in result.output
    assert "Traceback" not in result.output
    assert sim.stats.requests == 0
    assert not (workdir / "rows.results.jsonl").exists()
    assert not (workdir / "nosuch").exists()


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_a_prompt_field_no_row_has_exits_2(workdir: Path, sim: SimulatedProvider, suffix: str) -> None:
    if suffix == ".csv":
        rows = write(workdir / "rows.csv", "title,body\na,b\n")
    else:
        rows = jsonl(workdir / "rows.jsonl", [{"title": "a", "body": "b"}, {"title": "c"}])
    yaml = write(workdir / "p.yaml", "model: openai-chat:sim-1\nprompt: '{title}: {text}'\n")
    result = invoke("run", yaml, "-i", rows, "--no-progress", "--base-url", sim.openai_base_url)
    assert result.exit_code == 2, result.output
    assert "prompt: uses {text}, which no row has" in result.output
    assert "body, title" in result.output
    assert sim.stats.requests == 0


def test_a_run_where_every_input_failed_exits_1(workdir: Path) -> None:
    target = python_pipeline(workdir, "always_fails", "def pipeline(row):\n    raise ValueError('no: ' + row)\n")
    result = invoke("run", target, "-i", jsonl(workdir / "rows.jsonl", ["a", "b"]), "-o", "out.jsonl",
                    "--no-progress")  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "every input failed (2); the first: line 1 of the output: ValueError: no: a" in result.output


def test_a_run_where_some_inputs_failed_exits_0(workdir: Path) -> None:
    target = python_pipeline(workdir, "some_fail", "def pipeline(row):\n    assert row != 'b'\n    return row\n")
    result = invoke("run", target, "-i", jsonl(workdir / "rows.jsonl", ["a", "b"]), "-o", "out.jsonl",
                    "--no-progress")  # fmt: skip
    assert result.exit_code == 0, result.output


def test_reading_commands_leave_no_store_behind_with_a_missing_folder(workdir: Path) -> None:
    target = python_pipeline(workdir, "echo_store", "def pipeline(row):\n    return row\n")
    result = invoke("run", target, "-i", jsonl(workdir / "rows.jsonl", [1]), "--store", workdir / "no" / "runs.db")
    assert result.exit_code == 2
    assert not (workdir / "no").exists()


# -- duplicate keys ---------------------------------------------------------------------------

DUPLICATES = [{"id": 1, "text": "a"}, {"id": 2, "text": "b"}, {"id": 1, "text": "c"}]


def test_a_duplicate_key_fails_the_later_row_naming_both_lines(workdir: Path) -> None:
    yaml_free = jsonl(workdir / "rows.jsonl", DUPLICATES)
    sys.modules.pop("keyed", None)
    write(workdir / "keyed.py", "import fanfold as ff\n\ndef text(row):\n    return row['text']\n\n"
          "pipeline = ff.map(text, key=lambda row: row['id'])\n")  # fmt: skip
    result = invoke("run", "keyed:pipeline", "-i", yaml_free, "-o", "out.jsonl", "--no-progress")
    assert result.exit_code == 0, result.output
    out = lines(workdir / "out.jsonl")
    assert [line["status"] for line in out] == ["succeeded", "succeeded", "failed"]
    assert out[2]["error"]["message"] == (
        f"{yaml_free}:3: the key 1 is also the key of {yaml_free}:1; give each row its own key"
    )


def test_a_duplicate_yaml_key_with_strict_stops_before_the_run(workdir: Path, sim: SimulatedProvider) -> None:
    rows = jsonl(workdir / "rows.jsonl", DUPLICATES)
    yaml = write(workdir / "p.yaml", "model: openai-chat:sim-1\nprompt: '{text}'\nkey: id\n")
    result = invoke("run", yaml, "-i", rows, "--strict", "--base-url", sim.openai_base_url, "--no-progress")
    assert result.exit_code == 2
    assert f"{rows}:3: the key 1 is also the key of {rows}:1" in result.output
    assert sim.stats.requests == 0
    loose = invoke("run", yaml, "-i", rows, "--base-url", sim.openai_base_url, "--no-progress", "-o", "out.jsonl")
    assert loose.exit_code == 0, loose.output
    assert [line["status"] for line in lines(workdir / "out.jsonl")] == ["succeeded", "succeeded", "failed"]


# -- signals and help -------------------------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="SIGTERM")
def test_sigterm_exits_143_and_the_run_can_be_resumed(tmp_path: Path) -> None:
    (tmp_path / "stuck.py").write_text(
        "import asyncio\n\nasync def pipeline(row):\n    await asyncio.Event().wait()\n", encoding="utf-8"
    )
    jsonl(tmp_path / "rows.jsonl", [1, 2, 3])
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    command = [*FANFOLD, "run", "stuck:pipeline", "-i", "rows.jsonl", "--store", "runs.db", "--no-progress"]
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    started = process.stderr.readline()  # "fanfold: run ID: ...", printed once the run is recorded
    assert re.search(r"fanfold: run \w+", started), started
    process.send_signal(signal.SIGTERM)
    _, rest = process.communicate(timeout=60)
    assert process.returncode == 143, rest
    assert "fanfold runs resume" in rest


def test_help_off_a_terminal_keeps_option_names_whole() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "TERMINAL_WIDTH")}
    done = subprocess.run([*FANFOLD, "run", "--help"], env=env, capture_output=True, text=True, check=True)
    for flag in ("--max-row-bytes", "--progress-every", "--budget-requests", "--no-progress"):
        assert flag in done.stdout
    assert "143 by SIGTERM" in " ".join(done.stdout.split())


def test_a_refused_connection_says_so_naming_the_address(workdir: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on: bound, never listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        rows = jsonl(workdir / "rows.jsonl", [{"text": "a"}])
        yaml = write(workdir / "p.yaml", "model: openai-chat:sim-1\nprompt: '{text}'\nretries: 1\n")
        result = invoke("run", yaml, "-i", rows, "-o", "out.jsonl", "--no-progress",
                        "--base-url", f"http://127.0.0.1:{port}/v1")  # fmt: skip
    assert result.exit_code == 1, result.output
    error = lines(workdir / "out.jsonl")[0]["error"]
    assert error["type"] == "ConnectionRefused"
    assert error["message"].startswith(f"connection refused to 127.0.0.1:{port}: nothing is listening there")


# -- what a person sees -----------------------------------------------------------------------


def test_progress_says_reducing_once_the_map_is_done(workdir: Path, sim: SimulatedProvider) -> None:
    rows = jsonl(workdir / "rows.jsonl", [{"text": f"part {i}"} for i in range(7)])
    yaml = write(workdir / "p.yaml", "model: openai-chat:sim-1\nprompt: '{text}'\n"
                 "pattern: {type: map-reduce, reduce: Add up., fan_in: 3}\n")  # fmt: skip
    result = invoke("run", yaml, "-i", rows, "-o", "out.jsonl", "--base-url", sim.openai_base_url,
                    "--progress", "--progress-every", "0")  # fmt: skip
    assert result.exit_code == 0, result.output
    progress = [line for line in result.output.splitlines() if line.startswith("p: ")]
    reducing = [line for line in progress if "7/7 (100%) mapped, reducing..." in line]
    assert reducing, progress
    assert progress[-1].startswith("p: 7/7 (100%) done")  # the last line, once the reduction is in
    assert all("(100%) done" not in line for line in progress[:-1])


def test_progress_counts_cancelled_and_skipped_as_the_summary_does() -> None:
    from fanfold._outcome import Outcome, Status
    from fanfold._progress import ProgressDisplay

    display = ProgressDisplay(total=4, count_outcomes=False, live=False)
    for index, status in enumerate([Status.SUCCEEDED, Status.CANCELLED, Status.SKIPPED, Status.SKIPPED]):
        display.record(Outcome(index, status))
    line = display.tally.line(1.0)
    assert "1 cancelled" in line
    assert "2 skipped" in line
