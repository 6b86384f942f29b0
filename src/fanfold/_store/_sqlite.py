"""The SQLite store: the embedded default, a journal in one file that survives a killed process.

sqlite3 calls block, so the store owns one connection and one worker thread, and every call on
that connection runs on that thread (``loop.run_in_executor``): the event loop never waits on
the disk, and the connection is never touched from two threads. WAL with ``synchronous=NORMAL``
makes a committed write survive the process being killed (SIGKILL); only a power loss or an
OS crash can take back the last commits. Several processes may open the same file: WAL lets
readers run beside the one writer, and ``busy_timeout`` makes a writer wait its turn.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, TypeVarTuple

from fanfold._errors import UsageError
from fanfold._lease import seen
from fanfold._records import Change, Entry, RunRecord, Store
from fanfold._store._rows import (
    ENTRY_COLUMNS,
    ENTRY_FIELDS,
    ENTRY_UPDATES,
    LEASE_COLUMNS,
    RUN_COLUMNS,
    check_limit,
    check_run_id,
    dump_json,
    duplicate_run,
    entry_rows,
    record_from_row,
    run_row,
    unknown_run,
    update_params,
)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

# Bump with a migration in _migrate when the tables change; a file from a newer fanfold is refused.
SCHEMA_VERSION = 4
BUSY_TIMEOUT_MS = 30_000
PAGE = 1_000  # entries read per round trip to the worker thread

# `seq` is the table's INTEGER PRIMARY KEY (SQLite's rowid): an insert takes the next one, an
# upsert that hits an existing (run_id, key) updates the row in place and keeps it, so ordering
# by seq is first-written order. As the rowid it costs no extra column or index, and unlike an
# implicit rowid, VACUUM never renumbers it.
SCHEMA = f"""
CREATE TABLE fanfold_runs (
    run_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    config TEXT NOT NULL,
    summary TEXT,
    resumes INTEGER NOT NULL DEFAULT 0,
    lease TEXT,
    attempts TEXT
);
CREATE INDEX fanfold_runs_created ON fanfold_runs (created_at);
CREATE TABLE fanfold_entries (
    seq INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    "index" INTEGER NOT NULL,
    path TEXT NOT NULL,
    status TEXT NOT NULL,
    value_json TEXT,
    value_pickle BLOB,
    error_type TEXT,
    error_message TEXT,
    reason TEXT,
    attempts INTEGER NOT NULL,
    start REAL,
    "end" REAL,
    usage TEXT,
    input_digest TEXT,
    published TEXT,
    calls TEXT,
    UNIQUE (run_id, key)
);
CREATE INDEX fanfold_entries_order ON fanfold_entries (run_id, seq);
PRAGMA user_version = {SCHEMA_VERSION};
"""

UPSERT = (
    f"INSERT INTO fanfold_entries (run_id, {ENTRY_COLUMNS}) VALUES ({', '.join('?' * (1 + len(ENTRY_FIELDS)))}) "
    f"ON CONFLICT (run_id, key) DO UPDATE SET {ENTRY_UPDATES}"
)
SELECT_PAGE = f"SELECT seq, {ENTRY_COLUMNS} FROM fanfold_entries WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT {PAGE}"
SELECT_AFTER = f"SELECT seq, {ENTRY_COLUMNS} FROM fanfold_entries WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?"
SELECT_RUN = f"SELECT {RUN_COLUMNS} FROM fanfold_runs WHERE run_id = ?"
# rowid breaks ties between runs created at the same moment: the later insert is newer.
SELECT_RUNS = f"SELECT {RUN_COLUMNS} FROM fanfold_runs ORDER BY created_at DESC, rowid DESC LIMIT ?"
INSERT_RUN = f"INSERT INTO fanfold_runs ({RUN_COLUMNS}) VALUES ({', '.join('?' * 10)}) ON CONFLICT (run_id) DO NOTHING"
CHANGE_RUN = "UPDATE fanfold_runs SET {} WHERE run_id = ?".format(
    ", ".join(f"{name} = ?" for name in RUN_COLUMNS.split(", ")[1:])
)
UPDATE_RUN = (
    "UPDATE fanfold_runs SET status = ?, summary = coalesce(?, summary), resumes = resumes + ?, "
    "updated_at = ? WHERE run_id = ?"
)
COUNTS = "SELECT status, count(*) FROM fanfold_entries WHERE run_id = ? GROUP BY status"


class SQLiteStore(Store):
    """Run journals in a SQLite file (created, with its parent directories, on first open).

        >>> SQLiteStore("runs/batch.db")
        SQLiteStore('sqlite:///runs/batch.db')

    Use it as ``async with SQLiteStore("runs.db") as store: ...`` from one event loop.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        where = os.fspath(path) if isinstance(path, str | os.PathLike) else None
        if not isinstance(where, str) or not where:
            raise UsageError(f"SQLite path {path!r} is not a file path; pass e.g. 'runs.db' or a pathlib.Path")
        self.path = where
        self.url = f"sqlite:///{self.path}"
        self._db: sqlite3.Connection | None = None
        self._worker: ThreadPoolExecutor | None = None
        self._opening = asyncio.Lock()

    def __repr__(self) -> str:
        return f"SQLiteStore({self.url!r})"

    async def open(self) -> None:
        # Runs sharing a store may each open it at once: one of them connects, the rest find it open.
        async with self._opening:
            if self._db is not None:
                return
            worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fanfold-sqlite")
            try:
                self._db = await asyncio.get_running_loop().run_in_executor(worker, self._connect)
            except BaseException:
                worker.shutdown(wait=False)
                raise
            self._worker = worker

    async def close(self) -> None:
        if self._worker is None:
            return
        worker, db = self._worker, self._db
        self._worker = self._db = None
        if db is not None:
            await asyncio.get_running_loop().run_in_executor(worker, db.close)
        # The worker is idle now (its last job was the close), so this returns at once.
        worker.shutdown(wait=True)

    async def create_run(self, record: RunRecord) -> None:
        if await self._call(_execute, INSERT_RUN, run_row(record)) == 0:
            raise duplicate_run(record.run_id, self.url)

    async def get_run(self, run_id: str) -> RunRecord | None:
        rows = await self._call(_fetch, SELECT_RUN, (run_id,))
        return seen(record_from_row(rows[0]), time.time()) if rows else None

    async def change_run(self, run_id: str, change: Change) -> RunRecord:
        return await self._call(_change, self.url, run_id, change)

    async def update_run(
        self,
        run_id: str,
        *,
        status: str,
        summary: dict[str, Any] | None = None,
        resumed: bool = False,
    ) -> None:
        params = (status, dump_json("summary", run_id, summary), int(resumed), time.time(), run_id)
        if await self._call(_execute, UPDATE_RUN, params) == 0:
            raise unknown_run(run_id, self.url)

    async def write(self, run_id: str, entries: Sequence[Entry], change: Change | None = None) -> None:
        # The tuples are built on the worker thread too, so the event loop only hands over the batch.
        if entries or change is not None:
            await self._call(_write, self.url, check_run_id(run_id), entries, change)

    async def entries(self, run_id: str) -> AsyncIterator[Entry]:
        # Page by seq rather than hold a cursor open across yields: a long-lived read would stop
        # WAL checkpoints, and the worker thread stays free for writes between pages.
        after = 0
        while True:
            rows = await self._call(_fetch, SELECT_PAGE, (run_id, after))
            for row in rows:
                yield Entry(*row[1:])
            if len(rows) < PAGE:
                return
            after = rows[-1][0]

    async def entries_after(self, run_id: str, after: int = 0, limit: int = PAGE) -> list[tuple[int, Entry]]:
        rows = await self._call(_fetch, SELECT_AFTER, (run_id, after, limit))
        return [(row[0], Entry(*row[1:])) for row in rows]

    async def counts(self, run_id: str) -> dict[str, int]:
        return dict(await self._call(_fetch, COUNTS, (run_id,)))

    async def list_runs(self, limit: int = 50) -> list[RunRecord]:
        rows = await self._call(_fetch, SELECT_RUNS, (check_limit(limit),))
        now = time.time()
        return [seen(record_from_row(row), now) for row in rows]

    async def delete_run(self, run_id: str) -> None:
        await self._call(_delete, run_id)

    async def _call(self, job: Callable[[sqlite3.Connection, *Ts], T], *args: *Ts) -> T:
        if self._db is None or self._worker is None:
            raise UsageError(f"{self!r} is not open; use `async with store:` or `await store.open()` first")
        return await asyncio.get_running_loop().run_in_executor(self._worker, job, self._db, *args)

    def _connect(self) -> sqlite3.Connection:
        """Open the file and bring its schema up to date. Runs on the worker thread."""
        if self.path != ":memory:":
            Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        try:
            # isolation_level=None: no implicit transactions; each write says BEGIN IMMEDIATE itself.
            db = sqlite3.connect(Path(self.path).expanduser(), isolation_level=None)
        except sqlite3.Error as exc:
            raise UsageError(f"cannot open {self.url} ({exc}); pass the path of a writable file") from exc
        try:
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            _migrate(db, self.url)
        except BaseException as exc:
            db.close()
            if isinstance(exc, sqlite3.DatabaseError):
                raise UsageError(
                    f"{self.url} is not a fanfold run store ({exc}); pass a new path or a file fanfold created"
                ) from exc
            raise
        return db


