"""SimulatedProvider: a real HTTP server on loopback that speaks OpenAI's and Anthropic's APIs."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from aiohttp import web

from fanfold._errors import UsageError
from fanfold._sim._config import AnswerSetting, Faults, Latency, Reply, SimLimits
from fanfold._sim._server import SimService
from fanfold._sim._stats import SimStats

T = TypeVar("T")

_BACKLOG = 4096  # a benchmark opens thousands of connections at once
_SHUTDOWN_TIMEOUT = 0.5  # seconds stop() waits for requests in flight (a hanging one would take 30)


class SimulatedProvider:
    """A simulated LLM provider: OpenAI Chat Completions and Responses, and Anthropic Messages,
    on a real HTTP server, with a provider's rate limits, latency, faults and deterministic
    answers. Official SDKs and pydantic-ai models talk to it as to the real thing::

        sim = SimulatedProvider(limits=SimLimits(requests_per_minute=600), latency=Latency.fixed(0.05))
        async with sim:
            client = AsyncOpenAI(base_url=sim.openai_base_url, api_key="sk-test")
            ...
            print(sim.stats.by_status)

    ``limits``: None (the default) enforces none. ``latency``: per request, seeded (default
    :class:`Latency`, a median of 0.2 s). ``faults``: errors to inject. ``answer``: None for the
    deterministic default (schema-valid filler when structured output is asked for, else
    ``"Simulated answer: <digest of the last user message>"``), a canned string, a
    :class:`Reply`, or a function ``(SimRequest) -> str | dict | Reply | None`` called once per
    answered request (not for one denied or failed by a fault). ``seed`` fixes answers, fault
    draws and latencies for a given arrival order. ``rate_limit_headers=False`` leaves out the
    ``x-ratelimit-*`` / ``anthropic-ratelimit-*`` headers. OpenAI's Batch API is served too
    (``/v1/files``, ``/v1/batches``; see ``fanfold._sim._batches``): a batch answers its lines
    ``batch_delay`` seconds after it starts (``math.inf``: when :meth:`release_batches` is
    called), or expires at ``batch_expiry`` seconds if that comes first. ``port=0`` picks a free port;
    ``sim.url`` says which.

    Any API key is accepted (one must be sent, as real providers require) and none is logged.
    Control endpoints serve another process: ``GET /_sim/stats``, ``GET``/``POST /_sim/limits``
    and ``POST /_sim/reset``.

    >>> with SimulatedProvider(latency=Latency.fixed(0)).in_thread() as sim:
    ...     sim.url.startswith("http://127.0.0.1:")
    True
    """

    def __init__(
        self,
        *,
        limits: SimLimits | None = None,
        latency: Latency | None = None,
        faults: Faults | None = None,
        answer: AnswerSetting = None,
        seed: int = 0,
        rate_limit_headers: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        batch_delay: float = 0.0,
        batch_expiry: float | None = None,
    ) -> None:
        if limits is not None and not isinstance(limits, SimLimits):
            raise UsageError(f"SimulatedProvider(limits={limits!r}): pass SimLimits(...), or None for no limits")
        if latency is not None and not isinstance(latency, Latency):
            raise UsageError(f"SimulatedProvider(latency={latency!r}): pass Latency(...) or Latency.fixed(seconds)")
        if faults is not None and not isinstance(faults, Faults):
            raise UsageError(f"SimulatedProvider(faults={faults!r}): pass Faults(rate_429=..., ...)")
        if not (answer is None or isinstance(answer, (str, Reply)) or callable(answer)):
            raise UsageError(
                f"SimulatedProvider(answer={answer!r}): pass None (the default answer), a str, a Reply, "
                "or a function (SimRequest) -> str | dict | Reply | None"
            )
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536:
            raise UsageError(f"SimulatedProvider(port={port!r}): pass a TCP port, or 0 for a free one")
        for name, value in (("batch_delay", batch_delay), ("batch_expiry", batch_expiry)):
            if value is None and name == "batch_expiry":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or value != value or value < 0:
                raise UsageError(
                    f"SimulatedProvider({name}={value!r}): pass seconds >= 0 (math.inf: held until release_batches())"
                )
        self.host = host
        self.port = port
        self._service = SimService(
            limits=limits,
            latency=latency if latency is not None else Latency(),
            faults=faults if faults is not None else Faults(),
            answer=answer,
            seed=seed,
            rate_limit_headers=rate_limit_headers,
            batch_delay=batch_delay,
            batch_expiry=batch_expiry,
        )
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread_id: int | None = None
        self._bound_port: int | None = None

    # --- where it listens ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the running server."""
        if self._bound_port is None:
            raise UsageError("the simulated provider is not running: use `async with sim:` or `with sim.in_thread():`")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._bound_port}"

    @property
    def openai_base_url(self) -> str:
        """The ``base_url`` for OpenAI clients: ``sim.url + "/v1"``."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """The ``base_url`` for Anthropic clients (the SDK adds ``/v1``)."""
        return self.url

    # --- what it does --------------------------------------------------------------------------

    @property
    def stats(self) -> SimStats:
        """A snapshot of what the server has seen (see :class:`SimStats`)."""
        return self._on_server_loop(self._service.recorder.snapshot)

    @property
    def limits(self) -> SimLimits | None:
        return self._service.limits

    def set_limits(self, limits: SimLimits | None) -> None:
        """Change the rate limits mid-run (None: none). Buckets keep their fill, cut to the new
        capacity; a ramp, if the new limits have one, carries on from where it is."""
        self._on_server_loop(lambda: self._service.set_limits(limits))

    @property
    def batches(self) -> dict[str, Any]:
        """The Batch API's state: ``created`` (batches), ``answered`` (lines), ``batches`` (each
        as ``GET /v1/batches/{id}`` shows it); also at ``GET /_sim/batches``."""
        return self._on_server_loop(self._service.batches.summary)

    def release_batches(self) -> None:
        """Finish every batch still waiting out its ``batch_delay``, now."""
        self._on_server_loop(self._service.batches.release)

    def reset_stats(self) -> None:
        """Zero the statistics (requests in flight finish uncounted)."""
        self._on_server_loop(self._service.recorder.reset)

    def _on_server_loop(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server's loop thread (at once when already there, or not running):
        its state is only ever touched from one thread."""
        loop = self._loop
        if loop is None or self._thread_id == threading.get_ident() or loop.is_closed():
            return fn()
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def call() -> None:
            try:
                done.set_result(fn())
            except BaseException as exc:  # handed over to the calling thread as it is
                done.set_exception(exc)

        loop.call_soon_threadsafe(call)
        return done.result()

    # --- running -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start serving in the running event loop."""
        if self._runner is not None:
            raise UsageError("the simulated provider is already running; stop it before starting it again")
        runner = web.AppRunner(
            self._service.app(), access_log=None, handler_cancellation=True, shutdown_timeout=_SHUTDOWN_TIMEOUT
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, backlog=_BACKLOG, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._loop = asyncio.get_running_loop()
        self._thread_id = threading.get_ident()
        self._bound_port = runner.addresses[0][1]
        self._service.started(time.monotonic())

    async def stop(self) -> None:
        """Stop serving; requests still in flight get ``0.5`` s to finish, then are cut off."""
        runner, self._runner = self._runner, None
        self._bound_port = None
        if runner is not None:
            await runner.cleanup()
        self._loop = self._thread_id = None

    async def __aenter__(self) -> SimulatedProvider:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @contextmanager
    def in_thread(self) -> Iterator[SimulatedProvider]:
        """Serve from a daemon thread with its own event loop, for sync code or to keep the
        server off the client's loop. ``stats`` and ``set_limits`` work from any thread.

        >>> with SimulatedProvider().in_thread() as sim:
        ...     sim.stats.requests
        0
        """
        ready: concurrent.futures.Future[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = concurrent.futures.Future()

        async def serve() -> None:
            try:
                await self.start()
            except BaseException as exc:
                ready.set_exception(exc)
                return
            stopping = asyncio.Event()
            ready.set_result((asyncio.get_running_loop(), stopping))
            try:
                await stopping.wait()
            finally:
                await self.stop()

        thread = threading.Thread(target=asyncio.run, args=(serve(),), name="fanfold-simulated-provider", daemon=True)
        thread.start()
        try:
            loop, stopping = ready.result()
        except BaseException:
            thread.join()
            raise
        try:
            yield self
        finally:
            loop.call_soon_threadsafe(stopping.set)
            thread.join()

    def __repr__(self) -> str:
        where = self.url if self._bound_port is not None else "not running"
        return f"<SimulatedProvider {where}>"
