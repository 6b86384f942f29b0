"""Function agents for the backend tests, at module level so that another process can import
them by name. Each execution is appended to a log file the input names (one line, written with
O_APPEND, so lines from several processes do not interleave)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any


def double(x: int) -> int:
    return 2 * x


def pid(x: Any) -> int:
    return os.getpid()


def snapshot(x: Any, ctx: Any) -> dict[str, Any]:
    return {
        "run_id": ctx.run_id,
        "path": ctx.path,
        "attempt": ctx.attempt,
        "index": ctx.index,
        "type": type(ctx).__name__,
    }


def pick(x: int) -> str:
    return "yes" if x >= 0 else "no"


def fails(x: int) -> int:
    raise KeyError(f"no {x}")


def record(item: dict[str, Any], attempt: int) -> None:
    line = f"{item['i']} {attempt} {os.getpid()}\n".encode()
    fd = os.open(item["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def executions(log: Path) -> dict[int, list[int]]:
    """Input index -> the attempts that executed it, from the log."""
    runs: dict[int, list[int]] = {}
    if log.exists():
        for line in log.read_text().splitlines():
            i, attempt, _ = line.split()
            runs.setdefault(int(i), []).append(int(attempt))
    return runs


def burn(seconds: float) -> int:
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


def work(item: dict[str, Any], ctx: Any) -> int:
    """Record the execution, burn a little CPU, return twice the index. On its first attempt,
    the input named ``victim`` writes its process id to ``pidfile`` and kills its own process,
    mid-call, as a crash or the OOM killer would."""
    record(item, ctx.attempt)
    if item["i"] == item.get("victim") and ctx.attempt == 1:
        Path(item["pidfile"]).write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    burn(item.get("seconds", 0.002))
    return 2 * item["i"]


def kill_driver(item: dict[str, Any], ctx: Any) -> int:
    """Like :func:`work`; and the input named ``kill_driver_at`` kills the driver, whose pid is
    in ``driverfile``, once (a marker file says it was done)."""
    record(item, ctx.attempt)
    marker = Path(item["driverfile"] + ".killed")
    if item["i"] == item["kill_driver_at"] and not marker.exists():
        marker.write_text("1")
        os.kill(int(Path(item["driverfile"]).read_text()), signal.SIGKILL)
    burn(0.002)
    return 2 * item["i"]


def spin(item: dict[str, Any]) -> int:
    """Write this process's id to ``pidfile``, tell :func:`started` through the FIFO ``fifo``
    that it runs, then burn CPU for ``seconds``."""
    Path(item["pidfile"]).write_text(str(os.getpid()))
    os.close(os.open(item["fifo"], os.O_WRONLY))  # blocks until started() opens it
    return burn(item["seconds"])


def started(item: dict[str, Any]) -> str:
    """Return once :func:`spin` runs (it opens the FIFO ``fifo`` for writing)."""
    os.close(os.open(item["fifo"], os.O_RDONLY))  # blocks until spin() opens it
    return "spin runs"


def size(text: str) -> int:
    return len(text)
