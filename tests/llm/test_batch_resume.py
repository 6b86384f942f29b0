"""A batch_api run killed with SIGKILL after its batch was created resumes by polling that
batch: one batch in all, every input answered once (OpenAI's Batch API and Anthropic's Message
Batches)."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fanfold as ff
from fanfold._records import RunRecord
from fanfold.testing import Latency, SimulatedProvider

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL")

INPUTS = 30
SCRIPT = """
import asyncio, sys
import fanfold as ff

agent = ff.llm(sys.argv[5], base_url=sys.argv[1], api_key="sk-test", price=ff.Price(input=1, output=2))
inputs = [f"question {i}" for i in range(int(sys.argv[4]))]
asyncio.run(ff.run(ff.map(agent), inputs, batch_api=True, store=sys.argv[2], run_id=sys.argv[3]))
"""


def _record(path: Path, run_id: str) -> RunRecord | None:
    from fanfold._store._sqlite import SQLiteStore

    async def read() -> RunRecord | None:
        async with SQLiteStore(path) as store:
            return await store.get_run(run_id)

    return asyncio.run(read())


def _journaled_batches(path: Path, run_id: str) -> list[dict[str, object]]:
    record = _record(path, run_id) if path.exists() else None
    return [] if record is None else list(record.config.get("batches", []))


@pytest.mark.parametrize("model", ["openai-chat:sim-1", "anthropic:sim-1"])
def test_a_killed_batch_run_resumes_by_polling_its_batch(tmp_path: Path, model: str) -> None:
    script, db = tmp_path / "run.py", tmp_path / "runs.db"
    script.write_text(SCRIPT)
    with SimulatedProvider(latency=Latency.fixed(0), batch_delay=math.inf).in_thread() as sim:
        base_url = sim.anthropic_base_url if model.startswith("anthropic") else sim.openai_base_url
        command = [sys.executable, str(script), base_url, str(db), "batched", str(INPUTS), model]
        env = {**os.environ, "FANFOLD_LEASE_TTL": "1"}  # its lease lapses a second after it dies
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        try:
            # The batch is held by the simulator: wait until it is created and journaled.
            while not _journaled_batches(db, "batched"):
                assert process.poll() is None, process.communicate()[1].decode()
        finally:
            process.send_signal(signal.SIGKILL)
            process.communicate()
        journaled = _journaled_batches(db, "batched")
        assert len(journaled) == 1
        assert len(journaled[0]["custom_ids"]) == INPUTS  # type: ignore[arg-type]
        assert sim.batches["created"] == 1
        assert sim.batches["answered"] == 0
        sim.release_batches()
        while (record := _record(db, "batched")) is not None and record.status == "running":
            time.sleep(0.05)  # the condition is checked each time; the pause only spares the CPU

        agent = ff.llm(model, base_url=base_url, api_key="sk-test", price=ff.Price(1, 2))
        inputs = [f"question {i}" for i in range(INPUTS)]
        result = ff.run_sync(ff.map(agent), inputs, batch_api=True, store=db, resume="batched")
        assert result.complete
        assert len(result.outputs) == INPUTS
        assert all(out.startswith("Simulated answer") for out in result.outputs)
        assert sim.batches["created"] == 1  # polled, not sent again
        assert sim.batches["answered"] == INPUTS  # each input answered exactly once
        assert sim.stats.requests == 0
        counts = sim.batches["batches"][0]["request_counts"]
        if model.startswith("anthropic"):
            expected = {"processing": 0, "succeeded": INPUTS, "errored": 0, "canceled": 0, "expired": 0}
        else:
            expected = {"total": INPUTS, "completed": INPUTS, "failed": 0}
        assert json.dumps(counts) == json.dumps(expected)
