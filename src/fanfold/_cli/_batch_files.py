"""Batch files for ``fanfold run``: rows read lazily from JSONL or CSV, the agent that runs a
row (or fails it, naming its file and line). The output is written by :mod:`fanfold._cli._output`.

Bad input never loses the rest: a row that cannot be parsed is read as a :class:`BadRow`, and
the row agent turns it into a failed outcome (``MalformedRow: data.jsonl:7: ...``) without
calling anything.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fanfold._agent import agent_name, is_composite
from fanfold._cli._reading import (
    DEFAULT_MAX_ROW_BYTES,
    Oversized,
    Unclosed,
    lines,
    oversized_problem,
    records,
    unclosed_problem,
)
from fanfold._context import Context
from fanfold._errors import UsageError

Format = Literal["jsonl", "csv", "tsv"]
FORMATS: dict[str, Format] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv"}
_SNIFF = 8192  # bytes read at the start of an input file to tell a binary file from text


class MalformedRow(UsageError):
    """A row that cannot run: it does not parse, or lacks a field the pipeline needs. The message
    starts with the file and line: ``data.csv:12: ...``."""


@dataclass(frozen=True, slots=True)
class Row:
    """One input row: its (first) line in the file, and its value (a JSON value, or a CSV row
    as a dict of strings)."""

    line: int
    value: Any


@dataclass(frozen=True, slots=True)
class BadRow:
    """A row that does not parse, and why."""

    line: int
    problem: str


# -- reading ----------------------------------------------------------------------------------


class InputFile:
    """A JSONL or CSV file of rows, read lazily: :meth:`rows` is a generator over the file, so a
    run holds only the rows in flight, whatever the file's size.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "rows.jsonl"
    >>> _ = path.write_text('{"a": 1}\\n{"a": \\n')
    >>> list(InputFile.open(path).rows())
    [Row(line=1, value={'a': 1}), BadRow(line=2, problem='not valid JSON: Expecting value: line 1 column 7 (char 6)')]
    """

    def __init__(
        self,
        path: Path,
        format: Format,
        header: list[str] | None = None,
        *,
        max_row_bytes: int = DEFAULT_MAX_ROW_BYTES,
    ) -> None:
        self.path = path
        self.format = format
        self.header = header
        self.max_row_bytes = max_row_bytes

    @classmethod
    def open(
        cls, path: str | Path, format: str | None = None, *, max_row_bytes: int = DEFAULT_MAX_ROW_BYTES
    ) -> InputFile:
        """Check that the file is there, readable and text, and (CSV) its header; name what is wrong."""
        path = Path(path)
        found = FORMATS.get(path.suffix.lower() if format is None else f".{format}")
        if found is None and format is None:
            raise UsageError(
                f"--input {str(path)!r}: cannot tell its format from the suffix; name the file .jsonl or .csv, "
                "or pass --format jsonl|csv|tsv"
            )
        if found is None:
            raise UsageError(f"--format {format!r}: pass jsonl, csv or tsv")
        if max_row_bytes < 1:
            raise UsageError(
                f"--max-row-bytes {max_row_bytes}: pass a size in bytes >= 1, e.g. {DEFAULT_MAX_ROW_BYTES}"
            )
        if not path.is_file():
            raise UsageError(f"--input {str(path)!r}: no such file")
        try:
            with path.open("rb") as f:
                start = f.read(_SNIFF)
        except OSError as exc:
            raise UsageError(f"--input {str(path)!r}: cannot read it: {exc.strerror or exc}") from exc
        nul = start.find(b"\0")
        if nul >= 0:
            raise UsageError(
                f"--input {str(path)!r}: a binary file (it holds a NUL byte at byte {nul:,}), not "
                f"{found.upper()} text; pass a {found.upper()} file of rows"
            )
        file = cls(path, found, max_row_bytes=max_row_bytes)
        if found != "jsonl":
            file.header = file._header()
        return file

    def _header(self) -> list[str]:
        kind = self.format.upper()
        with self.path.open("rb") as f:
            first = next(records(f, self.max_row_bytes, self._delimiter), None)
        if first is None:
            raise UsageError(f"{self.path}:1: a {kind} file starts with a header row naming its columns; it is empty")
        _, record = first
        if isinstance(record, Oversized):
            raise UsageError(f"{self.path}:1: the header: {oversized_problem(record.size, self.max_row_bytes)}")
        if isinstance(record, Unclosed):
            raise UsageError(f"{self.path}:1: the header is not valid {kind}: {unclosed_problem(record)}")
        parsed = self._parse(record)
        if isinstance(parsed, str):
            raise UsageError(f"{self.path}:1: the header is not valid {kind}: {parsed}")
        header = parsed
        if not header or not any(name.strip() for name in header):
            raise UsageError(f"{self.path}:1: a {kind} file starts with a header row naming its columns")
        duplicates = sorted({name for name in header if header.count(name) > 1})
        if duplicates:
            raise UsageError(
                f"{self.path}:1: the header names the column {duplicates[0]!r} twice; name each column once"
            )
        return header

    @property
    def _delimiter(self) -> str:
        return "\t" if self.format == "tsv" else ","

    def where(self, line: int) -> str:
        return f"{self.path}:{line}"

    def rows(self) -> Iterator[Row | BadRow]:
        """Every row, in file order (blank lines are skipped). A row over ``max_row_bytes`` is a
        :class:`BadRow` naming its size, skipped without being held in memory."""
        return self._jsonl() if self.format == "jsonl" else self._csv()

    def _jsonl(self) -> Iterator[Row | BadRow]:
        limit = self.max_row_bytes
        with self.path.open("rb") as f:
            for number, raw in lines(f, limit):
                if isinstance(raw, Oversized):
                    yield BadRow(number, oversized_problem(raw.size, limit))
                    continue
                text = raw.rstrip(b"\r")  # so that an error's column counts within the row
                if not text.strip():
                    continue
                try:
                    yield Row(number, json.loads(text))
                except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                    yield BadRow(number, f"not valid JSON: {exc}")

    def _csv(self) -> Iterator[Row | BadRow]:
        header = self.header
        assert header is not None
        width = len(header)
        limit = self.max_row_bytes
        with self.path.open("rb") as f:
            found = records(f, limit, self._delimiter)
            next(found, None)  # the header, checked when the file was opened
            for number, record in found:
                if isinstance(record, Oversized):
                    yield BadRow(number, oversized_problem(record.size, limit))
                    continue
                if isinstance(record, Unclosed):
                    yield BadRow(number, f"not valid {self.format.upper()}: {unclosed_problem(record)}")
                    continue
                fields = self._parse(record)
                if isinstance(fields, str):
                    spread = record.count(b"\n")
                    if spread:  # a stray quote, most likely, took the lines after it into one field
                        fields += (
                            f" (a quoted field runs from line {number} to line {number + spread}: is a quote unclosed?)"
                        )
                    yield BadRow(number, fields)
                elif not fields or fields == [""]:
                    continue
                elif len(fields) != width:
                    yield BadRow(number, f"{len(fields)} fields where the header has {width}")
                else:
                    yield Row(number, dict(zip(header, fields, strict=True)))

    def _parse(self, record: bytes) -> list[str] | str:
        """A record's fields, or what is wrong with it."""
        try:
            text = record.decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError as exc:
            return f"not valid UTF-8: {exc}"
        # A field may be as large as a row (the csv module's own limit is 128 KiB, process-wide).
        if csv.field_size_limit() < self.max_row_bytes:
            csv.field_size_limit(self.max_row_bytes)
        try:
            parsed = list(csv.reader(io.StringIO(text, newline=""), delimiter=self._delimiter, strict=True))
        except csv.Error as exc:
            return f"not valid {self.format.upper()}: {exc}"
        if len(parsed) > 1:
            return (
                f"not valid {self.format.upper()}: a carriage return (\\r) ends a line inside the row; end lines "
                "with \\n or \\r\\n, or quote the field"
            )
        return parsed[0] if parsed else []

    def count(self) -> int:
        """How many rows the file has (for progress): non-blank lines for JSONL, records for CSV;
        an oversized row counts (it gets its failed outcome)."""
        with self.path.open("rb") as f:
            if self.format == "jsonl":
                return sum(1 for _, raw in lines(f, self.max_row_bytes) if isinstance(raw, Oversized) or raw.strip())
            found = records(f, self.max_row_bytes, self._delimiter)
            next(found, None)
            return sum(1 for _, record in found if not isinstance(record, bytes) or record.strip())

    def first_problem(self, key_field: str | None = None) -> str | None:
        """The first malformed row as ``file:line: problem``, or None (for ``--strict``); with
        ``key_field``, a row whose key an earlier row has is one."""
        keys = DuplicateKeys(self) if key_field is not None else None
        for row in self.rows():
            if isinstance(row, BadRow):
                return f"{self.where(row.line)}: {row.problem}"
            if keys is not None and isinstance(row.value, dict) and key_field in row.value:
                try:
                    keys.check(row, _plain_key(row.value[key_field]))
                except MalformedRow as exc:
                    return str(exc)
        return None


