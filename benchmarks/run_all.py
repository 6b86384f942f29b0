"""Run every benchmark, each in its own process so memory figures are per process.

    python benchmarks/run_all.py             # all of them
    python benchmarks/run_all.py makespan    # only those named

A benchmark is any ``benchmarks/*.py`` not starting with ``_``. Output is streamed as it comes;
the closing summary lists each target missed. A miss is a finding, not a failure: the exit
status is non-zero only if a benchmark crashed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def benchmarks(names: list[str]) -> list[Path]:
    found = {p.stem: p for p in sorted(HERE.glob("*.py")) if not p.name.startswith("_") and p.name != "run_all.py"}
    unknown = [n for n in names if n not in found]
    if unknown:
        sys.exit(f"no benchmark named {', '.join(unknown)}; pick from {', '.join(found)}")
    return [found[n] for n in names] if names else list(found.values())


def run(script: Path) -> tuple[int, list[str]]:
    """Run one benchmark, echoing its output; return its exit status and its MISS lines."""
    misses = []
    with subprocess.Popen(
        [sys.executable, "-u", str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as child:
        assert child.stdout is not None
        for line in child.stdout:
            print(line, end="", flush=True)
            if line.startswith("MISS"):
                misses.append(f"{script.stem}: {line.strip()}")
    return child.returncode, misses


def main() -> int:
    began = time.perf_counter()
    crashed: list[str] = []
    misses: list[str] = []
    for script in benchmarks(sys.argv[1:]):
        status, missed = run(script)
        misses += missed
        if status != 0:
            crashed.append(f"{script.stem} (exit status {status})")
    print(f"\n== summary ({time.perf_counter() - began:.0f}s)")
    for miss in misses:
        print(f"   {miss}")
    for name in crashed:
        print(f"   CRASHED {name}")
    if not misses and not crashed:
        print("   every target met")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
