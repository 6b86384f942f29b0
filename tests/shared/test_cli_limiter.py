"""``fanfold run --limiter redis://...``: separate runs of the CLI share one budget (and one limit)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fanfold._cli._app import app
from fanfold.testing import Latency, SimulatedProvider


def test_runs_of_the_cli_share_the_budget_through_redis(
    redis_url: str, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pipeline.yaml").write_text("model: openai:gpt-5-mini\nprompt: '{text}'\n", encoding="utf-8")
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"text": f"row {i}"}) + "\n" for i in range(5)), encoding="utf-8")
    limiter = f"{redis_url}?namespace={namespace}"
    statuses = []
    with SimulatedProvider(latency=Latency.fixed(0)).in_thread() as sim:
        for out in ("first.jsonl", "second.jsonl"):
            args = ["run", "pipeline.yaml", "-i", str(rows), "-o", out, "--budget-requests", "6", "--limiter", limiter]
            args += ["--base-url", sim.openai_base_url, "--no-progress"]
            result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
            assert result.exit_code == 0, result.output
            lines = (tmp_path / out).read_text(encoding="utf-8").splitlines()
            statuses.append([json.loads(line)["status"] for line in lines])
        assert sim.stats.requests == 6
    assert statuses[0] == ["succeeded"] * 5
    assert sorted(statuses[1]) == ["skipped"] * 4 + ["succeeded"]


def test_a_limiter_that_is_not_a_redis_url_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pipeline.yaml").write_text("model: openai:gpt-5-mini\nprompt: '{text}'\n", encoding="utf-8")
    (tmp_path / "rows.jsonl").write_text('{"text": "a"}\n', encoding="utf-8")
    args = ["run", "pipeline.yaml", "-i", "rows.jsonl", "--limiter", "http://me:pw-123456@h", "--no-progress"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code != 0
    assert "limiter='http://me@h'" in result.output
    assert "pw-123456" not in result.output
