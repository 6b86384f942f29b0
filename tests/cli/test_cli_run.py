"""``fanfold run`` and ``fanfold runs``: batches over JSONL and CSV files, on the simulated
provider (loopback) or on Python pipelines, with a journal in a SQLite file per test."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from fanfold._cli._app import app
from fanfold.testing import Faults, Latency, SimRequest, SimulatedProvider

MODEL = ["--model", "openai-chat:sim-1"]


@pytest.fixture
def sim() -> Iterator[SimulatedProvider]:
    with SimulatedProvider(latency=Latency.fixed(0)).in_thread() as provider:
        yield provider


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory of its own (the default store lands in it), importable for Python pipelines."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def pipeline(workdir: Path, body: str = "", name: str = "pipeline.yaml") -> Path:
    return write(workdir / name, "model: openai:gpt-5-mini\n" + textwrap.dedent(body))


def python_pipeline(workdir: Path, module: str, source: str) -> str:
    """A Python pipeline module in the working directory; returns its ``module:attr``."""
    write(workdir / f"{module}.py", source)
    sys.modules.pop(module, None)
    return f"{module}:pipeline"


# -- pipelines that cannot run fail before any call, naming the field --------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("pattern: {type: vote, n: 0}\n", ["pipeline.yaml: pattern.n:", "greater than or equal to 1", "(got 0)"]),
        (
            "limits: {concurency: 5}\n",
            ["pipeline.yaml: limits.concurency: unknown field", "did you mean 'concurrency'"],
        ),
        ("pattern: vot\n", ["pipeline.yaml: pattern.type: 'vot' is not a pattern", "map, vote, map-reduce, team"]),
        (
            "output: {score: integr}\n",
            [
                "pipeline.yaml: output.score: 'integr' is not a type",
                "list[string], a list of allowed strings [a, b, c]",
            ],
        ),
        ("pattern: {type: map-reduce}\n", ["pipeline.yaml: pattern.reduce: required", "reducer's instructions"]),
        ("prompt: 'Hello {name'\n", ["pipeline.yaml: prompt: not a valid template"]),
        ("output: {a: string}\npattern: {type: vote, by: b}\n", ["pattern.by: 'b' is not a field", "pass one of: a"]),
        ("pattern: team\n", ["pipeline.yaml: pattern.members: required"]),
        ("pattern: {type: team, members: [{name: a}, {name: a}]}\n", ["pattern.members[1].name: 'a' names two"]),
        ("pattern: {type: team, members: [{name: a}], merge: b}\n", ["pattern.merge: 'b'; pass one of: concat"]),
        ("budget: {cost: -1}\n", ["pipeline.yaml: budget.cost:", "(got -1)"]),
    ],
)
def test_an_invalid_pipeline_names_the_field_and_calls_nothing(
    workdir: Path, sim: SimulatedProvider, body: str, expected: list[str]
) -> None:
    rows = jsonl(workdir / "rows.jsonl", [{"text": "a"}])
    result = invoke("run", pipeline(workdir, body), "-i", rows, "--base-url", sim.openai_base_url, *MODEL)
    assert result.exit_code == 2, result.output
    for text in expected:
        assert text in result.output
    assert sim.stats.requests == 0
    assert not (workdir / "rows.results.jsonl").exists()


def test_a_yaml_syntax_error_names_its_line(workdir: Path) -> None:
    bad = write(workdir / "bad.yaml", "model: openai:gpt-5-mini\nlimits: {concurrency: 5\n")
    result = invoke("run", bad, "-i", jsonl(workdir / "rows.jsonl", []))
    assert result.exit_code == 2
    assert "bad.yaml:3:1: not valid YAML" in result.output


def test_a_pipeline_without_a_model_says_how_to_name_one(workdir: Path) -> None:
    bad = write(workdir / "bad.yaml", "instructions: Summarize.\n")
    result = invoke("run", bad, "-i", jsonl(workdir / "rows.jsonl", []))
    assert result.exit_code == 2
    assert "bad.yaml: model: required; name the model as 'provider:model'" in result.output


def test_a_missing_api_key_names_the_variable(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    result = invoke("run", pipeline(workdir), "-i", jsonl(workdir / "rows.jsonl", [{"text": "a"}]))
    assert result.exit_code == 2
    assert "OPENAI_API_KEY" in result.output


@pytest.mark.parametrize("where", ["missing-dir/out.jsonl", "a-directory"])
def test_an_unwritable_output_fails_before_any_call(workdir: Path, sim: SimulatedProvider, where: str) -> None:
    (workdir / "a-directory").mkdir()
    rows = jsonl(workdir / "rows.jsonl", [{"text": "a"}])
    result = invoke("run", pipeline(workdir), "-i", rows, "-o", workdir / where, "--base-url", sim.openai_base_url)
    assert result.exit_code == 2
    assert str(workdir / where) in result.output
    assert "does not exist" in result.output or "is a directory" in result.output
    assert sim.stats.requests == 0


# -- rows, good and bad ------------------------------------------------------------------------


def test_rows_become_lines_in_input_order_with_a_summary(workdir: Path, sim: SimulatedProvider) -> None:
    rows = jsonl(workdir / "tickets.jsonl", [{"id": f"t{i}", "text": f"ticket {i}"} for i in range(20)])
    yaml = pipeline(workdir, "prompt: 'Ticket: {text}'\nkey: id\noutput: {category: [bug, billing], urgent: boolean}\n")
    result = invoke("run", yaml, "-i", rows, "-o", "out.jsonl", "--base-url", sim.openai_base_url, "--no-progress")
    assert result.exit_code == 0, result.output

    out = lines(workdir / "out.jsonl")
    assert [line["index"] for line in out] == list(range(20))
    assert [line["key"] for line in out] == [f"t{i}" for i in range(20)]
    assert all(line["status"] == "succeeded" and set(line["value"]) == {"category", "urgent"} for line in out)
    assert out[0]["usage"]["requests"] == 1
    assert out[0]["attempts"] == 1
    summary = json.loads((workdir / "out.summary.json").read_text())
    assert summary["status"] == "succeeded"
    assert summary["lines"] == summary["total"] == 20
    assert summary["counts"]["succeeded"] == 20
    assert summary["usage"]["requests"] == sim.stats.requests == 20
    assert "run " + summary["run_id"] + " succeeded" in result.output


def test_malformed_jsonl_rows_are_failed_lines_naming_file_and_line(workdir: Path, sim: SimulatedProvider) -> None:
    rows = write(workdir / "rows.jsonl", '{"text": "one"}\n{"text": \n\n{"body": "no text"}\n"just a string"\n')
    yaml = pipeline(workdir, "prompt: '{text}'\n")
    result = invoke("run", yaml, "-i", rows, "-o", "out.jsonl", "--base-url", sim.openai_base_url, "--no-progress")
    assert result.exit_code == 0, result.output

    out = lines(workdir / "out.jsonl")
    assert [line["status"] for line in out] == ["succeeded", "failed", "failed", "failed"]
    assert out[1]["error"]["type"] == "MalformedRow"
    assert out[1]["error"]["message"].startswith(f"{rows}:2: not valid JSON")
    assert out[2]["error"]["message"] == f"{rows}:4: the prompt uses {{text}}, which the row lacks; the row has: body"
    assert out[3]["error"]["message"].startswith(f"{rows}:5: the prompt template needs each row to be an object")
    assert sim.stats.requests == 1  # bad rows call nothing
    assert "3 inputs did not succeed" in result.output


def test_malformed_csv_rows_are_failed_lines(workdir: Path, sim: SimulatedProvider) -> None:
    rows = write(workdir / "rows.csv", 'id,text\n1,hello\n2,too,many\n3,"broken"quote\n4,"multi\nline"\n5\n')
    yaml = pipeline(workdir, "prompt: '#{id}: {text}'\nkey: id\n")
    result = invoke("run", yaml, "-i", rows, "-o", "out.jsonl", "--base-url", sim.openai_base_url, "--no-progress")
    assert result.exit_code == 0, result.output

    out = lines(workdir / "out.jsonl")
    assert [line["status"] for line in out] == ["succeeded", "failed", "failed", "succeeded", "failed"]
    assert out[1]["error"]["message"] == f"{rows}:3: 3 fields where the header has 2"
    assert out[2]["error"]["message"].startswith(f"{rows}:4: not valid CSV")
    assert out[3]["key"] == "4"  # a quoted field over two lines is one row
    assert out[4]["error"]["message"] == f"{rows}:7: 1 fields where the header has 2"


def test_an_unclosed_quote_is_named_at_the_line_it_opens(workdir: Path) -> None:
    target = python_pipeline(workdir, "echo_csv", "def pipeline(row):\n    return row\n")
    rows = write(workdir / "rows.csv", 'id,text\n1,one\n2,"open\n3,three\n')
    result = invoke("run", target, "-i", rows, "-o", "out.jsonl", "--no-progress")
    assert result.exit_code == 0, result.output
    out = lines(workdir / "out.jsonl")
    assert [line["status"] for line in out] == ["succeeded", "failed", "succeeded"]
    assert out[1]["error"]["message"].startswith(
        f"{rows}:3: not valid CSV: a quote opened on line 3 is never closed (the file ends inside it, at line 4)"
    )


def test_strict_stops_at_the_first_malformed_row_before_any_call(workdir: Path, sim: SimulatedProvider) -> None:
    rows = write(workdir / "rows.jsonl", '{"text": "one"}\n{"text": "two"}\n{oops}\n')
    yaml = pipeline(workdir, "prompt: '{text}'\n")
    result = invoke("run", yaml, "-i", rows, "--strict", "--base-url", sim.openai_base_url)
    assert result.exit_code == 2
    assert f"{rows}:3: not valid JSON" in result.output
    assert "leave out --strict" in result.output
    assert sim.stats.requests == 0


# -- order -------------------------------------------------------------------------------------

# Input 0 finishes last: it waits until every other input has finished.
HELD_BACK = """
    import asyncio

    finished = set()
    others_done = None

    async def pipeline(row):
        global others_done
        if others_done is None:
            others_done = asyncio.Event()
        if row["n"] == 0:
            await others_done.wait()
        finished.add(row["n"])
        if len(finished) == {total} - 1:
            others_done.set()
        return row["n"] * 10
