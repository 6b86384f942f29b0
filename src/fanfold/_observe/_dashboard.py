"""A live dashboard on aiohttp: the runs of a store, or one run of this process, updated over
server-sent events, with a button that cancels a run.

Two ways to use it:

- ``fanfold dashboard --store runs.db`` (:func:`store_dashboard`): every run in the store,
  including live runs of other processes; their progress comes from their journals, and the
  cancel button writes a cancel request into the run's record that the running process obeys.
- In a program or a notebook (:func:`serve_dashboard`)::

      async with ff.start(ff.map(grade), essays) as run:
          async with serve_dashboard(run, port=8765) as board:
              print(board.url)
              result = await run.result()

It binds to loopback by default. Bound to any other address it wants a token on every request
(``?token=`` or the ``X-Fanfold-Token`` header): the one given, or one generated (see ``url``).
Error messages are redacted (``fanfold._redact``) before they are served.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import secrets
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from fanfold._errors import FanfoldError, UsageError
from fanfold._observe._feeds import BusFeed, Feed, StoreFeed
from fanfold._observe._page import PAGE
from fanfold._records import Store, open_store
from fanfold._redact import redact
from fanfold._run import Run

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Dashboard:
    """The dashboard's server; use as ``async with``, or :meth:`start` and :meth:`stop`."""

    def __init__(self, feed: Feed, *, host: str = "127.0.0.1", port: int = 8765, token: str | None = None) -> None:
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise UsageError(f"dashboard port={port!r} is not a TCP port; pass 0..65535 (0: any free port)")
        if token is None and not is_loopback(host):
            token = secrets.token_urlsafe(18)  # bound beyond loopback: never without a token
        self.feed, self.host, self.port, self.token = feed, host, port, token
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def url(self) -> str:
        """The page's address (with the token, when there is one)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/" + (f"?token={self.token}" if self.token else "")

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/", self._page)
        app.router.add_get("/api/runs", self._runs)
        app.router.add_get("/api/runs/{run_id}/events", self._events)
        app.router.add_post("/api/runs/{run_id}/cancel", self._cancel)
        return app

    async def start(self) -> None:
        if isinstance(self.feed, BusFeed):
            self._tasks.append(asyncio.get_running_loop().create_task(self.feed.consume()))
        runner = web.AppRunner(self.app(), handle_signals=False, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise UsageError(
                f"the dashboard cannot listen on {self.host}:{self.port}: {exc.strerror or exc}; pass another "
                "--port (or 0 for any free one)"
            ) from exc
        self._runner = runner
        server = site._server  # the socket's port, when 0 asked for any free one
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        self._tasks.clear()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- requests ----------------------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.token is not None:
            given = request.query.get("token") or request.headers.get("X-Fanfold-Token") or ""
            if not secrets.compare_digest(given.encode(), self.token.encode()):
                return web.Response(status=401, text="this dashboard wants its token: open the address it printed")
        try:
            return await handler(request)
        except FanfoldError as exc:
            return web.Response(status=404 if isinstance(exc, UsageError) else 500, text=redact(str(exc)))

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html", headers={"Cache-Control": "no-store"})

    async def _runs(self, request: web.Request) -> web.Response:
        return web.json_response(await self.feed.runs())

    async def _cancel(self, request: web.Request) -> web.Response:
        run_id = request.match_info["run_id"]
        await self.feed.cancel(run_id)
        return web.Response(text=f"asked run {run_id} to cancel")

    async def _events(self, request: web.Request) -> web.StreamResponse:
        run_id = request.match_info["run_id"]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await response.prepare(request)
        try:
            async for message in self.feed.follow(run_id):
                await response.write(_sse(message))
            await response.write(b"event: end\ndata: {}\n\n")
        except FanfoldError as exc:
            await response.write(f"event: problem\ndata: {redact(str(exc))}\n\n".encode())
        except ConnectionResetError:  # the page went away: nobody to tell
            return response
        return response


def _sse(message: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(message, separators=(",", ":")).encode() + b"\n\n"


async def serve_store(
    target: str, *, host: str, port: int, token: str | None, announce: Callable[[str], object]
) -> None:
    """``fanfold dashboard``: serve the runs of the store ``target`` names until cancelled."""
    store = open_store(target)
    path = getattr(store, "path", None)
    if isinstance(path, str) and not await asyncio.to_thread(os.path.exists, path):
        raise UsageError(f"--store {target!r}: no store there (no run has used it); pass the --store a run used")
    async with store, store_dashboard(store, host=host, port=port, token=token) as board:
        announce(f"fanfold dashboard of {store.url}: {board.url}  (Ctrl-C stops it)")
        await asyncio.Event().wait()  # until Ctrl-C


def serve_dashboard(
    source: Run | Store, *, host: str = "127.0.0.1", port: int = 8765, token: str | None = None
) -> Dashboard:
    """A live dashboard (a local web page, updated over server-sent events, with a cancel
    button) of one run of this process, fed by its events, or of every run in a store (opened by
    the caller; live runs of other processes included, read from their journals). For a run, call
    it before the run's first ``await`` (it subscribes to the run's events). Use it as
    ``async with``; ``url`` is the page's address (with its token, when bound beyond loopback)::

        async with ff.start(ff.map(grade), essays) as run:
            async with ff.serve_dashboard(run, port=8765) as board:
                print("watch it at", board.url)
                result = await run.result()

    >>> ff.serve_dashboard(ff.MemoryStore(), port=0).url
    'http://127.0.0.1:0/'
    """
    if isinstance(source, Run):
        return Dashboard(BusFeed(source), host=host, port=port, token=token)
    if isinstance(source, Store):
        return Dashboard(StoreFeed(source), host=host, port=port, token=token)
    raise UsageError(
        f"ff.serve_dashboard({source!r}): pass a run of this process (ff.start(...)) or a Store "
        "(ff.SQLiteStore('runs.db'), opened with `async with`)"
    )


def store_dashboard(store: Store, *, host: str = "127.0.0.1", port: int = 8765, token: str | None = None) -> Dashboard:
    """A dashboard of every run in ``store`` (opened by the caller)."""
    return Dashboard(StoreFeed(store), host=host, port=port, token=token)
