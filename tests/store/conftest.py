"""The store bench every store test runs on: memory, SQLite and Postgres (skipped, saying why,
when no Postgres server answers)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.store.test_store import KINDS, Bench, need_postgres


@pytest.fixture(params=KINDS)
def bench(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Bench]:
    if request.param == "postgres":
        need_postgres()
    bench = Bench(request.param, tmp_path)
    yield bench
    bench.clean_up()
