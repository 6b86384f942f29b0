"""Memory of the batch command line: a million JSONL rows streamed through ``fanfold run``.

The pipeline is a Python object (``cli_memory:echo``, a trivial async function agent, no model),
the concurrency 100, the output ordered, and every outcome journaled in a SQLite store, as a
real batch would be. Each figure is the peak RSS of the ``fanfold run`` process
(``RUSAGE_CHILDREN`` of a fresh wrapper process, so one run cannot flatter the next):

- baseline: ``fanfold run`` over an empty file (the interpreter, fanfold and its CLI imported);
- 100k: 100,000 rows;
- 1M: 1,000,000 rows.

Targets: the 1M peak is <= 150 MB, and memory stays flat: the 1M peak is within 1.1x of the
100k peak.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import check_flat_memory, info, title

CONCURRENCY = 100
HERE = Path(__file__).resolve().parent


async def echo(row: dict[str, Any]) -> int:
    """The pipeline: a function agent that returns a field of its row."""
    value: int = row["n"]
    return value


def write_rows(path: Path, n: int) -> None:
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            f.write(f'{{"n": {i}, "text": "row {i}"}}\n')


def child(n: int) -> None:
    """Run ``fanfold run`` over ``n`` rows in a process of its own; print its peak RSS as JSON."""
    with tempfile.TemporaryDirectory(prefix="fanfold-cli-memory-") as tmp:
        work = Path(tmp)
        write_rows(work / "rows.jsonl", n)
        command = [sys.executable, "-m", "fanfold._cli._app", "run", "cli_memory:echo", "-i", "rows.jsonl", "-o",
                   "out.jsonl", "--store", "runs.db", "-c", str(CONCURRENCY), "--no-progress"]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
        began = time.perf_counter()
        done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - began
        if done.returncode != 0:
            raise SystemExit(f"fanfold run failed ({done.returncode}): {done.stderr}")
        with (work / "out.jsonl").open("rb") as f:
            lines = sum(1 for _ in f)
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # kilobytes on Linux
    print(json.dumps({"count": lines, "seconds": seconds, "peak_mb": peak_mb}))


def main() -> None:
    title(f"memory: JSONL rows through `fanfold run` (ordered output, SQLite journal), concurrency {CONCURRENCY}")
    info("peak RSS of the `fanfold run` process, a fresh one per row")
    check_flat_memory(__file__, "baseline (no rows)", "rows")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(int(sys.argv[2]))
    else:
        main()
