"""The run stores' contract, once, run against every store: memory, SQLite and a real PostgreSQL.

PostgreSQL comes from FANFOLD_TEST_POSTGRES_URL (default: a local server with trust auth); when
it cannot be reached its tests skip and say why. Its tables are shared by every test run, so each
test works under fresh run ids (uuid4) and deletes them afterwards.
"""

import asyncio
import functools
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fanfold._errors import UsageError
from fanfold._records import Entry, RunRecord, Store, open_store
from fanfold._store._memory import MemoryStore
from fanfold._store._postgres import PostgresStore, redact
from fanfold._store._sqlite import SCHEMA_VERSION as SQLITE_SCHEMA_VERSION
from fanfold._store._sqlite import SQLiteStore

T = TypeVar("T")

POSTGRES_URL = os.environ.get("FANFOLD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
KINDS = ["memory", "sqlite", "postgres"]


@functools.cache
def postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used for these tests, or None when it can."""
    try:
        import psycopg
    except ImportError as exc:
        return f"psycopg is not installed ({exc})"
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=5):
            return None
    except psycopg.Error as exc:
        return str(exc).strip()


def need_postgres() -> None:
    problem = postgres_problem()
    if problem is not None:
        pytest.skip(f"no PostgreSQL at {redact(POSTGRES_URL)}: {problem}; set FANFOLD_TEST_POSTGRES_URL")


class Bench:
    """A store of one kind, fresh run ids, and a way to run a coroutine against an open store."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.path = tmp_path / "runs.db"
        self.ids: list[str] = []
        self._memory = MemoryStore()

    def store(self) -> Store:
        """A new store object on the same place (for memory: the same store, since it is the place)."""
        if self.kind == "memory":
            return self._memory
        if self.kind == "sqlite":
            return SQLiteStore(self.path)
        return PostgresStore(POSTGRES_URL)

    def run_id(self) -> str:
        self.ids.append(f"test-{uuid.uuid4().hex}")
        return self.ids[-1]

    def run(self, body: Callable[[Store], Awaitable[T]]) -> T:
        async def main() -> T:
            async with self.store() as store:
                return await body(store)

        return asyncio.run(main())

    def clean_up(self) -> None:
        async def delete(store: Store) -> None:
            for run_id in self.ids:
                await store.delete_run(run_id)

        if self.ids:
            self.run(delete)


def entry(key: str, status: str = "succeeded", **fields: Any) -> Entry:
    index = int(key.strip("map[]")) if key.startswith("map[") else 0
    return Entry(key=key, index=index, path=key, status=status, **fields)


async def read(store: Store, run_id: str) -> list[Entry]:
    return [e async for e in store.entries(run_id)]


# The contract, on every store.


def test_a_run_record_round_trips(bench: Bench) -> None:
    run_id = bench.run_id()
    record = RunRecord(
        run_id=run_id,
        name="grade essays",
        created_at=1_700_000_000.25,
        updated_at=1_700_000_000.5,
        config={"spec": {"map": "grade", "window": 8}, "argv": ["fanfold", "run", "é.yaml"], "seed": None},
    )

    async def main(store: Store) -> tuple[RunRecord | None, RunRecord | None]:
        await store.create_run(record)
        return await store.get_run(run_id), await store.get_run(f"{run_id}-absent")

    assert bench.run(main) == (record, None)


def test_a_new_record_left_at_time_zero_is_stamped_now(bench: Bench) -> None:
    run_id = bench.run_id()
    before = time.time()

    async def main(store: Store) -> RunRecord | None:
        await store.create_run(RunRecord(run_id, name="n"))
        return await store.get_run(run_id)

    got = bench.run(main)
    assert got is not None
    assert before <= got.created_at <= time.time()
    assert got.updated_at == got.created_at
    assert (got.status, got.config, got.summary, got.resumes) == ("running", {}, None, 0)


def test_a_duplicate_run_id_is_a_usage_error_that_names_it(bench: Bench) -> None:
    run_id = bench.run_id()

    async def main(store: Store) -> RunRecord | None:
        await store.create_run(RunRecord(run_id, name="first"))
        with pytest.raises(UsageError, match=f"{run_id}.*already exists.*resume"):
            await store.create_run(RunRecord(run_id, name="second"))
        return await store.get_run(run_id)

    got = bench.run(main)
    assert got is not None
    assert got.name == "first"


def test_update_sets_status_summary_and_resumes(bench: Bench) -> None:
    run_id = bench.run_id()

    async def main(store: Store) -> list[RunRecord | None]:
        await store.create_run(RunRecord(run_id, name="n", created_at=1.0, updated_at=1.0))
        seen = []
        await store.update_run(run_id, status="partial", summary={"total": 3, "counts": {"failed": 1}})
        seen.append(await store.get_run(run_id))
        await store.update_run(run_id, status="running", resumed=True)  # no summary: the old one stays
        seen.append(await store.get_run(run_id))
        await store.update_run(run_id, status="succeeded", summary={"total": 3}, resumed=True)
        seen.append(await store.get_run(run_id))
        return seen

    first, second, third = bench.run(main)
    assert first is not None
    assert second is not None
    assert third is not None
    assert (first.status, first.summary, first.resumes) == ("partial", {"total": 3, "counts": {"failed": 1}}, 0)
    assert (second.status, second.summary, second.resumes) == ("running", first.summary, 1)
    assert (third.status, third.summary, third.resumes) == ("succeeded", {"total": 3}, 2)
    assert 1.0 < first.updated_at <= second.updated_at <= third.updated_at <= time.time()
    assert third.created_at == 1.0


def test_updating_an_unknown_run_is_a_usage_error(bench: Bench) -> None:
    run_id = bench.run_id()

    async def main(store: Store) -> None:
        with pytest.raises(UsageError, match=f"no run '{run_id}'"):
            await store.update_run(run_id, status="failed")

    bench.run(main)


def test_config_that_is_not_json_is_refused_and_nothing_is_created(bench: Bench) -> None:
    run_id = bench.run_id()

    async def main(store: Store) -> RunRecord | None:
        with pytest.raises(UsageError, match=f"config of run '{run_id}' is not plain JSON"):
            await store.create_run(RunRecord(run_id, name="n", config={"agents": {object()}}))
        with pytest.raises(UsageError, match="not plain JSON"):
            await store.create_run(RunRecord(run_id, name="n", config={"ratio": float("nan")}))
        return await store.get_run(run_id)

    assert bench.run(main) is None


def test_config_comes_back_as_json_gives_it_not_as_passed(bench: Bench) -> None:
    run_id = bench.run_id()
    config: dict[str, Any] = {"pair": (1, 2), "by_id": {7: "x"}}

    async def main(store: Store) -> RunRecord | None:
        await store.create_run(RunRecord(run_id, name="n", config=config))
        config["pair"] = "changed after create"
        return await store.get_run(run_id)

    got = bench.run(main)
    assert got is not None
    assert got.config == {"pair": [1, 2], "by_id": {"7": "x"}}


def test_entries_round_trip_every_field(bench: Bench) -> None:
    run_id = bench.run_id()
    full = Entry(
        key="map{'id': 7}/vote[2]",
        index=7,
        path="map[7]/vote[2]",
        status="succeeded",
        value_json='{"score": 0.5, "text": "naïve ✓"}',
        value_pickle=bytes(range(256)) + b"\x00",
        error_type=None,
        error_message=None,
        reason=None,
        attempts=3,
        start=1_700_000_000.125,
        end=1_700_000_001.5,
        usage='{"input_tokens": 12, "output_tokens": 40}',
        input_digest="sha256:" + "ab" * 32,
    )
    failed = Entry(
        key="map[8]",
        index=8,
        path="map[8]",
        status="failed",
        error_type="ValueError",
        error_message="bad row\nline 2",
        reason="retries exhausted",
        attempts=1,
    )
    empty = entry("map[9]", "skipped", value_json="", value_pickle=b"")

    async def main(store: Store) -> list[Entry]:
        await store.write(run_id, [full, failed, empty])
        return await read(store, run_id)

    assert bench.run(main) == [full, failed, empty]


def test_replacing_an_entry_keeps_its_place_and_last_write_wins(bench: Bench) -> None:
    run_id = bench.run_id()

    async def main(store: Store) -> tuple[list[Entry], dict[str, int]]:
        await store.write(run_id, [entry("map[2]", "failed"), entry("map[0]"), entry("map[1]", "failed")])
        await store.write(run_id, [entry("map[3]"), entry("map[1]", value_json="1", attempts=2)])
        await store.write(run_id, [entry("map[2]", value_json="2"), entry("map[4]", "timed_out")])
        return await read(store, run_id), await store.counts(run_id)

    got, counts = bench.run(main)
    assert [e.key for e in got] == ["map[2]", "map[0]", "map[1]", "map[3]", "map[4]"]
    assert got[0] == entry("map[2]", value_json="2")
    assert got[2] == entry("map[1]", value_json="1", attempts=2)
    assert counts == {"succeeded": 4, "timed_out": 1}


def test_a_batch_that_repeats_a_key_keeps_the_later_entry(bench: Bench) -> None:
    run_id = bench.run_id()

    async def main(store: Store) -> list[Entry]:
        await store.write(run_id, [entry("a", "failed"), entry("b"), entry("a", value_json="ok")])
        return await read(store, run_id)

    assert bench.run(main) == [entry("a", value_json="ok"), entry("b")]


def test_many_entries_come_back_in_order_across_pages(bench: Bench) -> None:
    run_id = bench.run_id()
    keys = [f"map[{i}]" for i in range(2_600)]

    async def main(store: Store) -> tuple[list[str], dict[str, int]]:
        for start in range(0, len(keys), 256):
            await store.write(run_id, [entry(key) for key in keys[start : start + 256]])
        await store.write(run_id, [entry("map[1500]", "failed"), entry("map[5]", "failed")])
        return [e.key async for e in store.entries(run_id)], await store.counts(run_id)

    got, counts = bench.run(main)
    assert got == keys
    assert counts == {"succeeded": 2_598, "failed": 2}


def test_runs_keep_their_own_entries_and_delete_forgets_one_run(bench: Bench) -> None:
    kept, deleted = bench.run_id(), bench.run_id()

    async def main(store: Store) -> tuple[Any, ...]:
        for run_id in (kept, deleted):
            await store.create_run(RunRecord(run_id, name=run_id))
            await store.write(run_id, [entry("map[0]", value_json=f'"{run_id}"')])
        await store.delete_run(deleted)
        await store.delete_run(deleted)  # forgetting twice is fine
        return (
            await store.get_run(deleted),
            await read(store, deleted),
            await store.counts(deleted),
            await read(store, kept),
            await store.get_run(kept) is not None,
        )

    assert bench.run(main) == (None, [], {}, [entry("map[0]", value_json=f'"{kept}"')], True)


def test_an_empty_batch_writes_nothing(bench: Bench) -> None:
    run_id = bench.run_id()

    async def main(store: Store) -> tuple[list[Entry], dict[str, int]]:
        await store.write(run_id, [])
        return await read(store, run_id), await store.counts(run_id)

    assert bench.run(main) == ([], {})


def test_list_runs_is_newest_first_and_limited(bench: Bench) -> None:
    ids = [bench.run_id() for _ in range(4)]
    now = time.time() + 3_600  # later than any run another test left behind
    created = [now, now + 2, now + 1, now + 1]  # the last two tie: the one created last is newer

    async def main(store: Store) -> tuple[list[str], list[str]]:
        for run_id, at in zip(ids, created, strict=True):
            await store.create_run(RunRecord(run_id, name="n", created_at=at, updated_at=at))
        ours = [r.run_id for r in await store.list_runs(limit=50) if r.run_id in ids]
        return ours, [r.run_id for r in await store.list_runs(limit=2)]

    ours, top_two = bench.run(main)
    assert ours == [ids[1], ids[3], ids[2], ids[0]]
    if bench.kind != "postgres":  # the shared tables may hold newer runs from concurrent test runs
        assert top_two == [ids[1], ids[3]]


def test_list_runs_refuses_a_negative_limit(bench: Bench) -> None:
    async def main(store: Store) -> list[RunRecord]:
        with pytest.raises(UsageError, match=r"limit=-1 .* pass an int >= 0"):
            await store.list_runs(limit=-1)
        return await store.list_runs(limit=0)

    assert bench.run(main) == []


def test_concurrent_writers_on_one_store_lose_nothing(bench: Bench) -> None:
    run_ids = [bench.run_id() for _ in range(3)]

    async def writer(store: Store, run_id: str, batch: int) -> None:
        await store.write(run_id, [entry(f"map[{batch * 10 + i}]") for i in range(10)])

    async def main(store: Store) -> list[dict[str, int]]:
        async with asyncio.TaskGroup() as group:
            for run_id in run_ids:
                for batch in range(8):
                    group.create_task(writer(store, run_id, batch))
        return [await store.counts(run_id) for run_id in run_ids]

    assert bench.run(main) == [{"succeeded": 80}] * 3


def test_open_and_close_are_idempotent(bench: Bench) -> None:
    async def main() -> None:
        store = bench.store()
        await store.open()
        await store.open()
        assert await store.list_runs(limit=0) == []
        await store.close()
        await store.close()

    asyncio.run(main())


def test_runs_opening_one_store_at_once_share_one_connection(bench: Bench) -> None:
    run_id = bench.run_id()

    async def main() -> dict[str, int]:
        store = bench.store()
        async with asyncio.TaskGroup() as group:
            for _ in range(5):
                group.create_task(store.open())
        await store.write(run_id, [entry("a")])
        counts = await store.counts(run_id)
        await store.close()  # a second connection left open would fail the test with a ResourceWarning
        return counts

    assert asyncio.run(main()) == {"succeeded": 1}


# The bench fixture is shared by the examples on purpose: each example works under its own run id.
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batches=st.lists(
        st.lists(
            st.tuples(
                st.sampled_from(["a", "b", "c", "map[0]", "map[1]"]),
                st.sampled_from(["succeeded", "failed", "skipped"]),
                st.one_of(st.none(), st.binary(max_size=8)),
            ),
            max_size=6,
        ),
        max_size=5,
    )
)
def test_any_writes_read_back_as_last_write_wins_in_first_written_order(
    bench: Bench, batches: list[list[tuple[str, str, bytes | None]]]
) -> None:
    run_id = bench.run_id()
    expected: dict[str, Entry] = {}
    for batch in batches:
        for key, status, pickle in batch:
            expected[key] = entry(key, status, value_pickle=pickle)

    async def main(store: Store) -> tuple[list[Entry], dict[str, int]]:
        for batch in batches:
            await store.write(run_id, [entry(key, status, value_pickle=pickle) for key, status, pickle in batch])
        got = await read(store, run_id), await store.counts(run_id)
        await store.delete_run(run_id)
        return got

    got, counts = bench.run(main)
    assert got == list(expected.values())
    statuses = [e.status for e in expected.values()]
    assert counts == {status: statuses.count(status) for status in set(statuses)}