# What runs on the worker thread: plain functions of the connection.


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    # IMMEDIATE takes the write lock up front, so two processes cannot both read, then both try
    # to upgrade to writing and have one fail with "database is locked" despite busy_timeout.
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _write(db: sqlite3.Connection, url: str, run_id: str, entries: Sequence[Entry], change: Change | None) -> None:
    rows = entry_rows(run_id, entries)
    with _transaction(db):
        if change is not None:
            _apply(db, url, run_id, change)
        db.executemany(UPSERT, rows)


def _change(db: sqlite3.Connection, url: str, run_id: str, change: Change) -> RunRecord:
    with _transaction(db):
        return _apply(db, url, run_id, change)


def _apply(db: sqlite3.Connection, url: str, run_id: str, change: Change) -> RunRecord:
    """Read, change and write the run's record inside the caller's transaction: BEGIN IMMEDIATE
    holds the write lock from the read on, so no other process changes it in between."""
    rows = db.execute(SELECT_RUN, (run_id,)).fetchall()
    if not rows:
        raise unknown_run(run_id, url)
    changed = change(record_from_row(rows[0]))
    db.execute(CHANGE_RUN, update_params(changed))
    return changed


def _execute(db: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> int:
    with _transaction(db):
        return db.execute(sql, params).rowcount


def _fetch(db: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> list[Any]:
    return db.execute(sql, params).fetchall()


def _delete(db: sqlite3.Connection, run_id: str) -> None:
    with _transaction(db):
        db.execute("DELETE FROM fanfold_entries WHERE run_id = ?", (run_id,))
        db.execute("DELETE FROM fanfold_runs WHERE run_id = ?", (run_id,))


def _migrate(db: sqlite3.Connection, url: str) -> None:
    with _transaction(db):
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise UsageError(
                f"{url} has schema version {version}, newer than this fanfold's {SCHEMA_VERSION}; "
                "upgrade fanfold to open it"
            )
        if version == 0:
            # executescript would COMMIT first; run the statements one by one inside our transaction.
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
        elif version < SCHEMA_VERSION:
            if version == 1:  # a file from before leases: its runs have no owner, so none is live
                for column in LEASE_COLUMNS:
                    db.execute(f"ALTER TABLE fanfold_runs ADD COLUMN {column} TEXT")
            if version < 3:
                db.execute("ALTER TABLE fanfold_entries ADD COLUMN published TEXT")  # version 3: channels
            db.execute("ALTER TABLE fanfold_entries ADD COLUMN calls TEXT")  # version 4: the tasks' model calls
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
