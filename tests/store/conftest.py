"""The store bench every store test runs on: memory, SQLite and Postgres (skipped, saying why,
when no Postgres server answers)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.store.test_store import KINDS, Bench, need_postgres


def _bench(kind: str, tmp_path: Path) -> Iterator[Bench]:
    if kind == "postgres":
        need_postgres()
    bench = Bench(kind, tmp_path)
    yield bench
    bench.clean_up()


@pytest.fixture(params=KINDS)
def bench(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Bench]:
    yield from _bench(request.param, tmp_path)


@pytest.fixture(params=["sqlite", "postgres"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Bench]:
    """Two store objects on one place (a file, a database): what one writes, the other reads."""
    yield from _bench(request.param, tmp_path)
