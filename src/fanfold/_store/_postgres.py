"""The Postgres store: journals shared by several processes or machines.

It needs the ``postgres`` extra (psycopg 3), imported only when a store opens, so that fanfold
imports without it. One ``AsyncConnection`` serves the store, one operation at a time (an
``asyncio.Lock``): the journal batches its writes, so a single connection is never the
bottleneck, and every operation is its own short transaction (autocommit off, no session is
ever left idle in a transaction). The URL may hold a password; it is kept only in a private
attribute and never appears in :attr:`url`, ``repr`` or a message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from fanfold._errors import UsageError
from fanfold._lease import seen
from fanfold._records import Change, Entry, RunRecord, Store
from fanfold._redact import SECRET_PARAMETERS
from fanfold._redact import redact_url as redact
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

if TYPE_CHECKING:
    import psycopg

SCHEMES = ("postgresql", "postgres")
# Version 1 still: the lease columns were added as nullable ones that every query names, so a
# fanfold from before them reads and writes the same tables (a database may be shared by both).
SCHEMA_VERSION = 1
CONNECT_TIMEOUT = 10  # seconds, unless the URL sets connect_timeout
PAGE = 1_000
# Any constant works: it only has to be the same in every process creating the tables at once.
SCHEMA_LOCK = 0x66616E666F6C64  # "fanfold"
ENTRY_ADDED_COLUMNS = ("published", "calls")  # entry columns added since version 1, nullable

# `seq` is an identity column: an insert takes the next value, an upsert that hits an existing
# (run_id, key) leaves it alone, so ordering by seq is first-written order. JSON is kept as text,
# not jsonb, so that it comes back byte for byte as written (jsonb reorders keys and rejects
# \u0000), the same as on SQLite.
SCHEMA = """
CREATE TABLE fanfold_schema (version integer PRIMARY KEY);
CREATE TABLE fanfold_runs (
    seq bigint GENERATED ALWAYS AS IDENTITY,
    run_id text PRIMARY KEY,
    name text NOT NULL,
    status text NOT NULL,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL,
    config text NOT NULL,
    summary text,
    resumes integer NOT NULL DEFAULT 0,
    lease text,
    attempts text
);
CREATE INDEX fanfold_runs_created ON fanfold_runs (created_at, seq);
CREATE TABLE fanfold_entries (
    seq bigint GENERATED ALWAYS AS IDENTITY,
    run_id text NOT NULL,
    key text NOT NULL,
    "index" bigint NOT NULL,
    path text NOT NULL,
    status text NOT NULL,
    value_json text,
    value_pickle bytea,
    error_type text,
    error_message text,
    reason text,
    attempts integer NOT NULL,
    "start" double precision,
    "end" double precision,
    usage text,
    input_digest text,
    published text,
    calls text,
    PRIMARY KEY (run_id, key)
);
CREATE INDEX fanfold_entries_order ON fanfold_entries (run_id, seq)
"""

UPSERT = (
    f"INSERT INTO fanfold_entries (run_id, {ENTRY_COLUMNS}) VALUES ({', '.join(['%s'] * (1 + len(ENTRY_FIELDS)))}) "
    f"ON CONFLICT (run_id, key) DO UPDATE SET {ENTRY_UPDATES}"
)
SELECT_PAGE = (
    f"SELECT seq, {ENTRY_COLUMNS} FROM fanfold_entries WHERE run_id = %s AND seq > %s ORDER BY seq LIMIT {PAGE}"
)
SELECT_AFTER = f"SELECT seq, {ENTRY_COLUMNS} FROM fanfold_entries WHERE run_id = %s AND seq > %s ORDER BY seq LIMIT %s"
INSERT_RUN = (
    f"INSERT INTO fanfold_runs ({RUN_COLUMNS}) VALUES ({', '.join(['%s'] * 10)}) ON CONFLICT (run_id) DO NOTHING"
)
SELECT_RUN = f"SELECT {RUN_COLUMNS} FROM fanfold_runs WHERE run_id = %s"
# FOR UPDATE locks the row until the transaction ends: a second process changing the same run
# waits, then reads what the first wrote (a compare-and-set on the lease).
LOCK_RUN = SELECT_RUN + " FOR UPDATE"
CHANGE_RUN = "UPDATE fanfold_runs SET {} WHERE run_id = %s".format(
    ", ".join(f"{name} = %s" for name in RUN_COLUMNS.split(", ")[1:])
)
SELECT_RUNS = f"SELECT {RUN_COLUMNS} FROM fanfold_runs ORDER BY created_at DESC, seq DESC LIMIT %s"
UPDATE_RUN = (
    "UPDATE fanfold_runs SET status = %s, summary = coalesce(%s, summary), resumes = resumes + %s, "
    "updated_at = %s WHERE run_id = %s"
)
COUNTS = "SELECT status, count(*) FROM fanfold_entries WHERE run_id = %s GROUP BY status"


class PostgresStore(Store):
    """Run journals in a PostgreSQL database (tables created on first open).

        >>> PostgresStore("postgresql://fanfold:secret@db.internal/runs")
        PostgresStore('postgresql://fanfold@db.internal/runs')

    Use it as ``async with PostgresStore(url) as store: ...`` from one event loop.
    """

    def __init__(self, url: str) -> None:
        if not isinstance(url, str) or urlsplit(url).scheme not in SCHEMES:
            shown = redact(url) if isinstance(url, str) else repr(url)
            raise UsageError(f"{shown} is not a PostgreSQL URL; pass 'postgresql://user:password@host:5432/database'")
        self._conninfo = url
        self._secrets = _secrets(url)
        self.url = redact(url)
        self._connection: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"PostgresStore({self.url!r})"

    async def open(self) -> None:
        # Runs sharing a store may each open it at once: one of them connects, the rest find it open.
        async with self._lock:
            if self._connection is None:
                self._connection = await self._connect()

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        try:
            import psycopg
        except ImportError as exc:
            raise UsageError(
                f"the Postgres store ({self.url}) needs psycopg, which is not installed; "
                "pip install 'fanfold[postgres]'"
            ) from exc
        options: dict[str, Any] = {}
        if "connect_timeout" not in self._conninfo:
            options["connect_timeout"] = CONNECT_TIMEOUT
        try:
            connection = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=False, **options)
        except psycopg.Error as exc:
            reason = self._scrub(exc)
            # Chain the driver's error for its traceback, unless its text quoted a secret.
            cause = exc if reason == str(exc).strip() else None
            raise UsageError(
                f"cannot connect to the Postgres store at {self.url}: {reason}; "
                "check that the server is running and that the URL's host, port, database, user and password are right"
            ) from cause
        try:
            await _migrate(connection, self.url)
        except BaseException:
            await connection.close()
            raise
        return connection

    async def close(self) -> None:
        async with self._lock:  # after the operation under way, never in the middle of it
            connection, self._connection = self._connection, None
            if connection is not None:
                await connection.close()

    async def create_run(self, record: RunRecord) -> None:
        if await self._execute(INSERT_RUN, run_row(record)) == 0:
            raise duplicate_run(record.run_id, self.url)

    async def get_run(self, run_id: str) -> RunRecord | None:
        rows = await self._fetch(SELECT_RUN, (run_id,))
        return seen(record_from_row(rows[0]), time.time()) if rows else None

    async def change_run(self, run_id: str, change: Change) -> RunRecord:
        async with self._lock:
            connection = self._open_connection()
            async with connection.transaction():
                return await self._apply(connection, run_id, change)

    async def _apply(self, connection: psycopg.AsyncConnection[Any], run_id: str, change: Change) -> RunRecord:
        cursor = await connection.execute(LOCK_RUN, (run_id,))
        row = await cursor.fetchone()
        if row is None:
            raise unknown_run(run_id, self.url)
        changed = change(record_from_row(row))
        await connection.execute(CHANGE_RUN, update_params(changed))
        return changed

    async def update_run(
        self,
        run_id: str,
        *,
        status: str,
        summary: dict[str, Any] | None = None,
        resumed: bool = False,
    ) -> None:
        params = (status, dump_json("summary", run_id, summary), int(resumed), time.time(), run_id)
        if await self._execute(UPDATE_RUN, params) == 0:
            raise unknown_run(run_id, self.url)

    async def write(self, run_id: str, entries: Sequence[Entry], change: Change | None = None) -> None:
        if not entries and change is None:
            return
        rows = entry_rows(check_run_id(run_id), entries)
        async with self._lock:
            connection = self._open_connection()
            # executemany sends the whole batch in pipeline mode: one round trip, not one per row.
            async with connection.transaction(), connection.cursor() as cursor:
                if change is not None:
                    await self._apply(connection, run_id, change)
                if rows:
                    await cursor.executemany(UPSERT, rows)

    async def entries(self, run_id: str) -> AsyncIterator[Entry]:
        after = 0
        while True:
            rows = await self._fetch(SELECT_PAGE, (run_id, after))
            for row in rows:
                yield Entry(*row[1:])
            if len(rows) < PAGE:
                return
            after = rows[-1][0]

    async def entries_after(self, run_id: str, after: int = 0, limit: int = PAGE) -> list[tuple[int, Entry]]:
        rows = await self._fetch(SELECT_AFTER, (run_id, after, limit))
        return [(row[0], Entry(*row[1:])) for row in rows]

    async def counts(self, run_id: str) -> dict[str, int]:
        return dict(await self._fetch(COUNTS, (run_id,)))

    async def list_runs(self, limit: int = 50) -> list[RunRecord]:
        rows = await self._fetch(SELECT_RUNS, (check_limit(limit),))
        now = time.time()
        return [seen(record_from_row(row), now) for row in rows]

    async def delete_run(self, run_id: str) -> None:
        async with self._lock:
            connection = self._open_connection()
            async with connection.transaction():
                await connection.execute("DELETE FROM fanfold_entries WHERE run_id = %s", (run_id,))
                await connection.execute("DELETE FROM fanfold_runs WHERE run_id = %s", (run_id,))

    async def _execute(self, sql: str, params: tuple[Any, ...]) -> int:
        async with self._lock:
            connection = self._open_connection()
            async with connection.transaction():
                cursor = await connection.execute(sql, params)
                return cursor.rowcount

    async def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        async with self._lock:
            connection = self._open_connection()
            async with connection.transaction():
                cursor = await connection.execute(sql, params)
                return await cursor.fetchall()

    def _open_connection(self) -> psycopg.AsyncConnection[Any]:
        if self._connection is None:
            raise UsageError(f"{self!r} is not open; use `async with store:` or `await store.open()` first")
        return self._connection

    def _scrub(self, exc: BaseException) -> str:
        # libpq does not echo passwords, but a malformed URL can be quoted back in its error.
        text = str(exc).strip()
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def _secrets(url: str) -> list[str]:
    parts = urlsplit(url)
    found = [value for name, value in parse_qsl(parts.query) if name in SECRET_PARAMETERS]
    user = parts.netloc.rpartition("@")[0]
    if ":" in user:
        found.append(user.partition(":")[2])
    # Both spellings: as written in the URL (percent-encoded) and as decoded.
    return [secret for value in found for secret in {value, unquote(value)} if secret]


async def _add_lease_columns(connection: psycopg.AsyncConnection[Any]) -> None:
    """Tables from before leases get their columns (their runs have no owner, so none is live)."""
    cursor = await connection.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'fanfold_runs' AND column_name = ANY(%s)",
        (list(LEASE_COLUMNS),),
    )
    row = await cursor.fetchone()
    if row is None or row[0] < len(LEASE_COLUMNS):
        for column in LEASE_COLUMNS:
            await connection.execute(f"ALTER TABLE fanfold_runs ADD COLUMN IF NOT EXISTS {column} text")
    # Nullable columns too (what each task published to channels, its model calls), so older
    # fanfolds still work.
    cursor = await connection.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'fanfold_entries' "
        "AND column_name = ANY(%s)",
        (list(ENTRY_ADDED_COLUMNS),),
    )
    row = await cursor.fetchone()
    if row is None or row[0] < len(ENTRY_ADDED_COLUMNS):
        for column in ENTRY_ADDED_COLUMNS:
            await connection.execute(f"ALTER TABLE fanfold_entries ADD COLUMN IF NOT EXISTS {column} text")


async def _migrate(connection: psycopg.AsyncConnection[Any], url: str) -> None:
    async with connection.transaction():
        # Serialise processes that open a fresh database at the same moment: two concurrent
        # CREATE TABLEs of the same name fail on a catalog unique constraint, IF NOT EXISTS or not.
        await connection.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        cursor = await connection.execute("SELECT to_regclass('fanfold_schema') IS NOT NULL")
        row = await cursor.fetchone()
        if row is not None and row[0]:
            cursor = await connection.execute("SELECT max(version) FROM fanfold_schema")
            row = await cursor.fetchone()
            version = row[0] if row is not None and row[0] is not None else 0
            if version > SCHEMA_VERSION:
                raise UsageError(
                    f"{url} has fanfold schema version {version}, newer than this fanfold's {SCHEMA_VERSION}; "
                    "upgrade fanfold to use it"
                )
            await _add_lease_columns(connection)
            return
        for statement in SCHEMA.split(";"):
            await connection.execute(statement)
        await connection.execute("INSERT INTO fanfold_schema (version) VALUES (%s)", (SCHEMA_VERSION,))
