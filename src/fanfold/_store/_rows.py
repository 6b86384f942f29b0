"""How run records and journal entries become table rows, for the SQL stores (SQLite, Postgres).

Both SQL stores keep the same two tables with the same column order, so the column lists, the
row builders and the checks on what a caller hands in are written once, here.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from operator import attrgetter
from typing import Any

from fanfold._errors import UsageError
from fanfold._lease import Lease
from fanfold._records import Entry, RunRecord
from fanfold._redact import redact

# The entry columns in the order of Entry's fields, so that `Entry(*row)` rebuilds an entry from
# a row without naming each field (and a field added to Entry cannot be forgotten here).
ENTRY_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Entry))
# "index" and "end" are SQL keywords; every column is quoted so none can trip either dialect.
ENTRY_COLUMNS = ", ".join(f'"{name}"' for name in ENTRY_FIELDS)
ENTRY_UPDATES = ", ".join(f'"{name}" = excluded."{name}"' for name in ENTRY_FIELDS if name != "key")

RUN_COLUMNS = "run_id, name, status, created_at, updated_at, config, summary, resumes, lease, attempts"
# Columns added by schema version 2 (one owner per run, and every attempt's usage).
LEASE_COLUMNS = ("lease", "attempts")

_entry_values = attrgetter(*ENTRY_FIELDS)


def entry_rows(run_id: str, entries: Sequence[Entry]) -> list[tuple[Any, ...]]:
    """One ``(run_id, key, index, ...)`` tuple per entry: the parameters of the upsert.

    This is the journal's hot path, so it is one C-level attribute fetch per entry and a tuple
    concatenation, nothing else.
    """
    head = (run_id,)
    return [head + _entry_values(entry) for entry in entries]


def check_run_id(run_id: object) -> str:
    if not isinstance(run_id, str) or not run_id:
        raise UsageError(f"run id {run_id!r} is not a non-empty string; pass the run's id as a string")
    return run_id


def check_limit(limit: object) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise UsageError(f"limit={limit!r} is not a count of runs; pass an int >= 0")
    return limit


def stamped(record: RunRecord) -> RunRecord:
    """The record to store: ``created_at`` and ``updated_at`` default to now when left at 0."""
    check_run_id(record.run_id)
    if record.created_at and record.updated_at:
        return record
    now = time.time()
    created = record.created_at or now
    return dataclasses.replace(record, created_at=created, updated_at=record.updated_at or created)


def dump_json(what: str, run_id: str, data: dict[str, Any] | None) -> str | None:
    """``data`` as JSON text, or a UsageError naming the run and the field when it is not plain
    JSON data (a set, an object, NaN: values a resumed run or another tool could not read back)."""
    if data is None:
        return None
    try:
        # Redacted: a config or a summary may quote a URL with its key, or an error that echoed it.
        return redact(json.dumps(data, allow_nan=False, separators=(",", ":")))
    except (TypeError, ValueError) as exc:
        raise UsageError(
            f"the {what} of run {run_id!r} is not plain JSON data ({exc}); "
            "pass dicts, lists, strings, finite numbers, booleans and None only"
        ) from exc


def record_from_row(row: Sequence[Any]) -> RunRecord:
    """A RunRecord from a row selected as :data:`RUN_COLUMNS`."""
    run_id, name, status, created_at, updated_at, config, summary, resumes, lease, attempts = row
    return RunRecord(
        run_id=run_id,
        name=name,
        status=status,
        created_at=created_at,
        updated_at=updated_at,
        config=json.loads(config) if config else {},
        summary=None if summary is None else json.loads(summary),
        resumes=resumes,
        lease=None if not lease else Lease(**json.loads(lease)),
        attempts=tuple(json.loads(attempts)) if attempts else (),
    )


def run_row(record: RunRecord) -> tuple[Any, ...]:
    """The parameters of the INSERT for a new run (columns as :data:`RUN_COLUMNS`)."""
    record = stamped(record)
    return (
        record.run_id,
        record.name,
        record.status,
        record.created_at,
        record.updated_at,
        dump_json("config", record.run_id, record.config),
        dump_json("summary", record.run_id, record.summary),
        record.resumes,
        None if record.lease is None else json.dumps(record.lease.as_dict()),
        json.dumps(list(record.attempts), separators=(",", ":")),
    )


def update_params(record: RunRecord) -> tuple[Any, ...]:
    """The parameters of ``UPDATE fanfold_runs SET <every column but run_id> WHERE run_id = ?``."""
    row = run_row(record)
    return (*row[1:], row[0])


def duplicate_run(run_id: str, url: str) -> UsageError:
    return UsageError(
        f"run id {run_id!r} already exists in {url}; pick a new run id, or resume that run instead of creating it"
    )


def unknown_run(run_id: str, url: str) -> UsageError:
    return UsageError(f"no run {run_id!r} in {url}; create it with create_run() first, or check the run id")