"""


@pytest.mark.parametrize("ordered", [True, False])
def test_lines_come_in_input_order_or_as_they_finish(workdir: Path, ordered: bool) -> None:
    target = python_pipeline(workdir, f"held_back_{ordered}", HELD_BACK.format(total=6))
    rows = jsonl(workdir / "rows.jsonl", [{"n": n} for n in range(6)])
    flags = [] if ordered else ["--unordered"]
    result = invoke("run", target, "-i", rows, "-o", "out.jsonl", "--no-progress", *flags)
    assert result.exit_code == 0, result.output

    out = lines(workdir / "out.jsonl")
    order = [line["index"] for line in out]
    assert sorted(order) == list(range(6))
    assert [line["value"] for line in out] == [i * 10 for i in order]
    assert order[-1] == (5 if ordered else 0)
    assert order == sorted(order) if ordered else order != sorted(order)


# -- the store: list, show, export, resume -------------------------------------------------------


def test_runs_list_show_and_export(workdir: Path, sim: SimulatedProvider) -> None:
    rows = jsonl(workdir / "rows.jsonl", [{"text": f"row {i}"} for i in range(5)])
    yaml = pipeline(workdir, "prompt: '{text}'\n")
    store = ["--store", str(workdir / "runs.db")]
    ran = invoke("run", yaml, "-i", rows, "-o", "out.jsonl", "--run-id", "first", "--base-url", sim.openai_base_url,
                 "--no-progress", *store)  # fmt: skip
    assert ran.exit_code == 0, ran.output

    listed = invoke("runs", "list", *store)
    assert listed.exit_code == 0
    assert "first" in listed.output
    assert "succeeded" in listed.output
    shown = invoke("runs", "show", "first", *store)
    assert shown.exit_code == 0
    assert "run first (pipeline): succeeded" in shown.output
    assert str(rows.resolve()) in shown.output
    as_json = json.loads(invoke("runs", "show", "first", "--json", *store).output)
    assert as_json["config"]["metadata"]["flags"] == {"base_url": sim.openai_base_url}
    assert as_json["journaled"] == {"succeeded": 5}

    exported = invoke("runs", "export", "first", *store)
    assert exported.exit_code == 0
    assert [json.loads(line) for line in exported.stdout.splitlines()] == lines(workdir / "out.jsonl")
    missing = invoke("runs", "show", "nope", *store)
    assert missing.exit_code == 2
    assert "no run 'nope'" in missing.output
    again = invoke("run", yaml, "-i", rows, "--run-id", "first", "--base-url", sim.openai_base_url, *store)
    assert again.exit_code == 2
    assert "already has that run" in again.output


# The run interrupts itself (as Ctrl-C would) once 5 inputs have finished; the resumed run must
# not call the agent again for inputs the journal has.
INTERRUPTED = """
    import os, signal

    calls = []

    async def pipeline(row):
        calls.append(row["n"])
        if len(calls) == 5 and os.environ.get("INTERRUPT") == "1":
            os.kill(os.getpid(), signal.SIGINT)
        return row["n"]
