"""The local Redis the shared governor's tests run against (skipped, saying why, if none
answers), and a namespace of its own for each test, removed afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

REDIS_URL = os.environ.get("FANFOLD_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _reachable() -> str | None:
    try:
        import redis
    except ImportError:
        return "the redis package is not installed (pip install 'fanfold[redis]')"
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return f"no Redis answers at {REDIS_URL} ({exc}); start one: redis-server, or docker run -p 6379:6379 redis"
    finally:
        client.close()
    return None


@pytest.fixture(scope="session")
def redis_url() -> str:
    reason = _reachable()
    if reason is not None:
        pytest.skip(reason)
    return REDIS_URL


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    import redis

    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"fanfold:{{{name}}}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
