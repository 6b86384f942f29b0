"""Memory of ``fanfold run`` over a file holding one huge row: the row limit keeps it bounded.

Two JSONL files, each run through ``fanfold run cli_memory:echo`` (a trivial function agent, no
model) in a fresh process, and the peak RSS of that process (``RUSAGE_CHILDREN`` of a fresh
wrapper process) measured:

- baseline: three small rows;
- huge row: the same three rows with a 200 MB line between them (and a CSV with a 200 MB field).

The huge row fails (over the default 4 MiB limit) without being read into memory; the small
rows succeed. Targets: the peak with the 200 MB row is within 1.25x of the baseline's, and its
growth over the baseline is under a tenth of the row's size.
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

from _common import check, info, title

HERE = Path(__file__).resolve().parent
ROW_MB = 200


def write_rows(path: Path, huge_mb: int) -> None:
    """Three small rows, with a ``huge_mb`` MB row after the first (none for 0)."""
    csv = path.suffix == ".csv"
    with path.open("w", encoding="utf-8") as f:
        f.write("n,text\n" if csv else "")
        for i in range(3):
            f.write(f"{i},row {i}\n" if csv else f'{{"n": {i}, "text": "row {i}"}}\n')
            if i == 0 and huge_mb:
                f.write("9," if csv else '{"n": 9, "text": "')
                block = "x" * (1 << 20)
                for _ in range(huge_mb):
                    f.write(block)
                f.write("\n" if csv else '"}\n')


def child(huge_mb: int, suffix: str) -> None:
    """Run ``fanfold run`` over the file in a process of its own; print its peak RSS as JSON."""
    with tempfile.TemporaryDirectory(prefix="fanfold-row-limit-") as tmp:
        work = Path(tmp)
        rows = work / f"rows{suffix}"
        write_rows(rows, huge_mb)
        command = [sys.executable, "-m", "fanfold._cli._app", "run", "cli_memory:echo", "-i", rows.name, "-o",
                   "out.jsonl", "--store", "runs.db", "--no-progress"]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
        began = time.perf_counter()
        done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - began
        if done.returncode != 0:
            raise SystemExit(f"fanfold run failed ({done.returncode}): {done.stderr}")
        out = [json.loads(line) for line in (work / "out.jsonl").read_text().splitlines()]
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # kilobytes on Linux
    statuses = [line["status"] for line in out]
    print(json.dumps({"statuses": statuses, "seconds": seconds, "peak_mb": peak_mb}))


def figures(huge_mb: int, suffix: str) -> dict[str, object]:
    script = str(Path(__file__).resolve())
    done = subprocess.run(
        [sys.executable, script, "--child", str(huge_mb), suffix], capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def main() -> None:
    title(f"memory: `fanfold run` over a file with a {ROW_MB} MB row (default --max-row-bytes, 4 MiB)")
    for suffix in (".jsonl", ".csv"):
        base = figures(0, suffix)
        huge = figures(ROW_MB, suffix)
        base_mb, huge_mb = float(base["peak_mb"]), float(huge["peak_mb"])  # type: ignore[arg-type]
        info(f"{suffix[1:]:>5} baseline (3 small rows): {base_mb:6.1f} MB  {base['statuses']}")
        info(f"{suffix[1:]:>5} with a {ROW_MB} MB row:       {huge_mb:6.1f} MB  {huge['statuses']}")
        expected = ["succeeded", "failed", "succeeded", "succeeded"]
        check(f"{suffix[1:]}: the huge row fails, the small ones succeed", float(huge["statuses"] != expected), 0)
        check(f"{suffix[1:]}: peak RSS with the {ROW_MB} MB row / baseline", huge_mb / base_mb, 1.25)
        check(f"{suffix[1:]}: growth over baseline / row size", (huge_mb - base_mb) / ROW_MB, 0.1)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(int(sys.argv[2]), sys.argv[3])
    else:
        main()
