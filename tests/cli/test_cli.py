"""The ``fanfold`` command line."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from typer.testing import CliRunner

from fanfold._cli._app import app


def test_simulate_help_lists_the_flags() -> None:
    result = CliRunner().invoke(app, ["simulate", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for flag in ("--port", "--requests-per-minute", "--tokens-per-minute", "--burst", "--latency", "--rate-429",
                 "--seed", "--no-rate-limit-headers"):  # fmt: skip
        assert flag in result.output


def test_bad_settings_exit_with_a_message_naming_them() -> None:
    result = CliRunner().invoke(app, ["simulate", "--rate-429", "0.7", "--rate-500", "0.7"])
    assert result.exit_code == 2
    assert "add up to 1.4" in result.output


@pytest.fixture
def served() -> Iterator[str]:
    """``fanfold simulate`` in its own process; yields the URL it prints."""
    command = [sys.executable, "-m", "fanfold._cli._app", "simulate", "--port", "0", "--latency", "0", "--rpm", "600"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # blocks until the server is listening (or has died)
        found = re.search(r"http://127\.0\.0\.1:\d+", first)
        assert found, f"no URL in {first!r}; stderr: {process.stderr.read() if process.stderr else ''}"
        yield found.group(0)
    finally:
        process.terminate()
        process.communicate(timeout=10)
    assert process.returncode == 0  # SIGTERM stops it cleanly


def test_simulate_serves_an_sdk_until_terminated(served: str) -> None:
    with openai.OpenAI(base_url=served + "/v1", api_key="sk-test", max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
    assert raw.headers["x-ratelimit-limit-requests"] == "600"
    assert (raw.parse().choices[0].message.content or "").startswith("Simulated answer: ")


@pytest.mark.parametrize("command", [["runs", "list"], ["runs", "show", "r1"], ["runs", "export", "r1"]])
def test_reading_commands_create_no_store(command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2, result.output
    assert "no store there" in result.output
    assert list(tmp_path.iterdir()) == []
