"""One process's link to the shared governor's Redis.

The hot path (an admission, a budget reservation) is one script call, one round trip. What a
call does after it ran (give back its slot, settle its reservation, report a 429 or the limits
a provider announced) cannot wait for Redis, because the limiter's ``release`` and the ledger's
``settle`` are synchronous: those writes go to a queue that one writer task sends in order, many
at a time in a pipeline. Waiters learn of releases from a pub/sub channel (one per namespace)
rather than by polling, and the leases of the slots and reservations this process holds are
renewed by a timer, so that they lapse only if the process stops.

The tasks live as long as the link, not as one run's task group: a limiter may serve several
runs at once, and :meth:`Link.aclose` (called when the last of them ends) cancels and awaits them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from fanfold._errors import RunError, UsageError
from fanfold._redact import redact_url, register_url
from fanfold._shared import _lua

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

Write = tuple[str, Sequence[str], Sequence[Any]]


class SharedGovernorError(RunError):
    """The shared governor's Redis could not be reached, or refused a write."""


class Link:
    """A connection to Redis for one namespace: its scripts, its ordered background writes, its
    notifications and the leases it renews. Opened on first use (in the running event loop)."""

    def __init__(self, url: str, namespace: str, *, lease: float, idle: float) -> None:
        register_url(url)
        self.url = url
        self.shown = redact_url(url)
        self.prefix = f"fanfold:{{{namespace}}}"  # a hash tag: one namespace lives on one cluster node
        self.channel = f"{self.prefix}:events"
        self.lease_ms = round(lease * 1000)
        self.idle_ms = round(idle * 1000)
        self.leases: dict[str, set[str]] = {}  # sorted set of leases -> ids this process holds
        self.listeners: list[Callable[[str], None]] = []
        self.generation = 0  # bumped by every notification
        self.failure: BaseException | None = None
        self._client: Redis | None = None
        self._scripts: dict[str, AsyncScript] = {}
        self._writes: asyncio.Queue[Write] | None = None
        self._changed: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._opening = asyncio.Lock()

    async def open(self) -> None:
        """Connect, load the scripts, subscribe to the namespace's channel, start the tasks."""
        if self._client is None:
            async with self._opening:
                if self._client is None:  # not opened by another caller while this one waited
                    self._client = await self._connect()

    async def _connect(self) -> Redis:
        redis = _redis()
        client: Redis = redis.asyncio.from_url(self.url)
        try:
            scripts = {name: client.register_script(getattr(_lua, name)) for name in _SCRIPTS}
            for script in scripts.values():
                await client.script_load(script.script)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            await pubsub.subscribe(self.channel)
        except (redis.RedisError, OSError) as exc:
            await client.aclose()
            raise self.unreachable(exc) from None
        self._scripts = scripts
        self._writes = asyncio.Queue()
        self._changed = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._write_loop(client), name="fanfold-redis-writer"),
            loop.create_task(self._listen_loop(pubsub), name="fanfold-redis-listener"),
            loop.create_task(self._renew_loop(client), name="fanfold-redis-renewer"),
        ]
        return client

    def unreachable(self, exc: BaseException) -> SharedGovernorError:
        return SharedGovernorError(
            f"the shared governor's Redis at {self.shown} failed: {type(exc).__name__}: {exc}; "
            "check that Redis runs there (redis-server, or docker run -p 6379:6379 redis), "
            "or run without limiter= to govern in this process only"
        )

    async def call(self, script: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run ``script`` now and return its answer: the hot path, one round trip."""
        if self.failure is not None:
            raise self.unreachable(self.failure)
        redis = _redis()
        try:
            return await self._scripts[script](keys=keys, args=args)
        except (redis.RedisError, OSError) as exc:
            raise self.unreachable(exc) from None

    def write(self, script: str, keys: Sequence[str], args: Sequence[Any]) -> None:
        """Queue ``script`` to run after the writes queued before it (it is not awaited)."""
        assert self._writes is not None, "the link is opened by the admission that this write follows"
        self._writes.put_nowait((script, keys, args))

    async def flush(self) -> None:
        """Wait until every queued write has reached Redis (or failed)."""
        if self._writes is not None:
            await self._writes.join()

    async def changed(self, since: int, timeout: float) -> None:
        """Return when a notification came after ``since`` (a :attr:`generation`), or after
        ``timeout`` seconds, whichever is first."""
        changed = self._changed
        if self.generation != since or changed is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await changed.wait()

    async def aclose(self) -> None:
        """Send what is queued, stop the tasks, close the connection. It reopens on next use."""
        client, tasks = self._client, self._tasks
        if client is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):  # Redis gone: the leases lapse on their own
                await self.flush()
        self._client, self._tasks, self._writes, self._changed = None, [], None, None
        self._opening = asyncio.Lock()  # a later run may use another event loop
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await client.aclose()

    # -- the background tasks ------------------------------------------------------------------

    async def _write_loop(self, client: Redis) -> None:
        queue = self._writes
        assert queue is not None
        redis = _redis()
        while True:
            batch = [await queue.get()]
            while not queue.empty():
                batch.append(queue.get_nowait())
            try:
                await self._send(client, batch)
            except redis.exceptions.NoScriptError:  # Redis restarted and forgot the scripts
                for script in self._scripts.values():
                    await client.script_load(script.script)
                await self._send(client, batch)
            except (redis.RedisError, OSError) as exc:
                # Kept for the next admission to raise; meanwhile what it released lapses with its lease.
                self.failure = self.failure or exc
            finally:
                for _ in batch:
                    queue.task_done()

    async def _send(self, client: Redis, batch: list[Write]) -> None:
        async with client.pipeline(transaction=False) as pipe:
            for name, keys, args in batch:
                pipe.evalsha(self._scripts[name].sha, len(keys), *keys, *args)
            await pipe.execute()

    async def _listen_loop(self, pubsub: Any) -> None:
        try:
            while True:
                message = await pubsub.get_message(timeout=None)
                if message is None or message.get("type") != "message":
                    continue
                data = message["data"]
                text = data.decode() if isinstance(data, bytes) else str(data)
                self.generation += 1
                changed = self._changed
                if changed is not None:
                    changed.set()
                    self._changed = asyncio.Event()
                for listener in self.listeners:
                    listener(text)
        finally:
            await pubsub.aclose()

    async def _renew_loop(self, client: Redis) -> None:
        redis = _redis()
        while True:
            await asyncio.sleep(self.lease_ms / 3000)
            try:
                await self.renew(client)
            except (redis.RedisError, OSError) as exc:
                self.failure = self.failure or exc

    async def renew(self, client: Redis | None = None) -> int:
        """Extend the leases of every slot and reservation this process holds; how many were."""
        client = client or self._client
        held = [(key, list(ids)) for key, ids in self.leases.items() if ids]
        if not held or client is None:
            return 0
        sha = self._scripts["RENEW"].sha
        async with client.pipeline(transaction=False) as pipe:
            for key, ids in held:
                pipe.evalsha(sha, 1, key, self.lease_ms, *ids)
            return sum(int(n) for n in await pipe.execute())


_SCRIPTS = ("ACQUIRE", "RELEASE", "RENEW", "REPORT", "RESERVE", "SETTLE")


def _redis() -> Any:
    try:
        import redis.asyncio
    except ImportError:
        raise UsageError(
            "limiter='redis://...' needs the redis package, which is not installed; pip install 'fanfold[redis]'"
        ) from None
    return redis
