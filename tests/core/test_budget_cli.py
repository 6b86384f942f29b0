"""``fanfold run --budget-tokens``: one row too large for the budget is skipped alone, on the
simulated provider over loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fanfold._cli._app import app
from fanfold.testing import Latency, SimulatedProvider


@pytest.fixture
def sim() -> Iterator[SimulatedProvider]:
    with SimulatedProvider(answer="ok", latency=Latency.fixed(0)).in_thread() as provider:
        yield provider


def test_an_oversized_row_is_skipped_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sim: SimulatedProvider
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pipeline.yaml").write_text("model: openai-chat:sim-1\nprompt: '{text}'\n", encoding="utf-8")
    rows = [{"text": "x" * 800_000}] + [{"text": f"row {i}"} for i in range(8)]  # ~200,000 tokens, then small ones
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    args = ["run", "pipeline.yaml", "-i", "rows.jsonl", "-o", "out.jsonl", "-c", "1", "--budget-tokens", "100000",
            "--base-url", sim.openai_base_url, "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [line["status"] for line in out] == ["skipped"] + ["succeeded"] * 8
    assert out[0]["reason"].startswith("larger than the budget left: needs 200,")
    assert out[0]["reason"].endswith(" tokens, 100,000 left")
    assert sim.stats.requests == 8
