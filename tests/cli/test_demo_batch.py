"""``fanfold demo --batch-api``: the demo's review through the simulated provider's Batch API,
at half the cost of the same requests at the normal price."""

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fanfold._cli._app import app

EXAMPLES = Path(__file__).parents[2] / "examples"
PRICE = (0.25, 2.0)  # the simulated model's price (examples/demo_helpers.py), dollars per million tokens


def test_fanfold_demo_batch_api_halves_the_cost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    output = tmp_path / "results.jsonl"
    args = ["demo", "--batch-api", "--latency", "0", "--no-progress", "-o", str(output)]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "240"})
    assert result.exit_code == 0, result.output

    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(lines) == 261
    assert all(line["status"] == "succeeded" for line in lines)
    assert "Reviewed 261 sections of 40 documents" in result.output
    assert "0 requests through its live endpoint" in result.output  # every request went in a batch

    # The last line: the run's cost against the same tokens at the normal price, halved.
    last = result.output.strip().splitlines()[-1]
    found = re.fullmatch(r"batch API: \$([\d.]+) for ([\d,]+) requests, against \$([\d.]+) .*: 0\.50x the cost", last)
    assert found is not None, last
    usage = json.loads((tmp_path / "results.summary.json").read_text())["usage"]
    normal = (usage["input_tokens"] * PRICE[0] + usage["output_tokens"] * PRICE[1]) / 1e6
    assert float(found[3]) == pytest.approx(normal, abs=1e-4)
    assert float(found[1]) == pytest.approx(normal / 2, abs=1e-4)
    assert usage["cost"] == pytest.approx(normal / 2)
    assert int(found[2].replace(",", "")) == usage["requests"]