"""


@pytest.mark.skipif(os.name != "posix", reason="the run interrupts itself with a POSIX signal")
def test_an_interrupted_run_resumes_without_running_journaled_inputs_again(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = python_pipeline(workdir, "interrupted", INTERRUPTED)
    rows = jsonl(workdir / "rows.jsonl", [{"n": n} for n in range(40)])
    monkeypatch.setenv("INTERRUPT", "1")
    first = invoke("run", target, "-i", rows, "-o", "out.jsonl", "--run-id", "r1", "-c", "2", "--no-progress")
    assert first.exit_code == 130, first.output
    assert "resume with `fanfold runs resume r1`" in first.output
    interrupted = lines(workdir / "out.jsonl")
    done = {line["index"] for line in interrupted if line["status"] == "succeeded"}
    assert len(interrupted) == 40
    assert 5 <= len(done) < 40
    assert {line["status"] for line in interrupted} - {"succeeded"} <= {"cancelled", "skipped"}

    import interrupted as module

    module.calls.clear()
    monkeypatch.setenv("INTERRUPT", "0")
    resumed = invoke("runs", "resume", "r1", "--no-progress")
    assert resumed.exit_code == 0, resumed.output
    assert sorted(module.calls) == sorted(set(range(40)) - done)  # journaled inputs are not run again
    out = lines(workdir / "out.jsonl")
    assert [line["index"] for line in out] == list(range(40))  # each input exactly once, in order
    assert all(line["status"] == "succeeded" and line["value"] == line["index"] for line in out)
    summary = json.loads((workdir / "out.summary.json").read_text())
    assert summary["resumed"] == len(done)
    assert summary["counts"]["succeeded"] == 40


def test_resume_of_an_unknown_run_is_a_usage_error(workdir: Path) -> None:
    result = invoke("runs", "resume", "nope")
    assert result.exit_code == 2
    assert "no store there" in result.output  # nothing has run here: no store, and none is created
    assert not (workdir / ".fanfold").exists()


# -- patterns, limits and progress ---------------------------------------------------------------


def test_a_map_reduce_pipeline_writes_the_reduction_to_the_summary_and_stdout(
    workdir: Path, sim: SimulatedProvider
) -> None:
    rows = jsonl(workdir / "rows.jsonl", [{"text": f"part {i}"} for i in range(7)])
    yaml = pipeline(workdir, "output: {words: integer}\npattern: {type: map-reduce, reduce: Add up., fan_in: 3,"
                             " output: {total: integer}}\n")  # fmt: skip
    result = invoke("run", yaml, "-i", rows, "-o", "out.jsonl", "--base-url", sim.openai_base_url, "--no-progress")
    assert result.exit_code == 0, result.output
    summary = json.loads((workdir / "out.summary.json").read_text())
    assert set(summary["result"]) == {"total"}
    assert json.loads(result.stdout) == summary["result"]
    assert len(lines(workdir / "out.jsonl")) == 7
    assert sim.stats.requests == 7 + 3 + 1  # the map, one level of 3 reductions, the final one


def test_a_vote_pipeline_votes_on_a_field(workdir: Path, sim: SimulatedProvider) -> None:
    rows = jsonl(workdir / "rows.jsonl", [{"text": "a"}, {"text": "b"}])
    yaml = pipeline(workdir, "output: {label: [good, bad]}\npattern: {type: vote, n: 3, by: label}\n")
    result = invoke("run", yaml, "-i", rows, "-o", "out.jsonl", "--base-url", sim.openai_base_url, "--no-progress")
    assert result.exit_code == 0, result.output
    assert [set(line["value"]) for line in lines(workdir / "out.jsonl")] == [{"label"}, {"label"}]
    assert 4 <= sim.stats.requests <= 6  # three samples per row (two identical answers decide it)


def test_a_budget_skips_what_it_cannot_cover(workdir: Path, sim: SimulatedProvider) -> None:
    rows = jsonl(workdir / "rows.jsonl", [{"text": f"row {i}"} for i in range(10)])
    result = invoke("run", pipeline(workdir, "prompt: '{text}'\n"), "-i", rows, "-o", "out.jsonl", "-c", "1",
                    "--budget-requests", "4", "--base-url", sim.openai_base_url, "--no-progress")  # fmt: skip
    assert result.exit_code == 0, result.output
    statuses = [line["status"] for line in lines(workdir / "out.jsonl")]
    assert statuses.count("succeeded") == 4
    assert statuses.count("skipped") == 6
    assert sim.stats.requests == 4


SLOW = """
    import asyncio

    async def pipeline(row):
        if row["n"] == 1:
            await asyncio.Event().wait()  # never finishes: the deadline cuts it
        return row["n"]
