"""The team examples run offline on the simulated provider and come to their known answers."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from fanfold.testing import Latency

EXAMPLES = Path(__file__).parents[2] / "examples"


def load(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # pydantic looks the module's types up by name
    spec.loader.exec_module(module)
    return module


def test_verify_claims_runs_one_verifier_per_claim(monkeypatch: pytest.MonkeyPatch) -> None:
    example = load("team_verify_claims", monkeypatch)
    team = example.main(latency=Latency.fixed(0.01), verbose=False).output
    assert len(team.results) == len(example.CLAIMS) == 30
    assert team.missing == {}
    assert team.answer.startswith("16 of 30 claims hold.")
    assert "  - The Moon is made of cheese." in team.answer


def test_research_runs_three_members_then_the_editor(monkeypatch: pytest.MonkeyPatch) -> None:
    example = load("team_research", monkeypatch)
    result = example.main(latency=Latency.fixed(0.01), verbose=False)
    team = result.output
    assert list(team.results) == ["history[0]", "economy[0]", "ecology[0]", "brief[0]"]
    assert team.results["brief[0]"].splitlines()[0] == f"History: {example.NOTES['historian']}"
    assert result.summary.retries == 1
    starts = {o.path: o.start for o in team.outcomes}
    ends = {o.path: o.end for o in team.outcomes}
    assert starts["brief[0]"] >= max(ends["history[0]"], ends["economy[0]"], ends["ecology[0]"])


def test_split_dataset_groups_by_the_field_the_leader_picks(monkeypatch: pytest.MonkeyPatch) -> None:
    example = load("team_split_dataset", monkeypatch)
    team = example.main(latency=Latency.fixed(0.01), verbose=False, rows=2_000).output
    assert team.plan.subtasks[0].split.field == "region"
    assert sorted(team.results) == [f"analyse[{i}]" for i in range(5)]
    assert team.answer["orders"] == 2_000
    assert {g["region"] for g in team.answer["groups"]} == set(example.REGIONS)
