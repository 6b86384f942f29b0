"""``fanfold run --batch-api``: a pipeline's model requests go through the Batch API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fanfold._cli._app import app
from fanfold.testing import Latency, SimulatedProvider


@pytest.mark.parametrize("model", ["openai-chat:sim-1", "anthropic:sim-1"])
def test_fanfold_run_batch_api_sends_one_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: str) -> None:
    monkeypatch.chdir(tmp_path)
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"text": f"row {i}"}) + "\n" for i in range(12)))
    (tmp_path / "pipeline.yaml").write_text(f"model: {model}\nprompt: '{{text}}'\n")
    with SimulatedProvider(latency=Latency.fixed(0)).in_thread() as sim:
        base_url = sim.anthropic_base_url if model.startswith("anthropic") else sim.openai_base_url
        args = ["run", "pipeline.yaml", "-i", str(rows), "--base-url", base_url, "--batch-api"]
        result = CliRunner().invoke(app, [*args, "--no-progress"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        assert sim.batches["created"] == 1
        assert sim.batches["answered"] == 12
        assert sim.stats.requests == 0
    out = [json.loads(line) for line in (tmp_path / "rows.results.jsonl").read_text().splitlines()]
    assert len(out) == 12