# Two store objects on one place (a file, a database): what one writes, the other reads.


def test_two_stores_on_one_place_see_each_others_writes(shared: Bench) -> None:
    run_id = shared.run_id()

    async def main() -> tuple[list[Entry], RunRecord | None, list[Entry]]:
        async with shared.store() as one, shared.store() as two:
            await one.create_run(RunRecord(run_id, name="shared"))
            await one.write(run_id, [entry("map[0]")])
            await two.write(run_id, [entry("map[1]"), entry("map[0]", "failed")])
            await two.update_run(run_id, status="failed")
            return await read(one, run_id), await one.get_run(run_id), await read(two, run_id)

    from_one, record, from_two = asyncio.run(main())
    assert from_one == from_two == [entry("map[0]", "failed"), entry("map[1]")]
    assert record is not None
    assert record.status == "failed"


def test_a_closed_sql_store_says_to_open_it(shared: Bench) -> None:
    store = shared.store()

    async def main() -> None:
        with pytest.raises(UsageError, match=r"is not open; use `async with store:`"):
            await store.write("r", [entry("a")])

    asyncio.run(main())


# SQLite.


def test_sqlite_keeps_everything_across_a_reopen_and_creates_parent_directories(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "runs.db"

    async def first() -> None:
        async with SQLiteStore(path) as store:
            await store.create_run(RunRecord("r1", name="n", config={"k": 1}))
            await store.write("r1", [entry("map[0]", value_pickle=b"\x80\x04K\x01.")])

    async def second() -> tuple[RunRecord | None, list[Entry]]:
        async with SQLiteStore(str(path)) as store:
            return await store.get_run("r1"), await read(store, "r1")

    asyncio.run(first())
    record, entries = asyncio.run(second())
    assert record is not None
    assert record.config == {"k": 1}
    assert entries == [entry("map[0]", value_pickle=b"\x80\x04K\x01.")]


def test_sqlite_file_is_in_wal_mode_with_a_schema_version(tmp_path: Path) -> None:
    asyncio.run(_open_and_close(SQLiteStore(tmp_path / "runs.db")))
    with sqlite3.connect(tmp_path / "runs.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("PRAGMA user_version").fetchone() == (SQLITE_SCHEMA_VERSION,)
    db.close()


def test_sqlite_refuses_a_file_from_a_newer_fanfold(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    asyncio.run(_open_and_close(SQLiteStore(path)))
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    db.close()
    newer = rf"schema version 99, newer than this fanfold's {SQLITE_SCHEMA_VERSION}; upgrade fanfold"
    with pytest.raises(UsageError, match=newer):
        asyncio.run(_open_and_close(SQLiteStore(path)))


def test_sqlite_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database, just some notes " * 100)
    with pytest.raises(UsageError, match=r"sqlite:///.*notes.txt is not a fanfold run store"):
        asyncio.run(_open_and_close(SQLiteStore(path)))


def test_sqlite_says_when_the_path_cannot_be_opened(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"cannot open sqlite:///.*; pass the path of a writable file"):
        asyncio.run(_open_and_close(SQLiteStore(tmp_path)))  # a directory


def test_sqlite_writes_survive_the_process_being_killed(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    script = f"""
import asyncio, os, signal
from fanfold._records import Entry, RunRecord
from fanfold._store._sqlite import SQLiteStore

async def main():
    store = SQLiteStore({str(path)!r})
    await store.open()
    await store.create_run(RunRecord("killed", name="n"))
    await store.write("killed", [Entry(f"map[{{i}}]", i, f"map[{{i}}]", "succeeded") for i in range(300)])
    os.kill(os.getpid(), signal.SIGKILL)  # no close, no checkpoint, no atexit

asyncio.run(main())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == -9, done.stderr

    async def main() -> tuple[RunRecord | None, dict[str, int]]:
        async with SQLiteStore(path) as store:
            return await store.get_run("killed"), await store.counts("killed")

    record, counts = asyncio.run(main())
    assert record is not None
    assert counts == {"succeeded": 300}


async def _open_and_close(store: Store) -> None:
    async with store:
        pass


# PostgreSQL: secrets, and a missing driver.


def test_postgres_keeps_the_password_out_of_url_repr_and_errors() -> None:
    store = PostgresStore("postgresql://fanfold:s3cret-pw@127.0.0.1:1/runs?password=s3cret-pw&sslmode=disable")
    assert store.url == "postgresql://fanfold@127.0.0.1:1/runs?sslmode=disable"
    assert "s3cret" not in repr(store)

    with pytest.raises(UsageError) as caught:
        asyncio.run(_open_and_close(store))  # nothing listens on port 1
    message = str(caught.value)
    assert "cannot connect to the Postgres store at postgresql://fanfold@127.0.0.1:1/runs" in message
    assert "check that the server is running" in message
    assert "s3cret" not in message


def test_postgres_with_a_password_connects_and_never_shows_it() -> None:
    need_postgres()
    parts = urlsplit(POSTGRES_URL)
    password = parts.password or "s3cret-pw"  # the test server trusts local users: any password will do
    user, _, host = parts.netloc.rpartition("@")
    url = urlunsplit(parts._replace(netloc=f"{user.partition(':')[0]}:{password}@{host}"))

    async def main() -> str:
        async with PostgresStore(url) as store:
            return f"{store.url} {store!r} {await store.list_runs(limit=1)}"

    assert password not in asyncio.run(main())


def test_postgres_without_psycopg_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # makes `import psycopg` raise ImportError
    store = open_store("postgresql://me:pw@db.internal/runs")
    assert isinstance(store, PostgresStore)
    with pytest.raises(UsageError, match=r"postgresql://me@db.internal/runs\) needs psycopg.*fanfold\[postgres\]"):
        asyncio.run(_open_and_close(store))


def test_the_stores_import_without_psycopg() -> None:
    script = (
        "import sys; sys.modules['psycopg'] = None; "
        "from fanfold._store._postgres import PostgresStore; print(PostgresStore)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "PostgresStore" in done.stdout


# open_store.


@pytest.mark.parametrize(
    ("target", "kind", "url"),
    [
        (None, MemoryStore, "memory://"),
        ("memory", MemoryStore, "memory://"),
        (":memory:", MemoryStore, "memory://"),
        ("runs.db", SQLiteStore, "sqlite:///runs.db"),
        (Path("out/runs.db"), SQLiteStore, "sqlite:///out/runs.db"),
        ("sqlite:///runs.db", SQLiteStore, "sqlite:///runs.db"),
        ("sqlite:////var/runs.db", SQLiteStore, "sqlite:////var/runs.db"),
        ("postgresql://u:pw@h/db", PostgresStore, "postgresql://u@h/db"),
        ("postgres://h:5433/db", PostgresStore, "postgres://h:5433/db"),
    ],
)
def test_open_store_picks_the_store_a_target_names(target: Any, kind: type[Store], url: str) -> None:
    store = open_store(target)
    assert type(store) is kind
    assert store.url == url


def test_open_store_passes_a_store_through() -> None:
    store = MemoryStore()
    assert open_store(store) is store


@pytest.mark.parametrize(
    ("target", "shown"),
    [
        (42, "store=42 is not a store"),
        ("", "store='' is not a store"),
        (b"runs.db", "store=b'runs.db' is not a store"),
        ("mysql://u:pw@h/db", "store='mysql://u@h/db' is not a store URL fanfold knows"),
        ("sqlite://runs.db", "store='sqlite://runs.db' is not a store URL fanfold knows"),
        ("sqlite:///", "store='sqlite:///' is not a store URL fanfold knows"),
    ],
)
def test_open_store_names_a_bad_target_and_what_to_pass(target: Any, shown: str) -> None:
    with pytest.raises(UsageError) as caught:
        open_store(target)
    assert str(caught.value).startswith(shown)
    assert "pass a Store, 'memory', a SQLite file path" in str(caught.value)
    assert "pw" not in str(caught.value)


def test_stores_repr_says_where_they_are() -> None:
    assert repr(MemoryStore()) == "MemoryStore()"
    assert repr(SQLiteStore("runs.db")) == "SQLiteStore('sqlite:///runs.db')"
