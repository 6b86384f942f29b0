"""A sync function that returns work still to do (a coroutine, a future, any awaitable) is an
agent whose value is that work's result, awaited on the run's loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Generator
from typing import Any

import fanfold as ff


async def shout(text: str) -> str:
    await asyncio.sleep(0)
    return text.upper()


class Runnable:
    """Like a LangChain runnable: ``ainvoke`` is async, and called from a lambda."""

    async def ainvoke(self, text: str) -> str:
        return await shout(text)


class Pending:
    """An awaitable of its own that is neither a coroutine nor a future."""

    def __init__(self, value: str) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, str]:
        yield from asyncio.sleep(0).__await__()
        return self.value


def test_a_lambda_returning_a_coroutine_is_awaited() -> None:
    runnable = Runnable()
    result = ff.run_sync(ff.map(lambda x: runnable.ainvoke(x)), ["a", "b"])
    assert result.output == ["A", "B"]
    assert result.summary.succeeded == 2


def test_a_failure_inside_the_returned_coroutine_fails_the_task() -> None:
    async def broken(text: str) -> str:
        raise ValueError(f"cannot read {text!r}")

    result = ff.run_sync(ff.map(lambda x: broken(x)), ["a"])
    (outcome,) = result.outcomes
    assert outcome.status is ff.Status.FAILED
    assert outcome.error == ff.ErrorInfo("ValueError", "cannot read 'a'")


def test_a_sync_function_returning_an_awaitable_or_a_threads_future_is_awaited() -> None:
    def awaitable(text: str) -> Awaitable[str]:
        return Pending(text * 2)

    def future(text: str) -> concurrent.futures.Future[str]:
        done: concurrent.futures.Future[str] = concurrent.futures.Future()
        threading.Thread(target=done.set_result, args=(text + "!",)).start()
        return done

    assert ff.run_sync(ff.map(awaitable), ["a", "b"]).output == ["aa", "bb"]
    assert ff.run_sync(ff.map(future), ["a", "b"]).output == ["a!", "b!"]


def test_a_sync_function_returning_an_asyncio_future_of_the_loop_is_awaited() -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()

        def later(text: str) -> asyncio.Future[str]:
            # from the worker thread: a future of the run's loop, resolved on it
            pending: asyncio.Future[str] = asyncio.run_coroutine_threadsafe(make(text), loop).result()
            return pending

        async def make(text: str) -> asyncio.Future[str]:
            pending = loop.create_future()
            loop.call_soon(pending.set_result, text.upper())
            return pending

        result = await ff.run(ff.map(later), ["x", "y"])
        return list(result.output)

    assert asyncio.run(main()) == ["X", "Y"]
