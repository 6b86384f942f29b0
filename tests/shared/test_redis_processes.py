"""Several OS processes sharing one Redis limiter against one rate-limited simulated provider:
together they keep to the one limit (no 429 storm, never more in flight than the shared cap),
a process killed while it holds slots gives them back when its leases lapse, and the shared
budget stops every process at the budget."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from fanfold.testing import Latency, SimLimits, SimulatedProvider

CHILD = str(Path(__file__).with_name("_child.py"))


def spawn(config: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, CHILD, json.dumps(config)], stdout=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = process.communicate(timeout=100)
    assert process.returncode == 0, out
    figures: dict[str, Any] = json.loads(out)
    return figures


def test_processes_share_one_limit_without_a_429_storm(redis_url: str, namespace: str) -> None:
    # Each process alone would take the whole 600 requests/min and 3 at once: together, 4x that.
    sim = SimulatedProvider(limits=SimLimits(requests_per_minute=600), latency=Latency.fixed(0.05))
    limiter = f"{redis_url}?namespace={namespace}"
    rate = {"requests_per_minute": 600, "concurrency": 3}
    with sim.in_thread():
        children = [
            spawn({"base_url": sim.openai_base_url, "calls": 15, "name": f"p{i}", "limiter": limiter, "rate": rate})
            for i in range(4)
        ]
        results = [finish(child) for child in children]
        stats = sim.stats
    assert sum(r["succeeded"] for r in results) == 60
    assert stats.status_429 <= 1
    assert stats.peak_concurrency <= 3


def test_a_killed_process_gives_its_slots_back_when_its_leases_lapse(redis_url: str, namespace: str) -> None:
    sim = SimulatedProvider(latency=Latency.fixed(0.05))
    limiter = f"{redis_url}?namespace={namespace}&lease=2"
    with sim.in_thread():
        config = {"base_url": sim.openai_base_url, "limiter": limiter, "rate": {"concurrency": 4}}
        victim = spawn({**config, "calls": 4, "hold": True})
        assert victim.stdout is not None
        for _ in range(4):
            assert victim.stdout.readline().strip() == "holding"
        survivors = [spawn({**config, "calls": 20, "name": f"survivor{i}"}) for i in range(2)]
        victim.kill()  # kill -9, holding all 4 slots
        victim.communicate()
        results = [finish(child) for child in survivors]
        stats = sim.stats
    # The survivors could send nothing until the victim's leases lapsed; then they had all 4 slots.
    assert [r["succeeded"] for r in results] == [20, 20]
    assert stats.peak_concurrency == 4


def test_the_shared_budget_stops_every_process_at_the_budget(redis_url: str, namespace: str) -> None:
    sim = SimulatedProvider(latency=Latency.fixed(0.02))
    limiter = f"{redis_url}?namespace={namespace}"
    with sim.in_thread():
        config = {"base_url": sim.openai_base_url, "limiter": limiter, "rate": {"concurrency": 4}}
        children = [spawn({**config, "calls": 15, "name": f"p{i}", "budget": {"requests": 20}}) for i in range(3)]
        results = [finish(child) for child in children]
        stats = sim.stats
    assert stats.requests == 20
    assert sum(r["succeeded"] for r in results) == 20
    assert sum(r["skipped"] for r in results) == 25
