"""The agno thread, solved: a fanfold team hands one claim per subtask to one foreign agent
(agno, ADK, OpenAI Agents SDK), whose runs overlap under one shared limit and budget."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).parents[2] / "examples"


def example(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("framework", ["agno", "adk", "openai-agents"])
def test_one_foreign_verifier_checks_every_claim_at_once_under_one_limit(
    framework: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    claims = example("agno_verify_claims", monkeypatch)
    result, stats = asyncio.run(claims.verify(framework, latency=0.05))
    team = result.output
    assert team.answer == f"12 of {len(claims.CLAIMS)} claims hold"
    assert len(team.results) == len(claims.CLAIMS)
    assert team.complete
    assert 1 < stats.peak_concurrency <= 8  # the one agent's runs overlap, within the shared limit
    usage = result.summary.usage
    assert usage.requests == stats.requests == len(claims.CLAIMS)  # within the budget of 100, counted once
    assert (usage.input_tokens, usage.output_tokens) == (stats.input_tokens, stats.output_tokens)