class DuplicateKeys:
    """The rows' keys seen so far, each with its first line: a later row with the same key is
    malformed (its outcome would shadow the first's in the journal and the output)."""

    def __init__(self, file: InputFile) -> None:
        self.file = file
        self.seen: dict[Hashable, int] = {}

    def check(self, row: Row, key: Hashable) -> None:
        first = self.seen.setdefault(key, row.line)
        if first != row.line:
            raise MalformedRow(
                f"{self.file.where(row.line)}: the key {key!r} is also the key of {self.file.where(first)}; give "
                "each row its own key"
            )


# -- the agent that runs one row --------------------------------------------------------------


class RowAgent:
    """Runs the pipeline's agent on a row's value (``prepare``-d: a prompt template; its value
    ``finish``-ed: a team's answer), or fails a :class:`BadRow` with :class:`MalformedRow`
    without calling it. Composite when the agent
    is (an LLM agent, a vote); a leaf otherwise, with the agent's resources, retry and timeouts."""

    composite = True

    def __init__(
        self,
        agent: Any,
        file: InputFile,
        prepare: Callable[[Any], Any] | None = None,
        finish: Callable[[Any], Any] | None = None,
    ) -> None:
        self.agent = agent
        self.file = file
        self.prepare = prepare
        self.finish = finish
        self.name = agent_name(agent)

    def input_of(self, row: Row | BadRow) -> Any:
        if isinstance(row, BadRow):
            raise MalformedRow(f"{self.file.where(row.line)}: {row.problem}")
        if self.prepare is None:
            return row.value
        try:
            return self.prepare(row.value)
        except (ValueError, TypeError) as exc:
            raise MalformedRow(f"{self.file.where(row.line)}: {exc}") from None

    async def run(self, row: Row | BadRow, ctx: Context, /) -> Any:
        try:
            # Through the run's backend: a sync function agent's work may run on a process or a node.
            value = await ctx.run_state.backend.run(self.agent, self.input_of(row), ctx)
        except Exception as exc:
            # Past the model's own retries (a composite's leaves retried it): say what happened.
            # The HTTP client reports a refused connection as a connect *timeout*.
            where = refused_address(exc) if self.composite else None
            if where is None:
                raise
            raise ConnectionRefused(
                f"connection refused to {where}: nothing is listening there; start the server, or fix --base-url "
                "(or the pipeline's base_url)"
            ) from exc
        return value if self.finish is None else self.finish(value)

    def __repr__(self) -> str:
        return f"<rows of {self.name}>"


