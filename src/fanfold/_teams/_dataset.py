"""Data by reference: a team's data set is described to its leader and split here, in code.

The leader never reads the rows. It sees a :class:`DataInfo` (the size, the fields with their
types and distinct counts, a few sample rows) and answers with a :class:`Split`, which fanfold
executes on the rows: one part per row, chunks of k rows, one group per value of a field, or all
rows at once, each optionally filtered first. Nothing the rows contain can change how they are
split: a split is code over the data, never an instruction read from it.

>>> rows = [{"region": "EU", "amount": 3}, {"region": "US", "amount": 5}, {"region": "EU", "amount": 8}]
>>> [len(part) for part in Split(by="group_by", field="region").apply(rows)]
[2, 1]
>>> Split(by="each", where="amount", op=">", value=4).apply(rows)
[{'region': 'US', 'amount': 5}, {'region': 'EU', 'amount': 8}]
"""

from __future__ import annotations

import csv
import dataclasses
import json
import operator
import os
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_json

from fanfold._errors import UsageError
from fanfold._vote import as_hashable

SAMPLE_ROWS = 3
SAMPLE_CHARS = 300  # each sample row, as JSON, is cut to this many characters
MAX_DISTINCT = 1000  # distinct values counted per field; past it, the count reads "1000+"
EXAMPLES = 5  # distinct values shown per field

Scalar = str | int | float | bool | None
Op = Literal["==", "!=", "<", "<=", ">", ">=", "contains", "in"]

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "contains": lambda field, value: value in field,
    "in": lambda field, value: field in value,
}


class BadSplit(Exception):
    """A split that cannot run on this data set; the message goes back to the leader."""


