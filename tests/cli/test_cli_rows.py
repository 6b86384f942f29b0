"""Rows the command line reads: a bound on each row's size (held to it while reading), CSV
quotes that never close, and duplicate keys. Driven through the real ``fanfold`` command."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.cli.test_cli_run import invoke, lines, python_pipeline, write

from fanfold._cli._batch_files import BadRow, InputFile, Row


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory of its own (the default store lands in it), importable for Python pipelines."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


ECHO = "def pipeline(row):\n    return row\n"
BIG = 20 * 1024 * 1024  # a 20 MB row


def _with_big_row(path: Path, csv: bool) -> Path:
    with path.open("w", encoding="utf-8") as f:
        if csv:
            f.write("id,text\n1,one\n2,")
            f.write("x" * BIG)
            f.write("\n3,three\n")
        else:
            f.write('{"id": 1}\n{"id": 2, "text": "')
            f.write("x" * BIG)
            f.write('"}\n{"id": 3}\n')
    return path


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_a_row_over_the_limit_fails_naming_its_line_and_size_and_the_rest_run(workdir: Path, suffix: str) -> None:
    rows = _with_big_row(workdir / f"rows{suffix}", csv=suffix == ".csv")
    target = python_pipeline(workdir, "echo_rows", ECHO)
    result = invoke("run", target, "-i", rows, "-o", "out.jsonl", "--no-progress")
    assert result.exit_code == 0, result.output
    out = lines(workdir / "out.jsonl")
    assert [line["status"] for line in out] == ["succeeded", "failed", "succeeded"]
    message = out[1]["error"]["message"]
    size = BIG + (len('{"id": 2, "text": ""}') if suffix == ".jsonl" else len("2,"))
    assert message.startswith(f"{rows}:{2 if suffix == '.jsonl' else 3}: the row is {size:,} bytes")
    assert "over the limit of 4,194,304 bytes" in message
    assert "--max-row-bytes 22020096" in message


def test_max_row_bytes_raises_the_limit(workdir: Path) -> None:
    rows = _with_big_row(workdir / "rows.jsonl", csv=False)
    target = python_pipeline(workdir, "echo_rows2", "def pipeline(row):\n    return len(row.get('text', ''))\n")
    result = invoke("run", target, "-i", rows, "-o", "out.jsonl", "--no-progress", "--max-row-bytes", 32 << 20)
    assert result.exit_code == 0, result.output
    assert [line["value"] for line in lines(workdir / "out.jsonl")] == [0, BIG, 0]


def test_a_pipeline_sets_the_row_limit(workdir: Path) -> None:
    rows = write(workdir / "rows.jsonl", '{"text": "short"}\n{"text": "a little longer than that"}\n')
    yaml = write(workdir / "p.yaml", "model: openai-chat:sim-1\nmax_row_bytes: 20\n")
    result = invoke("run", yaml, "-i", rows, "--strict", "--base-url", "http://127.0.0.1:9/v1")
    assert result.exit_code == 2
    assert f"{rows}:2: the row is 37 bytes, over the limit of 20 bytes" in result.output


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_reading_a_huge_row_holds_no_more_than_the_limit(tmp_path: Path, suffix: str) -> None:
    rows = _with_big_row(tmp_path / f"rows{suffix}", csv=suffix == ".csv")
    file = InputFile.open(rows, max_row_bytes=1 << 20)
    tracemalloc.start()
    try:
        read = list(file.rows())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [type(row) for row in read] == [Row, BadRow, Row]
    assert peak < 6 * (1 << 20), f"reading held {peak:,} bytes for a {BIG:,}-byte row"


# -- CSV quotes --------------------------------------------------------------------------------


def test_an_unclosed_quote_fails_its_row_and_the_rows_after_it_still_run(workdir: Path) -> None:
    target = python_pipeline(workdir, "echo_csv_q", ECHO)
    rows = write(workdir / "rows.csv", 'id,text\n1,one\n2,"open\n3,three\n4,four\n5,five\n6,six\n')
    result = invoke("run", target, "-i", rows, "-o", "out.jsonl", "--no-progress")
    assert result.exit_code == 0, result.output
    out = lines(workdir / "out.jsonl")
    assert [line["status"] for line in out] == ["succeeded", "failed", *["succeeded"] * 4]
    assert out[1]["error"]["message"].startswith(f"{rows}:3: not valid CSV: a quote opened on line 3 is never closed")
    assert [line["value"]["id"] for line in out if line["status"] == "succeeded"] == ["1", "3", "4", "5", "6"]
    assert "6 inputs: 5 succeeded, 1 failed" in result.output


def test_strict_stops_before_the_run_at_an_unclosed_quote(workdir: Path) -> None:
    target = python_pipeline(workdir, "echo_csv_s", ECHO)
    rows = write(workdir / "rows.csv", 'id,text\n1,one\n2,"open\n3,three\n')
    result = invoke("run", target, "-i", rows, "-o", "out.jsonl", "--no-progress", "--strict")
    assert result.exit_code == 2
    assert f"{rows}:3: not valid CSV: a quote opened on line 3 is never closed" in result.output
    assert not (workdir / "out.jsonl").exists()


_field = st.text(alphabet=st.sampled_from(["a", "b", ",", '"', "\n", " ", "é"]), max_size=8)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(_field, min_size=2, max_size=2), max_size=6))
def test_well_formed_csv_reads_as_the_csv_module_writes_it(
    tmp_path_factory: pytest.TempPathFactory, table: list[list[str]]
) -> None:
    import csv
    import io

    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["a", "b"])
    writer.writerows(table)
    path = tmp_path_factory.mktemp("csv") / "rows.csv"
    path.write_bytes(buffer.getvalue().encode())
    read = list(InputFile.open(path).rows())
    expected = table
    assert all(isinstance(row, Row) for row in read), read
    got = [[row.value["a"], row.value["b"]] for row in read if isinstance(row, Row)]
    assert got == expected


def test_a_binary_file_is_refused_before_any_call(workdir: Path) -> None:
    target = python_pipeline(workdir, "echo_bin", ECHO)
    rows = workdir / "rows.jsonl"
    rows.write_bytes(bytes(range(256)) * 10)
    result = invoke("run", target, "-i", rows, "-o", "out.jsonl", "--no-progress")
    assert result.exit_code == 2
    assert f"--input '{rows}': a binary file (it holds a NUL byte at byte 0), not JSONL text" in result.output
    assert not (workdir / "out.jsonl").exists()
