"""What every benchmark shares: timing a coroutine, the asyncio baselines, and the verdict line.

The machine is shared and noisy, so each figure is a ratio against a baseline measured in the
same run, and each timing is the best of a few repeats (noise only ever adds time).
"""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

Main = Callable[[], Awaitable[object]]


def timed(main: Main) -> float:
    """Seconds ``main()`` takes on a fresh event loop, after a full garbage collection."""

    async def clocked() -> float:
        began = time.perf_counter()
        await main()
        return time.perf_counter() - began

    gc.collect()
    return asyncio.run(clocked())


def best_of(repeats: int, main: Main) -> float:
    """The fastest of ``repeats`` runs of ``main``, in seconds."""
    return min(timed(main) for _ in range(repeats))


async def gated_gather(agent: Callable[[Any], Awaitable[Any]], inputs: Iterable[Any], concurrency: int) -> list[Any]:
    """The hand-written baseline: ``asyncio.gather`` over every input, gated by a semaphore."""
    gate = asyncio.Semaphore(concurrency)

    async def gated(value: Any) -> Any:
        async with gate:
            return await agent(value)

    return await asyncio.gather(*(gated(value) for value in inputs))


def title(text: str) -> None:
    print(f"\n== {text}", flush=True)


def info(text: str) -> None:
    print(f"   {text}", flush=True)


def check(claim: str, value: float, target: float, *, unit: str = "x", below: bool = False) -> bool:
    """Print ``PASS`` or ``MISS`` for ``value <= target`` (or ``value < target`` with ``below``)."""
    ok = value < target if below else value <= target
    sign = "<" if below else "<="
    print(f"{'PASS' if ok else 'MISS'} {claim}: {value:.3f}{unit} (target {sign} {target:g}{unit})", flush=True)
    return ok


def child_figures(script: str, n: int) -> dict[str, float]:
    """Run ``script --child n`` in a fresh process; return the JSON it prints (``count``,
    ``seconds``, ``peak_mb``), checking that it handled all ``n``."""
    done = subprocess.run([sys.executable, script, "--child", str(n)], capture_output=True, text=True, check=True)
    figures: dict[str, float] = json.loads(done.stdout)
    assert figures["count"] == n, f"handled {figures['count']} of {n}"
    return figures


def check_flat_memory(script: str, baseline: str, unit: str) -> None:
    """The memory benchmarks' report: peak RSS of fresh child processes for none, 100k and 1M
    ``unit``; targets: <= 150 MB at 1M, and within 1.1x of the 100k peak."""
    base = child_figures(script, 0)
    info(f"{baseline:>26}: {base['peak_mb']:6.1f} MB")
    runs = {n: child_figures(script, n) for n in (100_000, 1_000_000)}
    for n, figures in runs.items():
        rate = n / figures["seconds"]
        growth = figures["peak_mb"] - base["peak_mb"]
        info(f"{n:>26,}: {figures['peak_mb']:6.1f} MB ({growth:+.1f} MB over baseline, {rate:,.0f} {unit}/s)")
    peak_1m = runs[1_000_000]["peak_mb"]
    check(f"peak RSS at 1M {unit}", peak_1m, 150, unit=" MB")
    check("peak RSS 1M / 100k", peak_1m / runs[100_000]["peak_mb"], 1.1)


class SimulatorProcess:
    """``fanfold simulate`` in a process of its own, so that the client's CPU figures are the
    client's; controlled over its ``/_sim`` endpoints::

        with SimulatorProcess("--rpm", "1200") as sim:
            sim.openai_base_url, sim.stats(), sim.set_limits(requests_per_minute=600)
    """

    def __init__(self, *args: str) -> None:
        self.args = args
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> SimulatorProcess:
        entry = "from fanfold._cli._app import main; main()"
        command = [sys.executable, "-u", "-c", entry, "simulate", "--port", "0", *self.args]
        self._proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            if "serving on " in line:
                self.url = line.split("serving on ", 1)[1].strip()
                break
        else:
            raise RuntimeError(f"fanfold simulate did not start: {' '.join(command)}")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._proc is not None
        self._proc.terminate()
        self._proc.wait(10)
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    def _call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self._call("/_sim/stats")
        return stats

    def reset(self) -> None:
        self._call("/_sim/reset", {})

    def set_limits(self, **limits: float) -> None:
        self._call("/_sim/limits", limits)


def steady_rate(timeline: list[int]) -> float:
    """Mean per-second count over a timeline's whole seconds (the first and last are partial)."""
    inner = timeline[1:-1]
    return sum(inner) / len(inner) if inner else 0.0