class Split(BaseModel):
    """How fanfold cuts the team's data set into inputs, one subtask run per part.

    ``by``: ``"each"`` (a part per row), ``"chunks"`` (lists of ``size`` rows), ``"group_by"``
    (a list of rows per value of ``field``, in order of first appearance) or ``"all"`` (one
    part: the list of all rows). ``where``/``op``/``value`` keep only the rows whose field
    ``where`` compares to ``value`` by ``op`` (``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``,
    ``contains``, ``in``), before cutting.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    by: Literal["each", "chunks", "group_by", "all"] = Field(
        "each", description="each: one part per row; chunks: `size` rows per part; group_by: a part per value "
        "of `field`; all: one part with every row"
    )  # fmt: skip
    size: int | None = Field(None, ge=1, description="rows per part, for chunks")
    field: str | None = Field(None, description="the field to group by, for group_by")
    where: str | None = Field(None, description="filter first: keep rows whose field `where` ...")
    op: Op = Field("==", description="... compares by `op` ...")
    value: Scalar | list[Scalar] = Field(None, description="... to `value`")

    def apply(self, rows: list[Any]) -> list[Any]:
        """The parts, in order. Raises :class:`BadSplit` when the split does not fit the rows."""
        return list(self.parts(rows))

    def parts(self, rows: list[Any]) -> Sequence[Any]:
        """The parts, in order, cut when asked for: a plan of two million runs holds the rows
        (and, for a filter or a ``group_by``, one reference per kept row), never a copy per part.
        Raises :class:`BadSplit` when the split does not fit the rows."""
        if self.where is not None:
            rows = self._filtered(rows)
        if self.by == "each":
            return rows
        if self.by == "all":
            return (list(rows),)
        if self.by == "chunks":
            if self.size is None:
                raise BadSplit("a chunks split needs `size`, the rows per part")
            return Chunks(rows, self.size)
        if self.field is None:
            raise BadSplit("a group_by split needs `field`, the field to group by")
        field = self.field
        groups: dict[Hashable, list[Any]] = {}
        for row in rows:
            if not has_field(row, field):
                raise BadSplit(f"group_by {field!r}: a row has no field {field!r}: {_cut(row, 120)}")
            groups.setdefault(as_hashable(get_field(row, field)), []).append(row)
        return list(groups.values())

    def _filtered(self, rows: list[Any]) -> list[Any]:
        where, compare, value = self.where, _OPS[self.op], self.value
        assert where is not None
        if rows and not any(has_field(row, where) for row in rows):
            raise BadSplit(f"where {where!r}: no row has a field {where!r}")
        kept = []
        for number, row in enumerate(rows):
            if not has_field(row, where):
                continue
            try:
                if compare(get_field(row, where), value):
                    kept.append(row)
            except TypeError as exc:
                raise BadSplit(f"where {where} {self.op} {value!r} fails on row {number}: {exc}") from None
        return kept


class Chunks(Sequence[list[Any]]):
    """The rows in lists of ``size``, each sliced when asked for."""

    __slots__ = ("rows", "size")

    def __init__(self, rows: list[Any], size: int) -> None:
        self.rows = rows
        self.size = size

    def __len__(self) -> int:
        return -(-len(self.rows) // self.size)

    @overload
    def __getitem__(self, index: int) -> list[Any]: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[list[Any]]: ...
    def __getitem__(self, index: int | slice) -> list[Any] | Sequence[list[Any]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"chunk {index} of {len(self)}")
        return self.rows[index * self.size : (index + 1) * self.size]


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """One field of the rows: its value types, how many rows have it, its distinct values."""

    name: str
    types: str
    present: int
    distinct: int
    examples: tuple[str, ...]

    def __str__(self) -> str:
        many = "+" if self.distinct >= MAX_DISTINCT else ""
        return f"{self.name} ({self.types}; {self.distinct}{many} distinct, e.g. {', '.join(self.examples)})"


@dataclass(frozen=True, slots=True)
class DataInfo:
    """What a leader sees of a data set: never the rows themselves, but their number, their
    fields (by name) and the first few rows, each cut short."""

    source: str
    size: int
    row_type: str
    fields: dict[str, FieldInfo]
    sample: tuple[str, ...]

    def __str__(self) -> str:
        lines = [f"{self.size:,} rows of {self.row_type}, from {self.source}."]
        if self.fields:
            lines.append("Fields: " + "; ".join(str(f) for f in self.fields.values()) + ".")
        lines.append(f"The first {len(self.sample)} rows (each cut to {SAMPLE_CHARS} characters):")
        lines += [f"  {row}" for row in self.sample]
        return "\n".join(lines)


def load(data: Any) -> tuple[list[Any], str]:
    """The rows of a data set, and where they came from. ``data`` is a list or tuple, any
    iterable, or a path (``pathlib.Path``) to a ``.jsonl``, ``.json`` (a list) or ``.csv`` file;
    anything else (a string, a mapping, one object) is a data set of one row."""
    if isinstance(data, os.PathLike):
        path = Path(data)
        return _read(path), f"the file {path.name}"
    if isinstance(data, list | tuple):
        return list(data), f"a {type(data).__name__}"
    if isinstance(data, str | bytes | Mapping) or not isinstance(data, Iterable):
        return [data], "one value"
    return list(data), f"an iterable ({type(data).__name__})"


def _read(path: Path) -> list[Any]:
    suffix = path.suffix.lower()
    if not path.is_file():
        raise UsageError(f"team data {str(path)!r}: no such file; pass the path of a .jsonl, .json or .csv file")
    if suffix in (".jsonl", ".ndjson"):
        rows = []
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise UsageError(
                            f"team data {path.name}, line {number}: not JSON ({exc}); fix the line"
                        ) from exc
        return rows
    if suffix == ".json":
        value = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(value, list):
            raise UsageError(f"team data {path.name}: holds a {type(value).__name__}; a .json data set is a list")
        return value
    if suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as lines:
            return [{key: _number(value) for key, value in row.items()} for row in csv.DictReader(lines)]
    raise UsageError(f"team data {path.name}: fanfold reads .jsonl, .json and .csv files; convert it to one of them")


def _number(text: str | None) -> Any:
    """A CSV cell as a number when it reads as one, so that filters compare numbers."""
    if text is None:
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def describe(rows: list[Any], source: str) -> DataInfo:
    """A description of ``rows`` for a leader: sizes, fields and a sample, no more."""
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(field_names(row)))
    fields = {name: _field_info(name, rows) for name in names}
    types = sorted({type(row).__name__ for row in rows}) or ["nothing"]
    sample = tuple(_cut(row, SAMPLE_CHARS) for row in rows[:SAMPLE_ROWS])
    return DataInfo(source, len(rows), " | ".join(types), fields, sample)


def _field_info(name: str, rows: list[Any]) -> FieldInfo:
    types: dict[str, None] = {}
    distinct: dict[Hashable, Any] = {}
    present = 0
    for row in rows:
        if not has_field(row, name):
            continue
        present += 1
        value = get_field(row, name)
        types[type(value).__name__] = None
        if len(distinct) < MAX_DISTINCT:
            distinct.setdefault(as_hashable(value), value)
    examples = tuple(_cut(v, 40) for v in list(distinct.values())[:EXAMPLES])
    return FieldInfo(name, " | ".join(types), present, len(distinct), examples)


def field_names(row: Any) -> list[str]:
    if isinstance(row, Mapping):
        return [str(key) for key in row]
    if isinstance(row, BaseModel):
        return list(type(row).model_fields)
    if dataclasses.is_dataclass(row) and not isinstance(row, type):
        return [f.name for f in dataclasses.fields(row)]
    return []


def has_field(row: Any, name: str) -> bool:
    if isinstance(row, Mapping):
        return name in row
    return name in field_names(row)


def get_field(row: Any, name: str) -> Any:
    return row[name] if isinstance(row, Mapping) else getattr(row, name)


def _cut(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else to_json(value, fallback=repr).decode()
    return text if len(text) <= limit else text[: limit - 3] + "..."
