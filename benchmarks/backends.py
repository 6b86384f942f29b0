"""Backends: CPU-bound sync function agents on threads, on a process pool, and on a Ray cluster.

Each task does a fixed amount of pure-Python work (a loop: it holds the interpreter lock),
calibrated here to take 20 ms on one idle core; the count travels with the input.

1. ``--n-local`` tasks (default 200) on ``backend="threads"`` and ``backend="processes"``
   (one worker per CPU). Target: threads / processes >= 1.8 on 2 cores.
2. A real local Ray cluster, started here (``ray start --block``: a head node of 1 CPU, then a
   second node of 1 CPU), ``--n`` tasks (default 2,000) each:
   - fanfold on Ray with 1 worker CPU, then with 2. Target: speedup >= 1.6.
   - the same work as plain Ray tasks (``ray.get([burn.remote() ...])``) on the same 2 CPUs.
     Target: fanfold on Ray / plain Ray <= 1.1.
   The driver connects once and both are warmed first (Ray starts a worker process per CPU per
   job); fanfold uses the driver's connection, as it does whenever Ray is initialised already.

    python benchmarks/backends.py            # about 3 minutes on a loaded 2-core machine
    python benchmarks/backends.py --n 400    # quicker, noisier
"""

from __future__ import annotations

import argparse
import os
import time

import fanfold as ff
from _common import info, title
from fanfold.testing import LocalRayCluster

BURN = 0.020


def burn(task: tuple[int, int]) -> int:
    index, count = task
    total = 0
    for i in range(count):
        total += i
    return index


def calibrate() -> int:
    """The loop count that takes ``BURN`` seconds here (the best of a few tries)."""
    count = 100_000
    took = min(timed_burn(count) for _ in range(5))
    return max(1, int(count * BURN / took))


def timed_burn(count: int) -> float:
    began = time.perf_counter()
    burn((0, count))
    return time.perf_counter() - began


def tasks(n: int, count: int) -> list[tuple[int, int]]:
    return [(i, count) for i in range(n)]


def wall(spec: object, inputs: list[tuple[int, int]], **options: object) -> float:
    began = time.perf_counter()
    result = ff.run_sync(spec, inputs, **options)  # type: ignore[call-overload]
    took = time.perf_counter() - began
    assert result.output == [i for i, _ in inputs], "lost or reordered work"
    return took


def verdict(claim: str, value: float, target: float) -> bool:
    ok = value >= target
    print(f"{'PASS' if ok else 'MISS'} {claim}: {value:.2f}x (target >= {target:g}x)", flush=True)
    return ok


def ceiling(claim: str, value: float, target: float) -> bool:
    ok = value <= target
    print(f"{'PASS' if ok else 'MISS'} {claim}: {value:.3f}x (target <= {target:g}x)", flush=True)
    return ok


def local(n: int, count: int) -> None:
    title(f"{n} tasks x {BURN * 1000:.0f} ms of CPU: threads vs a process pool ({os.cpu_count()} CPUs)")
    inputs = tasks(n, count)
    wall(ff.map(burn), inputs[:20], backend="processes")  # warm: the pool's forkserver
    threads = wall(ff.map(burn), inputs)
    processes = wall(ff.map(burn), inputs, backend=ff.Processes())
    info(f"threads {threads:.2f}s, processes {processes:.2f}s (serial work {n * BURN:.1f}s)")
    verdict("processes speedup over threads", threads / processes, 1.8)


def on_ray(n: int, count: int) -> None:
    import ray

    title(f"{n} tasks x {BURN * 1000:.0f} ms of CPU on a local Ray cluster (1 CPU per node)")
    began = time.perf_counter()
    cluster = LocalRayCluster(num_cpus=1)
    address = cluster.start()
    try:
        info(f"head node up in {time.perf_counter() - began:.1f}s")
        os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
        ray.init(address=address, logging_level="WARNING")
        backend = ff.Ray(address=address)
        inputs = tasks(n, count)
        wall(ff.map(burn), inputs[:10], backend=backend)  # warm the head's worker
        one = wall(ff.map(burn), inputs, backend=backend)
        info(f"fanfold on Ray, 1 CPU:  {one:.2f}s (serial work {n * BURN:.1f}s)")

        began = time.perf_counter()
        cluster.add_node()
        info(f"second node up in {time.perf_counter() - began:.1f}s")
        remote = ray.remote(num_cpus=1, max_retries=0)(burn)
        while ray.cluster_resources().get("CPU", 0) < 2:  # the new node registers (the condition is checked each time)
            time.sleep(0.1)
        ray.get([remote.remote(task) for task in inputs[:40]])  # warm both nodes' workers
        wall(ff.map(burn), inputs[:40], backend=backend)

        two = wall(ff.map(burn), inputs, backend=backend)
        info(f"fanfold on Ray, 2 CPUs: {two:.2f}s")
        started = time.perf_counter()
        assert ray.get([remote.remote(task) for task in inputs]) == [i for i, _ in inputs]
        plain = time.perf_counter() - started
        info(f"plain Ray tasks, 2 CPUs: {plain:.2f}s")
        verdict("fanfold on Ray, 1 -> 2 worker CPUs", one / two, 1.6)
        ceiling("fanfold on Ray / plain Ray tasks, 2 CPUs", two / plain, 1.1)
    finally:
        ray.shutdown()
        cluster.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="tasks on Ray")
    parser.add_argument("--n-local", type=int, default=200, help="tasks on threads and on processes")
    args = parser.parse_args()
    count = calibrate()
    info(f"{count:,} loop steps take {BURN * 1000:.0f} ms here")
    local(args.n_local, count)
    try:
        import ray  # noqa: F401
    except ImportError:
        print("SKIP Ray figures: Ray is not installed (pip install 'fanfold[ray]')")
        return
    on_ray(args.n, count)


if __name__ == "__main__":
    main()
