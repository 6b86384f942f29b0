"""What a run store keeps, and the small interface every store implements.

A store holds run records (one per run: its spec and configuration, without secrets, and its
status) and journal entries (one per finished task, under a key that is stable across resumes).
The journal (``fanfold._journal``) batches entries and hands them to :meth:`Store.write`; a
store makes a batch durable in one transaction before ``write`` returns.
"""

from __future__ import annotations

import abc
import importlib
import os
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from fanfold._errors import UsageError
from fanfold._lease import Lease
from fanfold._redact import redact_url

# What a store applies to a run's record, atomically: the record as it is -> as it is to be.
Change = Callable[["RunRecord"], "RunRecord"]


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run, as a store keeps it.

    ``status`` is ``"running"`` while the run is under way, ``"interrupted"`` when it was
    running and its owner's lease lapsed (the process died) or was given up without an ending,
    then the run's final status (``succeeded``, ``failed``, ``partial``, ``cancelled``).
    ``lease`` names the process that owns the run while it runs. ``attempts`` has one entry per
    attempt at the run (``started``, ``ended``, ``status``, ``host``, ``pid``, ``usage``), the
    last one current while the run is owned; ``summary["usage"]`` adds up every attempt. ``config`` is
    plain JSON data without secrets: what was run (the spec's shape, the options, and for the
    command line the invocation that ``fanfold runs resume`` repeats). ``summary`` is the final
    summary as JSON data. Times are seconds since the epoch.
    """

    run_id: str
    name: str
    status: str = "running"
    created_at: float = 0.0
    updated_at: float = 0.0
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] | None = None
    resumes: int = 0
    lease: Lease | None = None
    attempts: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Entry:
    """One finished task, journaled.

    ``key`` is the task's stable key within its run (``map[17]``, ``map[17]/vote[2]``, or a
    user's key: ``map{'id': 7}``). ``value_json`` is the value as JSON text, always (for export
    and display); ``value_pickle`` is set only when JSON cannot give the value back as it was (a
    Pydantic model, a dataclass), and is then what a resumed run restores. ``usage`` is the
    task's :class:`~fanfold.Usage` as JSON text. ``input_digest`` identifies the input the task
    ran on, so that a resumed run does not reuse a result for an input that changed.
    ``published`` is what the task and its subtree published to channels, as a JSON list of
    ``[channel name, value]`` (``None``: nothing), for a resumed run to replay. ``calls`` is the
    task's own timed leaf calls (its model requests, for the timeline) as a JSON list of
    :meth:`fanfold._outcome.Call.as_row` rows (``None``: it made none, or an older fanfold
    journaled it).
    """

    key: str
    index: int
    path: str
    status: str
    value_json: str | None = None
    value_pickle: bytes | None = None
    error_type: str | None = None
    error_message: str | None = None
    reason: str | None = None
    attempts: int = 0
    start: float | None = None
    end: float | None = None
    usage: str | None = None
    input_digest: str | None = None
    published: str | None = None
    calls: str | None = None


class Store(abc.ABC):
    """Where run journals live. Implementations: :class:`MemoryStore`, :class:`SQLiteStore`,
    :class:`PostgresStore`.

    Use as an async context manager, or call :meth:`open` and :meth:`close`. A store may be
    shared by several runs at once (each writes its own run's records); one process's store
    object is used from one event loop.
    """

    url: str  # where the store is, without credentials, for messages: "sqlite:///runs.db"

    async def open(self) -> None:  # noqa: B027 - optional hook: stores with nothing to open keep it
        """Connect and create the schema if needed. Idempotent."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Idempotent."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @abc.abstractmethod
    async def create_run(self, record: RunRecord) -> None:
        """Record a new run. Raises :class:`~fanfold.UsageError` if the run id exists."""

    @abc.abstractmethod
    async def get_run(self, run_id: str) -> RunRecord | None:
        """The run's record, or ``None`` if this store has no such run."""

    @abc.abstractmethod
    async def update_run(
        self,
        run_id: str,
        *,
        status: str,
        summary: dict[str, Any] | None = None,
        resumed: bool = False,
    ) -> None:
        """Set the run's status (and its summary, if given; ``resumed`` adds one to
        ``resumes``), and ``updated_at`` to now."""

    @abc.abstractmethod
    async def write(self, run_id: str, entries: Sequence[Entry], change: Change | None = None) -> None:
        """Make ``entries`` durable, all of them in one transaction. An entry whose key the run
        already has replaces it. ``change``, if given, is applied to the run's record in the
        same transaction (the journal renews its lease and checkpoints usage so); if it raises,
        nothing is written."""

    @abc.abstractmethod
    async def change_run(self, run_id: str, change: Change) -> RunRecord:
        """Apply ``change`` to the run's record in one transaction (a compare-and-set: the
        record it sees is the one it replaces) and return the new record. An exception from
        ``change`` leaves the record as it was."""

    @abc.abstractmethod
    def entries(self, run_id: str) -> AsyncIterator[Entry]:
        """The run's entries, in the order they were first written."""

    async def entries_after(self, run_id: str, after: int = 0, limit: int = 1_000) -> list[tuple[int, Entry]]:
        """A cursor read: up to ``limit`` of the run's entries first written after position
        ``after`` (0: from the start; else a position this method returned), in first-written
        order, each with its position. A reader that polls a live run passes the last position
        it saw, and reads only what is new::

            seen = 0
            while batch := await store.entries_after(run_id, seen):
                seen = batch[-1][0]

        The stores fanfold ships read only those rows; this default, for a store of your own,
        walks :meth:`entries` from the start (an entry's position is its place in that order).
        """
        found: list[tuple[int, Entry]] = []
        position = 0
        async for entry in self.entries(run_id):
            position += 1
            if position > after:
                found.append((position, entry))
                if len(found) >= limit:
                    break
        return found

    @abc.abstractmethod
    async def counts(self, run_id: str) -> dict[str, int]:
        """How many of the run's entries have each status."""

    @abc.abstractmethod
    async def list_runs(self, limit: int = 50) -> list[RunRecord]:
        """The most recently created runs, newest first."""

    @abc.abstractmethod
    async def delete_run(self, run_id: str) -> None:
        """Forget the run and its entries."""


# target -> the store that keeps it; each store is loaded by name on first use (the stores are a
# wing of the package: the core names them, it does not import them).
_STORES = {
    "memory": "fanfold._store._memory:MemoryStore",
    "sqlite": "fanfold._store._sqlite:SQLiteStore",
    "postgres": "fanfold._store._postgres:PostgresStore",
}
_MEMORY = ("memory", ":memory:")
_SQLITE_PREFIX = "sqlite:///"
_POSTGRES_SCHEMES = ("postgresql", "postgres")
_HOW = (
    "pass a Store, 'memory', a SQLite file path ('runs.db' or 'sqlite:///runs.db'), "
    "or a PostgreSQL URL ('postgresql://user@host/database')"
)


def store_class(kind: str) -> type[Store]:
    """The store class for ``kind`` (``memory``, ``sqlite`` or ``postgres``)."""
    module, _, name = _STORES[kind].partition(":")
    cls: type[Store] = getattr(importlib.import_module(module), name)
    return cls


def open_store(target: Store | str | os.PathLike[str] | None) -> Store:
    """The store ``target`` names. The store is not opened yet: use it as ``async with store:``,
    or call ``await store.open()``.

    ======================================  =============================================
    target                                  store
    ======================================  =============================================
    a :class:`Store`                        itself
    ``None``, ``"memory"``, ``":memory:"``  ``MemoryStore`` (nothing survives the process)
    ``"postgresql://..."``                  ``PostgresStore`` (needs ``fanfold[postgres]``)
    ``"sqlite:///runs.db"``, ``"runs.db"``  ``SQLiteStore``, also for a ``pathlib.Path``
    ======================================  =============================================

    >>> open_store("runs/batch.db")
    SQLiteStore('sqlite:///runs/batch.db')
    >>> open_store("sqlite:////var/lib/fanfold/runs.db").path
    '/var/lib/fanfold/runs.db'
    >>> open_store("memory")
    MemoryStore()
    """
    if isinstance(target, Store):
        return target
    if target is None:
        return store_class("memory")()
    if isinstance(target, os.PathLike):
        return store_class("sqlite")(target)  # type: ignore[call-arg]
    if not isinstance(target, str) or not target.strip():
        raise UsageError(f"store={target!r} is not a store; {_HOW}")
    if target in _MEMORY:
        return store_class("memory")()
    if target.startswith(_SQLITE_PREFIX) and len(target) > len(_SQLITE_PREFIX):
        return store_class("sqlite")(target.removeprefix(_SQLITE_PREFIX))  # type: ignore[call-arg]
    scheme = urlsplit(target).scheme
    if scheme in _POSTGRES_SCHEMES:
        return store_class("postgres")(target)  # type: ignore[call-arg]
    # A URL of another kind (or a malformed sqlite:// one) is not a file name: refuse it rather than
    # create a file called "mysql:" in the working directory.
    if "://" in target:
        raise UsageError(f"store={redact_url(target)!r} is not a store URL fanfold knows; {_HOW}")
    return store_class("sqlite")(target)  # type: ignore[call-arg]
