"""``fanfold run --trace``: a batch run's spans reach the OpenTelemetry provider the process was
set up with (as ``opentelemetry-instrument`` would), and none without the flag. Each run is a
fresh interpreter: the global tracer provider can be set only once per process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import json, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
sys.path.insert(0, ".")
sys.argv = ["fanfold", "run", "upper:pipeline", "--input", "rows.jsonl", "--no-progress", "--store", "runs.db"]
sys.argv += sys.argv_extra
from fanfold._cli._app import main
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(span.name for span in exporter.get_finished_spans())))
"""


def spans_of(workdir: Path, *flags: str) -> list[str]:
    code = PROBE.replace("sys.argv_extra", repr(list(flags)))
    done = subprocess.run([sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True, check=True)
    names: list[str] = json.loads(done.stdout.splitlines()[-1])
    return names


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "upper.py").write_text("def pipeline(row):\n    return row.upper()\n", encoding="utf-8")
    (tmp_path / "rows.jsonl").write_text('"a"\n"b"\n', encoding="utf-8")
    return tmp_path


def test_fanfold_run_trace_writes_the_runs_spans(workdir: Path) -> None:
    assert spans_of(workdir, "--trace") == [
        "invoke_agent pipeline",
        "invoke_agent pipeline",
        "invoke_workflow upper:pipeline",
    ]
    assert (workdir / "rows.results.jsonl").read_text(encoding="utf-8").count("\n") == 2


def test_fanfold_run_without_trace_writes_none(workdir: Path) -> None:
    assert spans_of(workdir) == []
