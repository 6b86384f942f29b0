"""Run stores: where run journals live, and :func:`open_store`, which picks one from a target.

======================================  =============================================
target                                  store
======================================  =============================================
a :class:`Store`                        itself
``None``, ``"memory"``, ``":memory:"``  :class:`MemoryStore` (nothing survives the process)
``"postgresql://..."``                  :class:`PostgresStore` (needs ``fanfold[postgres]``)
``"sqlite:///runs.db"``, ``"runs.db"``  :class:`SQLiteStore`, also for a ``pathlib.Path``
======================================  =============================================
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from fanfold._errors import UsageError
from fanfold._store._base import Entry, RunRecord, Store
from fanfold._store._memory import MemoryStore
from fanfold._store._postgres import SCHEMES as POSTGRES_SCHEMES
from fanfold._store._postgres import PostgresStore, redact
from fanfold._store._sqlite import SQLiteStore

__all__ = ["Entry", "MemoryStore", "PostgresStore", "RunRecord", "SQLiteStore", "Store", "open_store"]

MEMORY = ("memory", ":memory:")
SQLITE_PREFIX = "sqlite:///"
HOW = (
    "pass a Store, 'memory', a SQLite file path ('runs.db' or 'sqlite:///runs.db'), "
    "or a PostgreSQL URL ('postgresql://user@host/database')"
)


def open_store(target: Store | str | os.PathLike[str] | None) -> Store:
    """The store ``target`` names (see the table above). The store is not opened yet: use it as
    ``async with store:``, or call ``await store.open()``.

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
        return MemoryStore()
    if isinstance(target, os.PathLike):
        return SQLiteStore(target)
    if not isinstance(target, str) or not target.strip():
        raise UsageError(f"store={target!r} is not a store; {HOW}")
    if target in MEMORY:
        return MemoryStore()
    if target.startswith(SQLITE_PREFIX) and len(target) > len(SQLITE_PREFIX):
        return SQLiteStore(target.removeprefix(SQLITE_PREFIX))
    scheme = urlsplit(target).scheme
    if scheme in POSTGRES_SCHEMES:
        return PostgresStore(target)
    # A URL of another kind (or a malformed sqlite:// one) is not a file name: refuse it rather than
    # create a file called "mysql:" in the working directory.
    if "://" in target:
        raise UsageError(f"store={redact(target)!r} is not a store URL fanfold knows; {HOW}")
    return SQLiteStore(target)
