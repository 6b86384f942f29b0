"""Imports: what ``import fanfold`` and ``fanfold --help`` cost, next to ``import asyncio``.

Every figure comes from a fresh interpreter, repeated (best and median shown; the best is
checked, since noise only adds time):

- import: the seconds ``import asyncio`` (the baseline) and ``import fanfold`` take inside the
  process, and the process's peak RSS (``ru_maxrss``) after each;
- ``fanfold --help``: the wall time of the whole command (``python -m fanfold._cli._app --help``,
  as the console script runs it), against the wall time of ``python -c 'import asyncio'``.

Targets: ``import fanfold`` within +0.25 s and +25 MB of ``import asyncio``; ``fanfold --help``
within +0.4 s of it. The wings (pydantic-ai, the HTTP clients, the stores, the simulator) load on
first use, so neither pays for them.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

from _common import check, info, title

REPEATS = 7

PROBE = """
import resource, sys, time
began = time.perf_counter()
import {module}
seconds = time.perf_counter() - began
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"seconds": seconds, "peak_mb": peak_mb, "modules": len(sys.modules)}}))
"""


def imported(module: str) -> dict[str, float]:
    """Seconds, peak RSS and module count of ``import module`` in a fresh interpreter."""
    code = "import json\n" + PROBE.format(module=module)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    figures: dict[str, float] = json.loads(done.stdout)
    return figures


def wall(command: list[str]) -> float:
    """Seconds a command takes, start to exit."""
    began = time.perf_counter()
    subprocess.run(command, capture_output=True, check=True)
    return time.perf_counter() - began


def best_and_median(values: list[float]) -> tuple[float, float]:
    return min(values), statistics.median(values)


def main() -> None:
    title(f"imports: fresh interpreters, best and median of {REPEATS}")
    runs = {module: [imported(module) for _ in range(REPEATS)] for module in ("asyncio", "fanfold")}
    seconds = {module: best_and_median([r["seconds"] for r in figures]) for module, figures in runs.items()}
    peak = {module: best_and_median([r["peak_mb"] for r in figures]) for module, figures in runs.items()}
    for module in runs:
        modules = int(runs[module][0]["modules"])
        info(f"import {module:<8}: {seconds[module][0] * 1000:6.1f} ms best, {seconds[module][1] * 1000:6.1f} ms "
             f"median; peak RSS {peak[module][0]:5.1f} MB; {modules} modules")  # fmt: skip
    check("import fanfold - import asyncio", seconds["fanfold"][0] - seconds["asyncio"][0], 0.25, unit=" s")
    check("peak RSS, import fanfold - import asyncio", peak["fanfold"][0] - peak["asyncio"][0], 25, unit=" MB")

    baseline = best_and_median([wall([sys.executable, "-c", "import asyncio"]) for _ in range(REPEATS)])
    help_ = best_and_median([wall([sys.executable, "-m", "fanfold._cli._app", "--help"]) for _ in range(REPEATS)])
    info(f"python -c 'import asyncio': {baseline[0]:.3f} s best, {baseline[1]:.3f} s median")
    info(f"fanfold --help            : {help_[0]:.3f} s best, {help_[1]:.3f} s median")
    check("fanfold --help - python -c 'import asyncio'", help_[0] - baseline[0], 0.4, unit=" s")


if __name__ == "__main__":
    main()
