"""The pieces under ``fanfold run``: pipelines (YAML and module:attr), input files, the output
writer and the job's record, each through its own small API."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

import fanfold as ff
from fanfold._cli._batch_files import BadRow, InputFile, Row
from fanfold._cli._jobs import Job
from fanfold._cli._output import OutputWriter, summary_path
from fanfold._cli._pipeline import Overrides, PipelineError, Template, load_pipeline, output_model


def yaml_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


# -- output schemas ---------------------------------------------------------------------------


def test_an_output_schema_becomes_a_pydantic_model() -> None:
    schema = {
        "label": ["spam", "ham"],
        "score": "number",
        "tags": "list[string]",
        "note": "string?",
        "source": {"url": "string", "year": "integer"},
        "claims": [{"text": "string", "true": "boolean"}],
    }
    model = output_model(schema, file="p.yaml", path="output")
    value = model.model_validate(
        {
            "label": "ham",
            "score": 0.5,
            "tags": ["a"],
            "source": {"url": "u", "year": 2020},
            "claims": [{"text": "t", "true": False}],
        }
    )
    assert value.note is None  # type: ignore[attr-defined]
    with pytest.raises(ValidationError):
        model.model_validate({**value.model_dump(), "label": "eggs"})


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"score": "integr"}, "output.score: 'integr' is not a type"),
        ({"ok": [True, False]}, "YAML reads yes, no, on and off as true and false; quote"),
        ({"my field": "string"}, "output.my field: field names are letters"),
        ({"class": "string"}, "'class' is a Python keyword"),
        ({"deep": {"x": 3}}, "output.deep.x: 3 is not a type"),
        ({}, "output: got {}"),
    ],
)
def test_a_bad_output_schema_names_the_field(schema: dict[str, Any], message: str) -> None:
    with pytest.raises(PipelineError, match=message.replace("(", r"\(").replace(")", r"\)")):
        output_model(schema, file="p.yaml", path="output")


class Verdict(BaseModel):
    ok: bool


def test_an_output_schema_may_name_a_pydantic_model() -> None:
    assert output_model(f"{__name__}:Verdict", file="p.yaml", path="output") is Verdict
    with pytest.raises(PipelineError, match="not a Pydantic model"):
        output_model(f"{__name__}:yaml_file", file="p.yaml", path="output")


def test_a_template_fills_in_row_fields_and_names_a_missing_one() -> None:
    render = Template("{title} ({year}): {tags}")
    assert render({"title": "Tea", "year": 1901, "tags": ["hot"]}) == 'Tea (1901): ["hot"]'
    with pytest.raises(ValueError, match=r"uses \{year\}, which the row lacks; the row has: title"):
        render({"title": "Tea"})


# -- YAML pipelines ---------------------------------------------------------------------------


def test_a_yaml_pipeline_builds_its_agents_and_options(tmp_path: Path) -> None:
    path = yaml_file(
        tmp_path,
        """
        model: openai:gpt-5-mini
        instructions: Label it.
        output: {label: [a, b]}
        pattern: {type: vote, n: 3, by: label}
        limits: {concurrency: 8, requests_per_minute: 100}
        budget: {cost: 2}
        retries: 2
        deadline: 60
        """,
    )
    pipeline = load_pipeline(path)
    assert pipeline.name == "p"
    assert pipeline.pattern == "vote"
    built = pipeline.build(Overrides(base_url="http://127.0.0.1:9/v1", concurrency=4, tokens_per_minute=5000))
    assert built.limits.concurrency == 4  # the flag wins over the file
    limit = built.limits.resources["openai:gpt-5-mini"]
    assert isinstance(limit, ff.RateLimit)
    assert (limit.requests_per_minute, limit.tokens_per_minute) == (100, 5000)
    assert built.budget == ff.Budget(cost=2)
    assert built.deadline == 60
    assert type(built.agent).__name__ == "Vote"


def test_every_error_of_a_pipeline_is_named_at_once(tmp_path: Path) -> None:
    path = yaml_file(tmp_path, "model: gpt\nlimits: {concurrency: 0}\nretries: {attempts: 0}\n")
    with pytest.raises(PipelineError) as info:
        load_pipeline(path)
    message = str(info.value)
    assert f"{path}: model: name the model as 'provider:model' (got 'gpt')" in message
    assert f"{path}: limits.concurrency: Input should be greater than or equal to 1 (got 0)" in message
    assert f"{path}: retries.attempts:" in message


def test_a_fields_fix_is_the_one_of_its_section(tmp_path: Path) -> None:
    # ``price.output`` is a number: its fix is the price's, not the output schema's.
    path = yaml_file(tmp_path, "model: openai:m\nprice: {input: 0.25, output: -1}\n")
    with pytest.raises(PipelineError) as info:
        load_pipeline(path)
    lines = str(info.value).splitlines()
    price = next(line for line in lines if ": price.output:" in line)
    assert "(got -1)" in price
    assert price.endswith("pass the price in dollars per million output tokens, a number >= 0 (e.g. 2.0)")


def test_key_and_timeout_are_refused_with_map_reduce(tmp_path: Path) -> None:
    path = yaml_file(tmp_path, "model: openai:m\nkey: id\npattern: {type: map-reduce, reduce: merge}\n")
    with pytest.raises(PipelineError, match="key: not supported with pattern map-reduce"):
        load_pipeline(path)


# -- Python pipelines -------------------------------------------------------------------------


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "jobs_for_test.py").write_text(
        textwrap.dedent(
            """
            import fanfold as ff

            def grade(row):
                return len(row["text"])

            def build():
                return ff.map(grade, key=lambda row: row["id"])

            summary = ff.map_reduce(map=grade, reduce=sum)
            split_first = ff.map_reduce(split=str.split, map=grade, reduce=sum)
            """
        )
    )
    yield tmp_path
    sys.modules.pop("jobs_for_test", None)


def test_a_python_pipeline_is_an_agent_a_map_a_map_reduce_or_a_function_returning_one(module: Path) -> None:
    assert load_pipeline("jobs_for_test:grade").build().agent.name == "grade"
    built = load_pipeline("jobs_for_test:build").build()  # a function of no arguments builds it
    assert built.key is not None
    assert built.key({"id": 7}) == 7
    reduced = load_pipeline("jobs_for_test:summary").build()
    assert reduced.reducer is not None
    assert reduced.fan_in == 10


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("jobs_for_test:split_first", "leave out split="),
        ("jobs_for_test:nothing", "'jobs_for_test' has no 'nothing'; it has: build, ff, grade, split_first, summary"),
        ("no_such_module_here:x", "cannot import 'no_such_module_here'"),
        ("not a target", "no such file"),
    ],
)
def test_a_python_pipeline_that_cannot_load_says_why(module: Path, target: str, message: str) -> None:
    with pytest.raises(PipelineError, match=message):
        load_pipeline(target).build()


# -- input files ------------------------------------------------------------------------------


def test_input_formats_come_from_the_suffix_or_the_flag(tmp_path: Path) -> None:
    (tmp_path / "rows.txt").write_text("a\tb\n1\t2\n")
    with pytest.raises(ff.UsageError, match="cannot tell its format"):
        InputFile.open(tmp_path / "rows.txt")
    rows = list(InputFile.open(tmp_path / "rows.txt", "tsv").rows())
    assert rows == [Row(2, {"a": "1", "b": "2"})]
    with pytest.raises(ff.UsageError, match="no such file"):
        InputFile.open(tmp_path / "missing.jsonl")


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "starts with a header row"), ("a,b,a\n1,2,3\n", "names the column 'a' twice")],
)
def test_a_csv_header_is_checked_when_the_file_is_opened(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "rows.csv").write_text(text)
    with pytest.raises(ff.UsageError, match=message):
        InputFile.open(tmp_path / "rows.csv")


def test_rows_are_read_lazily_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n\n[1, 2]\nnope\n')
    file = InputFile.open(path)
    rows = file.rows()
    assert next(rows) == Row(1, {"a": 1})  # a generator: one row at a time
    assert list(rows) == [Row(3, [1, 2]), BadRow(4, "not valid JSON: Expecting value: line 1 column 1 (char 0)")]
    assert file.count() == 3
    assert file.first_problem() == f"{path}:4: not valid JSON: Expecting value: line 1 column 1 (char 0)"


# -- output -----------------------------------------------------------------------------------


def outcome(index: int, value: Any = None) -> ff.Outcome[Any]:
    return ff.Outcome(index, ff.Status.SUCCEEDED, value if value is not None else index, attempts=1)


@pytest.mark.parametrize("ordered", [True, False])
def test_the_writer_keeps_input_order_through_its_buffer(tmp_path: Path, ordered: bool) -> None:
    writer = OutputWriter(tmp_path / "out.jsonl", ordered=ordered)
    writer.check()
    for index in (2, 0, 3, 1):
        writer.add(outcome(index))
    assert writer.pending == 0
    writer.add(outcome(5))  # 4 never comes (the run stopped): 5 is written last, at close
    assert writer.pending == (1 if ordered else 0)
    writer.close()
    indices = [json.loads(line)["index"] for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert indices == ([0, 1, 2, 3, 5] if ordered else [2, 0, 3, 1, 5])


def test_a_line_says_what_became_of_the_input(tmp_path: Path) -> None:
    writer = OutputWriter(tmp_path / "out.jsonl")
    writer.add(outcome(0, Verdict(ok=True)))
    error = ff.ErrorInfo("ValueError", "bad")
    writer.add(ff.Outcome(1, ff.Status.FAILED, key="k1", attempts=2, error=error, usage=ff.Usage(requests=2)))
    writer.close()
    first, second = (tmp_path / "out.jsonl").read_text().splitlines()
    assert json.loads(first) == {"index": 0, "status": "succeeded", "value": {"ok": True}, "reason": None,
                                 "attempts": 1, "usage": None}  # fmt: skip
    assert json.loads(second)["error"] == {"type": "ValueError", "message": "bad"}
    assert json.loads(second)["key"] == "k1"
    assert json.loads(second)["usage"]["requests"] == 2


def test_the_summary_sits_beside_the_output() -> None:
    assert summary_path(Path("out/results.jsonl")) == Path("out/results.summary.json")
    assert summary_path(Path("results")) == Path("results.summary.json")


# -- the job's record -------------------------------------------------------------------------


def test_a_job_records_its_invocation_without_secrets_and_comes_back_from_it(tmp_path: Path) -> None:
    overrides = Overrides(model="openai:m", base_url="https://user:pw@example.com/v1", api_key="sk-secret",
                          concurrency=3, budget_cost=1.5)  # fmt: skip
    job = Job(pipeline="p.yaml", input=tmp_path / "in.jsonl", output=tmp_path / "out.jsonl", ordered=False,
              limit=10, overrides=overrides)  # fmt: skip
    metadata = job.metadata()
    text = json.dumps(metadata)
    assert "sk-secret" not in text
    assert "pw" not in text
    assert metadata["flags"] == {"model": "openai:m", "concurrency": 3, "budget_cost": 1.5,
                                 "base_url": "https://example.com/v1"}  # fmt: skip
    again = Job.from_metadata("r1", metadata, store="runs.db", progress=False)
    assert (again.resume, again.ordered, again.limit, again.input) == ("r1", False, 10, job.input)
    assert again.overrides.concurrency == 3
    assert again.overrides.api_key is None


def test_a_writer_that_wrote_nothing_leaves_an_earlier_file_unless_told_to_create_it(tmp_path: Path) -> None:
    (tmp_path / "out.jsonl").write_text("earlier\n")
    OutputWriter(tmp_path / "out.jsonl").close(create=False)
    assert (tmp_path / "out.jsonl").read_text() == "earlier\n"
    OutputWriter(tmp_path / "out.jsonl").close()
    assert (tmp_path / "out.jsonl").read_text() == ""
