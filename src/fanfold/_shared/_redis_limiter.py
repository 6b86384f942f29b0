"""The limiter whose state lives in Redis, shared by every process that names the same resources.

It admits a leaf call the way the in-process limiter does (the global cap, counted resources,
provider resources with request and token buckets, a concurrency cap, limits learnt from
headers, pauses after a 429, adaptive concurrency while no limit is known), but the state of
each *named* resource is in Redis, changed by one Lua script per admission, on the server's
clock. So processes sharing a provider key share one limit instead of each assuming it owns it.

The global ``Limits(concurrency=...)`` stays each process's own cap (it bounds the work a
process has in flight, and a leaf naming no resource pays no round trip). A slot is a lease
renewed while held: a process killed mid-call gives its slots back when the leases lapse.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fanfold._errors import UsageError
from fanfold._governor import KINDS, ProviderResource, RateLimit, amounts
from fanfold._limits import Admission, ConcurrencyLimiter, Limits
from fanfold._redact import redact_url
from fanfold._shared._link import Link
from fanfold._shared._redis_budget import RedisLedger
from fanfold._usage import Budget, Ledger

_SCHEMES = ("redis", "rediss", "unix")
_OWN_PARAMETERS = ("namespace", "lease", "idle")


@dataclass(frozen=True, slots=True)
class _Plan:
    """What an admission naming some resources asks Redis for: the keys and configuration of
    those of them that are shared (the others are unlimited)."""

    keys: tuple[str, ...]
    slot_keys: tuple[str, ...]
    config: tuple[float, ...]


class SharedResource(ProviderResource):
    """A provider resource's local mirror: what the provider says (a 429, its limits) is kept
    here for this process's events, and sent to Redis, where admission reads it."""

    def __init__(self, name: str, limit: RateLimit, now: float, limiter: RedisLimiter) -> None:
        super().__init__(name, limit, now)
        self._limiter = limiter
        self._sent: dict[str, float] = {}

    def succeeded(self, seconds: float, limits: Mapping[str, float], now: float) -> None:
        super().succeeded(seconds, limits, now)
        # While the cap adapts, every success counts; once buckets govern, only news does.
        news = any(self._sent.get(kind) != value for kind, value in limits.items())
        if news or (self.adaptive and not self.buckets):
            self._sent.update(limits)
            self._limiter.report(self, "ok", seconds, limits)

    def throttled(
        self,
        retry_after: float | None,
        limits: Mapping[str, float],
        now: float,
        remaining: Mapping[str, float] | None = None,
        cost: Mapping[str, float] | None = None,
        sent: float | None = None,
    ) -> float:
        pause = super().throttled(retry_after, limits, now, remaining, cost, sent)  # this process waits at once
        if pause > 0:  # a breach of the limit (not an isolated 429): every process pauses
            self._sent.update(limits)
            self._limiter.report(self, "429", -1.0 if retry_after is None else retry_after, limits)
        return pause