"""


def test_a_deadline_ends_the_run_partial_with_exit_code_1(workdir: Path) -> None:
    target = python_pipeline(workdir, "slow", SLOW)
    rows = jsonl(workdir / "rows.jsonl", [{"n": n} for n in range(3)])
    result = invoke("run", target, "-i", rows, "-o", "out.jsonl", "--deadline", "0.5", "--no-progress")
    assert result.exit_code == 1
    assert "partial" in result.output
    assert [line["status"] for line in lines(workdir / "out.jsonl")] == ["succeeded", "timed_out", "succeeded"]


def test_progress_off_a_terminal_is_plain_lines(workdir: Path) -> None:
    target = python_pipeline(workdir, "plain", "def pipeline(row):\n    return row\n")
    rows = jsonl(workdir / "rows.jsonl", [{"n": n} for n in range(12)])
    result = invoke("run", target, "-i", rows, "-o", "out.jsonl")
    assert result.exit_code == 0, result.output
    assert "plain:pipeline: 12/12 (100%) done" in result.stderr


def test_model_flags_do_not_apply_to_python_pipelines(workdir: Path) -> None:
    target = python_pipeline(workdir, "plain_model", "def pipeline(row):\n    return row\n")
    result = invoke("run", target, "-i", jsonl(workdir / "rows.jsonl", [1]), *MODEL)
    assert result.exit_code == 2
    assert "--model applies to YAML pipelines" in result.output


def test_no_secret_reaches_the_record_or_the_output(workdir: Path, sim: SimulatedProvider) -> None:
    rows = jsonl(workdir / "rows.jsonl", [{"text": "a"}])
    secret_url = sim.openai_base_url.replace("http://", "http://user:hunter2@")
    result = invoke("run", pipeline(workdir, "prompt: '{text}'\n"), "-i", rows, "-o", "out.jsonl", "--run-id", "s",
                    "--base-url", secret_url, "--no-progress")  # fmt: skip
    # A URL with credentials is refused before anything is called or written, without echoing them.
    assert result.exit_code == 2
    assert "holds credentials" in result.output
    assert "environment variable" in result.output
    assert "hunter2" not in result.output
    assert sim.stats.requests == 0
    assert not (workdir / "out.summary.json").exists()


def test_help_lists_the_run_flags() -> None:
    result = invoke("run", "--help")
    flags = ["--input", "--output", "--unordered", "--strict", "--concurrency", "--rpm", "--tpm", "--budget-tokens",
             "--budget-cost", "--deadline", "--model", "--store", "--resume", "--run-id", "--no-progress"]  # fmt: skip
    for flag in flags:
        assert flag in result.output


def test_an_empty_input_gives_an_empty_output_and_a_summary(workdir: Path) -> None:
    target = python_pipeline(workdir, "empty_rows", "def pipeline(row):\n    return row\n")
    result = invoke("run", target, "-i", jsonl(workdir / "rows.jsonl", []), "-o", "out.jsonl", "--no-progress")
    assert result.exit_code == 0, result.output
    assert (workdir / "out.jsonl").read_text() == ""
    assert json.loads((workdir / "out.summary.json").read_text())["total"] == 0


def test_the_output_cannot_be_the_input(workdir: Path) -> None:
    target = python_pipeline(workdir, "same_file", "def pipeline(row):\n    return row\n")
    rows = jsonl(workdir / "rows.jsonl", [1])
    result = invoke("run", target, "-i", rows, "-o", rows)
    assert result.exit_code == 2
    assert "is the input file" in result.output
    assert rows.read_text() == "1\n"


def test_resuming_with_another_pipeline_is_refused_and_leaves_the_output(workdir: Path) -> None:
    first = python_pipeline(workdir, "shape_a", "def pipeline(row):\n    return row\n")
    other = python_pipeline(workdir, "shape_b", "import fanfold as ff\npipeline = ff.vote(str, n=2)\n")
    rows = jsonl(workdir / "rows.jsonl", [1, 2])
    assert invoke("run", first, "-i", rows, "-o", "out.jsonl", "--run-id", "r", "--no-progress").exit_code == 0
    before = (workdir / "out.jsonl").read_text()
    result = invoke("run", other, "-i", rows, "-o", "out.jsonl", "--resume", "r", "--no-progress")
    assert result.exit_code == 2
    assert "resume it with the same pipeline" in result.output
    assert (workdir / "out.jsonl").read_text() == before


# -- teams -----------------------------------------------------------------------------------


def plan_or_answer(request: SimRequest) -> str | dict[str, Any] | None:
    """The leader plans one subtask for the member ``echo``; the member gives the default answer."""
    if "subtasks" in (request.output_schema or {}).get("properties", {}):
        return {"subtasks": [{"id": "look", "member": "echo", "instruction": "Say it back."}], "merge": "concat"}
    return None


def test_a_team_pipeline_runs_a_team_per_row(workdir: Path) -> None:
    rows = jsonl(workdir / "rows.jsonl", [{"claim": f"claim {i}"} for i in range(3)])
    yaml = pipeline(
        workdir,
        """
        instructions: You lead a team that checks claims.
        prompt: "Check: {claim}"
        pattern:
          type: team
          members:
            - name: echo
              description: says what it is told
              instructions: Repeat the task.
          merge: concat
        """,
    )
    with SimulatedProvider(latency=Latency.fixed(0), answer=plan_or_answer).in_thread() as sim:
        result = invoke("run", yaml, "-i", rows, "-o", "out.jsonl", "--base-url", sim.openai_base_url, "--no-progress")
        requests = sim.stats.requests
    assert result.exit_code == 0, result.output
    out = lines(workdir / "out.jsonl")
    assert [line["status"] for line in out] == ["succeeded"] * 3
    for line in out:
        assert line["value"]["missing"] == {}
        assert len(line["value"]["answer"]) == 1
        assert line["value"]["answer"][0].startswith("Simulated answer")
    assert requests == 6  # a plan and a member's answer per row


def test_a_row_whose_model_request_was_retried_says_so(workdir: Path) -> None:
    def fail_first_try_of_row_1(number: int, request: SimRequest) -> str | None:
        return "500" if "ticket 1" in str(request.messages) and number <= 2 else None

    faults = Faults(script=fail_first_try_of_row_1)
    with SimulatedProvider(latency=Latency.fixed(0), faults=faults).in_thread() as provider:
        rows = jsonl(workdir / "rows.jsonl", [{"text": f"ticket {i}"} for i in range(3)])
        yaml = pipeline(workdir, "prompt: 'Ticket: {text}'\n")
        result = invoke(
            "run",
            yaml,
            "-i",
            rows,
            "-o",
            "out.jsonl",
            "-c",
            "1",
            "--base-url",
            provider.openai_base_url,
            "--no-progress",
        )
    assert result.exit_code == 0, result.output
    out = lines(workdir / "out.jsonl")
    assert [line["status"] for line in out] == ["succeeded"] * 3
    assert [line.get("retries", 0) for line in out] == [0, 1, 0]  # the row's task ran once; its request twice
    assert [line["attempts"] for line in out] == [1, 1, 1]
