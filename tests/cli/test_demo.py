"""The demos, on the simulated provider, find what the bundled documents contain: the
``review_documents.py`` script on a few of them, and ``fanfold demo`` (``make demo``) on all."""

import importlib.util
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from typer.testing import CliRunner

import fanfold as ff
from fanfold._cli._app import app
from fanfold.testing import Faults, Latency, SimRequest

EXAMPLES = Path(__file__).parents[2] / "examples"
# Documents with a known high-severity finding each, and one with no issue at all.
KNOWN = {
    "incident-leaked-token": "secret in plain text",
    "design-data-retention": "no rollback plan",
    "incident-lost-uploads": "data loss",
    "memo-hiring-plan": None,
}


@pytest.fixture
def demo(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.syspath_prepend(str(EXAMPLES))  # as when the script runs: its helpers sit next to it
    spec = importlib.util.spec_from_file_location("review_documents", EXAMPLES / "review_documents.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # pydantic looks the module's types up by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("_simulated_answers", None)


@pytest.fixture
def documents(tmp_path: Path) -> Path:
    for name in KNOWN:
        shutil.copy(EXAMPLES / "documents" / f"{name}.txt", tmp_path / f"{name}.txt")
    return tmp_path


def fail_twice(number: int, request: SimRequest) -> str | None:
    """A 500 and an overload (a 503 from OpenAI) early on, which the LLM agents retry."""
    return {2: "500", 5: "529"}.get(number)


def test_demo_reviews_documents_and_merges_every_finding(demo: ModuleType, documents: Path) -> None:
    sections = demo.split(demo.load_documents(documents))
    sim = demo.simulated_provider(latency=Latency.fixed(0), faults=Faults(script=fail_twice))
    result = demo.main(documents, progress=False, sim=sim)
    report = result.output

    assert report.sections == len(sections) == result.summary.total == result.summary.succeeded
    assert sorted(report.documents) == sorted(KNOWN)
    assert sum(report.severities.model_dump().values()) == len(sections)
    found = {(document, issue.issue) for issue in report.issues for document in issue.documents}
    assert {(document, issue) for document, issue in KNOWN.items() if issue} <= found
    assert all(issue.severity == "high" for issue in report.issues if issue.issue in KNOWN.values())
    assert not any(document == "memo-hiring-plan" for document, _ in found)
    assert report.severities.high >= 3

    # One model call per section and per group of findings or reports, and one more for each
    # of the two failures (and any 429, on a slow machine), which were retried.
    failed = 2 + sim.stats.status_429
    assert sim.stats.by_status[500] == 1
    assert result.summary.usage.requests == len(sections) + reductions(len(sections), demo.FAN_IN) + failed
    assert result.summary.retries == failed


def reductions(parts: int, fan_in: int) -> int:
    """Synthesis calls for ``parts`` findings: groups of ``fan_in``, level after level, then the final one."""
    calls = 1
    while parts > fan_in:
        parts = -(-parts // fan_in)
        calls += parts
    return calls


def test_a_real_model_without_its_key_is_a_usage_error(
    demo: ModuleType, documents: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ff.UsageError, match="OPENAI_API_KEY"):
        demo.main(documents, progress=False, model="openai:gpt-5-mini")


# -- `fanfold demo` (what `make demo` runs): the same review as a batch run through the CLI ------


def test_fanfold_demo_reviews_every_paragraph_as_a_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    output = tmp_path / "results.jsonl"
    result = CliRunner().invoke(app, ["demo", "--latency", "0", "--no-progress", "-o", str(output)])
    assert result.exit_code == 0, result.output

    rows = [json.loads(line) for line in (EXAMPLES / "data" / "paragraphs.jsonl").read_text().splitlines()]
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert [line["index"] for line in lines] == list(range(len(rows)))
    assert len(rows) == 261
    assert all(line["status"] == "succeeded" for line in lines)
    assert all(line["value"]["document"] == row["document"] for line, row in zip(lines, rows, strict=True))

    summary = json.loads((tmp_path / "results.summary.json").read_text())
    report = summary["result"]
    assert report["sections"] == 261
    assert len(report["documents"]) == 40
    found = {(document, issue["issue"]) for issue in report["issues"] for document in issue["documents"]}
    assert {(document, issue) for document, issue in KNOWN.items() if issue} <= found
    assert not any(document == "memo-hiring-plan" for document, _ in found)
    assert "Reviewed 261 sections of 40 documents" in result.output
    assert (tmp_path / ".fanfold" / "runs.db").is_file()  # journaled in the default store


def test_fanfold_demo_on_a_real_model_without_its_key_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    result = CliRunner().invoke(app, ["demo", "--model", "openai:gpt-5-mini", "--no-progress"])
    assert result.exit_code == 2
    assert "OPENAI_API_KEY" in result.output