class RedisLimiter(ConcurrencyLimiter):
    """A limiter shared by every process that uses the same Redis and ``namespace``.

    ``limits`` are this process's (as ``ff.run(limits=...)`` takes them): its global
    ``concurrency`` stays its own; each named resource's limit (a count, or a
    :class:`~fanfold.RateLimit`) is enforced on the state all the processes share. ``lease``:
    seconds a slot stays held by a process that stopped renewing it (a killed one); ``idle``:
    seconds after which an unused resource's state (and the namespace's budget) expires.
    The run's ``budget=`` is shared too: every process in the namespace draws from one budget.

    >>> limiter = ff.RedisLimiter("redis://127.0.0.1:6379/0", namespace="nightly-batch",
    ...                           limits=ff.Limits(resources={"openai": ff.RateLimit(requests_per_minute=500)}))
    >>> limiter
    RedisLimiter('redis://127.0.0.1:6379/0', namespace='nightly-batch')

    ``ff.run(..., limiter="redis://127.0.0.1:6379/0?namespace=nightly-batch")`` builds one from
    the run's ``limits`` and closes it when the run ends; an object passed in is closed when the
    last run using it ends, and reopens on next use.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        namespace: str = "default",
        limits: Limits | None = None,
        lease: float = 10.0,
        idle: float = 86_400.0,
    ) -> None:
        if not isinstance(url, str) or urlsplit(url).scheme not in _SCHEMES:
            raise UsageError(
                f"RedisLimiter({redact_url(url) if isinstance(url, str) else url!r}): pass a Redis URL, "
                "e.g. 'redis://127.0.0.1:6379/0'"
            )
        if not isinstance(namespace, str) or not namespace or any(c in namespace for c in "{} \t\n"):
            raise UsageError(
                f"RedisLimiter(namespace={namespace!r}): pass a non-empty name without spaces or braces, "
                "e.g. 'nightly-batch'"
            )
        for name, value in (("lease", lease), ("idle", idle)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
                raise UsageError(f"RedisLimiter({name}={value!r}): pass seconds, a number > 0")
        if idle < lease:
            raise UsageError(f"RedisLimiter(idle={idle!r}) is shorter than lease={lease!r}; pass idle >= lease")
        if limits is not None and not isinstance(limits, Limits):
            raise UsageError(f"RedisLimiter(limits={limits!r}): pass ff.Limits(resources={{...}})")
        limits = limits or Limits()
        super().__init__(Limits(concurrency=limits.concurrency))  # the process's own cap only
        self.limits = limits
        self.namespace = namespace
        self.lease = float(lease)
        self._link = Link(url, namespace, lease=lease, idle=idle)
        self._counted = {k: v for k, v in limits.resources.items() if isinstance(v, int)}
        self._rate_limits = {k: v for k, v in limits.resources.items() if isinstance(v, RateLimit)}
        self._mirrors: dict[str, SharedResource] = {}
        self._plans: dict[tuple[str, ...], _Plan | None] = {}
        self._gates: dict[tuple[str, ...], asyncio.Lock] = {}
        self._held: dict[int, tuple[str, _Plan]] = {}  # id(admission) -> its slot
        self._me = uuid.uuid4().hex[:12]
        self._slots = itertools.count()
        self._runs = 0

    @classmethod
    def from_url(cls, url: str, limits: Limits) -> RedisLimiter:
        """A limiter from ``limiter="redis://host:port/db?namespace=...&lease=...&idle=..."``."""
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        own = {name: value for name, value in query if name in _OWN_PARAMETERS}
        rest = urlencode([(name, value) for name, value in query if name not in _OWN_PARAMETERS])
        options: dict[str, Any] = {}
        if "namespace" in own:
            options["namespace"] = own["namespace"]
        for name in ("lease", "idle"):
            if name in own:
                try:
                    options[name] = float(own[name])
                except ValueError:
                    raise UsageError(
                        f"limiter={redact_url(url)!r}: {name}={own[name]!r} is not a number of seconds"
                    ) from None
        base = urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment))
        return cls(base, limits=limits, **options)

    def __repr__(self) -> str:
        return f"RedisLimiter({self._link.shown!r}, namespace={self.namespace!r})"

    # -- a run's use -----------------------------------------------------------------------------

    def begin_run(self, budget: Budget | None) -> Ledger:
        self._runs += 1
        return RedisLedger(budget, self._link) if budget is not None else Ledger(None)

    async def end_run(self) -> None:
        self._runs -= 1
        if self._runs <= 0:
            await self.aclose()
        else:
            await self._link.flush()

    async def aclose(self) -> None:
        """Send what is pending (releases, reports, settlements) and close the connection."""
        self._runs = 0
        self._gates.clear()  # a later run may use another event loop
        self._link.listeners.clear()
        await self._link.aclose()

    async def __aenter__(self) -> RedisLimiter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- admission -------------------------------------------------------------------------------

    def meter(self, name: str, lookup: tuple[str, ...] = ()) -> ProviderResource:
        mirror = self._mirrors.get(name)
        if mirror is None:
            rates = self._rate_limits
            limit = next((rates[key] for key in (name, *lookup) if key in rates), None) or RateLimit()
            mirror = self._mirrors[name] = SharedResource(name, limit, asyncio.get_running_loop().time(), self)
            self._plans.clear()
        return mirror

    def _plan(self, resources: tuple[str, ...]) -> _Plan | None:
        if not resources:
            return None
        try:
            return self._plans[resources]
        except KeyError:
            pass
        names = [name for name in resources if name in self._mirrors or name in self._counted]
        plan = None
        if names:
            prefix = self._link.prefix
            keys = tuple(key for name in names for key in (f"{prefix}:{name}:state", f"{prefix}:{name}:slots"))
            config = tuple(value for name in names for value in self._config(name))
            plan = _Plan(keys, keys[1::2], config)
        self._plans[resources] = plan
        return plan

    def _config(self, name: str) -> tuple[float, ...]:
        """The resource's limits, as :data:`fanfold._shared._lua.CONFIG_FIELDS` reads them."""
        mirror = self._mirrors.get(name)
        if mirror is None:  # a counted resource: a cap on calls at once, nothing else
            return (self._counted[name], 0, 1, 1, 1.0, 0, 0, 0, 0, 0)
        limit = mirror.limit
        rates = tuple(limit.per_minute(kind) or 0 for kind in KINDS)
        head = (limit.concurrency or 0, int(mirror.adaptive), limit.initial_concurrency, limit.max_concurrency)
        return (*head, limit.burst, int(limit.learn), *rates)

    def try_acquire(self, admission: Admission) -> bool:
        if self._plan(admission.resources) is not None:
            return False  # it needs a round trip to Redis: acquire() makes it
        return super().try_acquire(admission)

    async def acquire(self, admission: Admission) -> None:
        plan = self._plan(admission.resources)
        if plan is None:
            await super().acquire(admission)
            return
        # The process's own cap first: waiting for it holds nothing the other processes need.
        if not super().try_acquire(admission):
            await super().acquire(admission)
        try:
            await self._acquire_shared(admission, plan)
        except BaseException:
            super().release(admission)
            raise

    async def _acquire_shared(self, admission: Admission, plan: _Plan) -> None:
        link = self._link
        await link.open()
        spend = amounts(admission.cost)
        costs = (spend["tokens"], spend["input_tokens"], spend["output_tokens"])
        gate = self._gates.get(admission.resources)
        if gate is None:
            gate = self._gates[admission.resources] = asyncio.Lock()
        # One waiter per kind of admission asks Redis at a time; the others queue behind it here.
        async with gate:
            while True:
                paused = self._paused(admission.resources)
                if paused > 0:  # a 429 seen here: wait it out before asking Redis
                    await asyncio.sleep(paused)
                    continue
                slot = f"{self._me}:{next(self._slots)}"
                since = link.generation
                args = (slot, link.lease_ms, link.idle_ms, *costs, *plan.config)
                try:
                    verdict = await link.call("ACQUIRE", plan.keys, args)
                except asyncio.CancelledError:
                    link.write("RELEASE", plan.keys, (slot, link.channel, "r", 0))  # it may have been granted
                    raise
                if int(verdict[0]) == 1:
                    self._held[id(admission)] = (slot, plan)
                    self._sent(admission)
                    for key in plan.slot_keys:
                        link.leases.setdefault(key, set()).add(slot)
                    return
                wait = float(verdict[1]) / 1000
                if int(verdict[2]):  # a resource is full: until a release, or its first lease lapses
                    lapse = float(verdict[3]) / 1000
                    await link.changed(since, max(wait, lapse if lapse >= 0 else self.lease) + 0.001)
                else:
                    await asyncio.sleep(wait + 0.001)

    def _sent(self, admission: Admission) -> None:
        """A call is sent: its resources' mirrors record when (a limit that sends no headers is
        judged by the calls sent and refused), and so does the call."""
        sent = admission.sent = asyncio.get_running_loop().time()
        for name in admission.resources:
            mirror = self._mirrors.get(name)
            if mirror is not None:
                mirror.sends.add(sent)

    def _paused(self, resources: tuple[str, ...]) -> float:
        mirrors = self._mirrors
        if not mirrors:
            return 0.0
        now = asyncio.get_running_loop().time()
        return max((mirrors[name].paused_until - now for name in resources if name in mirrors), default=0.0)

    def release(self, admission: Admission) -> None:
        held = self._held.pop(id(admission), None)
        if held is not None:
            slot, plan = held
            link = self._link
            for key in plan.slot_keys:
                link.leases[key].discard(slot)
            usage = admission.usage
            if usage is None:
                link.write("RELEASE", plan.keys, (slot, link.channel, "r", 0))
            else:
                estimated, spent = amounts(admission.cost), amounts(usage)
                corrections = [measure[kind] for measure in (estimated, spent) for kind in KINDS[1:]]
                link.write("RELEASE", plan.keys, (slot, link.channel, "r", 1, *corrections))
        super().release(admission)

    def report(self, mirror: SharedResource, mode: str, seconds: float, limits: Mapping[str, float]) -> None:
        """Send what the provider said about ``mirror``'s resource: ``ok`` (with the call's
        latency) or ``429`` (with its Retry-After, -1 if none), and the limits it announced."""
        link = self._link
        name = mirror.name
        keys = (f"{link.prefix}:{name}:state", f"{link.prefix}:{name}:slots")
        learnt = tuple(limits.get(kind, 0.0) for kind in KINDS)
        link.write("REPORT", keys, (mode, seconds, link.idle_ms, *self._config(name), *learnt))