class ConnectionRefused(ConnectionError):
    """A model's server refused the connection (nothing listens at its address)."""


def refused_address(exc: BaseException) -> str | None:
    """``host:port`` if ``exc`` was caused by a refused connection, else None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    address = None
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        host, port = getattr(current, "host", None), getattr(current, "port", None)
        if isinstance(host, str) and isinstance(port, int):
            address = f"{host}:{port}"
        if isinstance(current, ConnectionRefusedError):
            return address or str(current)
        current = current.__cause__ or current.__context__
    return None


class LeafRowAgent(RowAgent):
    composite = False

    @property
    def resources(self) -> tuple[str, ...]:
        return getattr(self.agent, "resources", ())

    @property
    def retry(self) -> Any:
        return getattr(self.agent, "retry", None)

    @property
    def timeouts(self) -> Any:
        return getattr(self.agent, "timeouts", None)


def row_agent(
    agent: Any,
    file: InputFile,
    prepare: Callable[[Any], Any] | None = None,
    finish: Callable[[Any], Any] | None = None,
) -> RowAgent:
    return (RowAgent if is_composite(agent) else LeafRowAgent)(agent, file, prepare, finish)


def row_key(
    file: InputFile, field: str | None, key: Callable[[Any], Hashable] | None
) -> Callable[[Row | BadRow], Hashable] | None:
    """The key that names each row in the output and the journal: a field of the row, or a
    function of its value. A malformed row has none (its position names it)."""
    if field is None and key is None:
        return None

    def of(row: Row | BadRow) -> Hashable:
        if isinstance(row, BadRow):
            return None
        if key is not None:
            found = key(row.value)
            keys.check(row, found)
            return found
        value = row.value
        if not isinstance(value, dict) or field not in value:
            raise MalformedRow(f"{file.where(row.line)}: the row has no field {field!r}, the pipeline's key")
        found = _plain_key(value[field])
        keys.check(row, found)
        return found

    keys = DuplicateKeys(file)
    return of


def _plain_key(value: Any) -> Hashable:
    return value if isinstance(value, str | int | float | bool) or value is None else json.dumps(value)


# -- writing ----------------------------------------------------------------------------------
