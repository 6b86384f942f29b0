"""One batch job of ``fanfold run``: check everything that can be checked before the first call,
run the pipeline over the rows with a journal, stream the outcomes to the output file, and write
the summary beside it.

Checked before any call, in this order: the pipeline (a YAML field path and its fix), the
model's API key, the input file (and, with ``--strict``, every row), the store and the run id,
and that the output and summary paths can be written.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from fanfold._cli import DEFAULT_STORE
from fanfold._cli._batch_files import BadRow, InputFile, MalformedRow, Row, row_agent, row_key
from fanfold._cli._output import OutputWriter, summary_path, write_summary
from fanfold._cli._pipeline import Built, Overrides, Pipeline, Template, load_pipeline
from fanfold._cli._reading import DEFAULT_MAX_ROW_BYTES
from fanfold._errors import JournalFailed, RunFailed, UsageError
from fanfold._events import Callback
from fanfold._journal import describe
from fanfold._limits import check_limiter_url
from fanfold._map_reduce import map_reduce
from fanfold._patterns import map as map_pattern
from fanfold._progress import ProgressDisplay
from fanfold._records import Store, open_store
from fanfold._redact import redact_url
from fanfold._run import Result, RunStatus, start

# The overrides a run record keeps (base_url is kept without credentials; api_key and price never).
_FLAGS = ("model", "concurrency", "requests_per_minute", "tokens_per_minute", "budget_tokens", "budget_cost",
          "budget_requests", "deadline")  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """What ``fanfold run`` was asked to do. :meth:`metadata` is what the run record keeps of it
    (absolute paths and the flags, never an API key), and :meth:`from_metadata` rebuilds it for
    ``fanfold runs resume``."""

    pipeline: str
    input: Path
    output: Path
    format: str | None = None
    ordered: bool = True
    strict: bool = False
    store: str = DEFAULT_STORE
    resume: str | None = None
    take_over: bool = False  # `runs resume --take-over`: not kept in the run's metadata
    run_id: str | None = None
    progress: bool = True
    progress_every: float = 10.0  # seconds between plain progress lines (not a terminal)
    limit: int | None = None  # run only the first rows (to try a pipeline on a big file)
    max_row_bytes: int | None = None  # a longer row fails unread [default: the pipeline's, else 4 MiB]
    overrides: Overrides = field(default_factory=Overrides)
    trace: bool = False  # OpenTelemetry spans and metrics (exporters set up by opentelemetry-instrument)
    limiter: str | None = None  # a Redis URL: the limits and budget shared with other processes
    batch_api: bool = False  # model requests through the provider's Batch API, at half price
    command: str = "run"  # or "demo": `fanfold runs resume` starts the demo's simulator again
    backend: str = "threads"  # where sync function agents run: threads, processes, ray
    ray_address: str | None = None

    def backend_option(self) -> Any:
        """The run's ``backend=`` option, from ``--backend`` and ``--ray-address``."""
        if self.backend not in ("threads", "processes", "ray"):
            raise UsageError(f"--backend {self.backend}: pass threads, processes or ray")
        if self.ray_address is not None and self.backend != "ray":
            raise UsageError(f"--ray-address {self.ray_address}: a Ray address needs --backend ray")
        if self.backend == "ray":
            from fanfold._backends._ray import Ray

            return Ray(address=self.ray_address)
        return self.backend

    def metadata(self) -> dict[str, Any]:
        o = self.overrides
        flags = {name: getattr(o, name) for name in _FLAGS if getattr(o, name) is not None}
        if o.base_url is not None:
            flags["base_url"] = redact_url(o.base_url, user=False)
        pipeline = self.pipeline
        if Path(pipeline).is_file():
            pipeline = str(Path(pipeline).resolve())
        return {
            "command": self.command,
            "pipeline": pipeline,
            "input": str(self.input.resolve()),
            "output": str(self.output.resolve()),
            "format": self.format,
            "ordered": self.ordered,
            "strict": self.strict,
            "limit": self.limit,
            "max_row_bytes": self.max_row_bytes,
            "flags": flags,
            "backend": self.backend,
            "ray_address": self.ray_address,
            "limiter": None if self.limiter is None else redact_url(self.limiter),
            "batch_api": self.batch_api,
            "cwd": str(Path.cwd()),
        }

    @classmethod
    def from_metadata(cls, run_id: str, data: dict[str, Any], *, store: str, progress: bool) -> Job:
        """The job that started run ``run_id``, to resume it."""
        command = data.get("command")
        if command not in ("run", "demo"):
            raise UsageError(
                f"run {run_id} was not started by `fanfold run`; resume it from the code that started it, "
                f"with ff.run(..., store=..., resume={run_id!r})"
            )
        flags = dict(data.get("flags") or {})
        try:
            overrides = Overrides(**flags)
        except TypeError as exc:
            raise UsageError(f"run {run_id}: its recorded flags {flags!r} are not ones this fanfold knows") from exc
        return cls(
            pipeline=data["pipeline"],
            input=Path(data["input"]),
            output=Path(data["output"]),
            format=data.get("format"),
            ordered=bool(data.get("ordered", True)),
            strict=bool(data.get("strict", False)),
            limit=data.get("limit"),
            max_row_bytes=data.get("max_row_bytes"),
            store=store,
            resume=run_id,
            progress=progress,
            overrides=overrides,
            limiter=data.get("limiter"),
            command=command,
            backend=data.get("backend") or "threads",
            batch_api=bool(data.get("batch_api")),
            ray_address=data.get("ray_address"),
        )


@dataclass(slots=True)
class Report:
    """How a job ended: the run's result (None if it never started), the summary written, the
    exit code, and a message for the user when something went wrong."""

    run_id: str | None = None
    result: Result[Any] | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    exit_code: int = 0
    message: str | None = None
    interrupted: bool = False
    signal: int = signal.SIGINT  # which signal interrupted the run: the exit code is 128 + it
    first_error: str | None = None  # the first failed outcome's error, for a run where every input failed


@dataclass(frozen=True, slots=True)
class Prepared:
    """A job checked and ready: nothing has been called yet."""

    job: Job
    pipeline: Pipeline
    built: Built
    file: InputFile
    total: int
    spec: Any

    def rows(self) -> Iterator[Row | BadRow]:
        rows = self.file.rows()
        return rows if self.job.limit is None else itertools.islice(rows, self.job.limit)


def prepare(job: Job) -> Prepared:
    """Load and check everything that needs no store, before any call; raises
    :class:`~fanfold.UsageError` naming what is wrong and the fix."""
    if job.limiter is not None:
        check_limiter_url(job.limiter)
    pipeline = load_pipeline(job.pipeline)
    built = pipeline.build(job.overrides)  # a missing API key is named here
    spec_limit = None if pipeline.spec is None else pipeline.spec.max_row_bytes
    file = InputFile.open(job.input, job.format, max_row_bytes=job.max_row_bytes or spec_limit or DEFAULT_MAX_ROW_BYTES)
    if job.output.resolve() == file.path.resolve():
        raise UsageError(f"--output {str(job.output)!r} is the input file; write the results to another file")
    if isinstance(built.prepare, Template):
        _check_template(built.prepare, file, pipeline.source)
    if job.strict:
        problem = file.first_problem(key_field=built.key_field)
        if problem is not None:
            raise MalformedRow(
                f"{problem}; --strict stops at the first malformed row: fix it, or leave out --strict to record it "
                "as a failed outcome and go on"
            )
    agent = row_agent(built.agent, file, built.prepare, built.finish)
    key = row_key(file, built.key_field, built.key)
    spec: Any
    if built.reducer is not None:
        spec = map_reduce(map=agent, reduce=built.reducer, fan_in=built.fan_in, policy=built.policy)
    else:
        spec = map_pattern(agent, key=key, policy=built.policy, timeout=built.timeout)
    spec = dataclasses.replace(spec, name=pipeline.name)  # the run's name in the store
    total = file.count()
    return Prepared(job, pipeline, built, file, total if job.limit is None else min(total, job.limit), spec)


_SAMPLE = 100  # rows a prompt template's fields are checked against (JSONL; a CSV has its header)


def _check_template(template: Template, file: InputFile, source: str) -> None:
    """A field the prompt uses that no row has would fail every row: name it now."""
    if file.header is not None:
        have, where = set(file.header), f"the columns of {file.path} (its header)"
        missing = [name for name in template.fields if name not in have]
    else:
        sample = [row.value for row in itertools.islice(file.rows(), _SAMPLE) if isinstance(row, Row)]
        objects = [value for value in sample if isinstance(value, dict)]
        if not objects:
            return  # no row to judge by (each bad one gets its failed outcome)
        have = {name for value in objects for name in value}
        where = f"the fields of the first {len(sample):,} rows of {file.path}"
        missing = [name for name in template.fields if not any(name in value for value in objects)]
    if missing:
        raise UsageError(
            f"{source}: prompt: uses {{{missing[0]}}}, which no row has; {where}: {', '.join(sorted(have)) or 'none'}; "
            "fix the prompt's field name, or the input file"
        )


def _check_store_folder(job: Job) -> None:
    """An explicit ``--store`` path goes into a folder that exists (only the default store's
    ``.fanfold`` folder is made on first use)."""
    target = job.store
    if target in ("memory", ":memory:") or ("://" in target and not target.startswith("sqlite://")):
        return
    path = Path(target.removeprefix("sqlite:///")) if target.startswith("sqlite://") else Path(target)
    if target != DEFAULT_STORE and not path.parent.is_dir():
        raise UsageError(
            f"--store {target!r}: the folder {str(path.parent)!r} does not exist; create it first, or pass a store "
            "path in an existing folder"
        )


async def run_job(
    job: Job,
    *,
    console: Console | None = None,
    on_event: Callback | None = None,
    on_start: Callable[[str], None] | None = None,
) -> Report:
    """Run ``job``; return its :class:`Report`. Raises :class:`~fanfold.UsageError` for anything
    found wrong before the first call. ``on_start(run_id)`` is told the run id once the run is
    recorded; ``on_event`` receives every event."""
    console = console or Console(stderr=True, soft_wrap=True)
    ready = prepare(job)
    backend = job.backend_option()
    _check_store_folder(job)
    store = open_store(job.store)
    async with store:
        await _check_run_id(store, job, ready.spec)
        writer = OutputWriter(job.output, ordered=job.ordered)
        writer.check()  # an unwritable path fails here, before any call
        display = (
            ProgressDisplay(
                console=console,
                description=ready.pipeline.name,
                total=ready.total,
                count_outcomes=False,
                interval=job.progress_every,
                then="reducing" if ready.built.reducer is not None else None,
            )
            if job.progress
            else None
        )
        callbacks = [c for c in (display, on_event) if c is not None]
        report = Report()
        try:
            async with start(
                ready.spec,
                ready.rows(),
                store=store,
                resume=job.resume,
                take_over=job.take_over,
                run_id=None if job.resume else job.run_id,
                metadata=job.metadata(),
                keep=ready.built.reducer is not None,  # a reduction needs every mapped value
                limits=ready.built.limits,
                limiter=job.limiter,
                retry=ready.built.retry,
                budget=ready.built.budget,
                deadline=ready.built.deadline,
                on_event=callbacks,
                trace=job.trace,
                backend=backend,
                batch_api=job.batch_api,
            ) as handle:
                report.run_id = handle.run_id
                with _cancel_on_signals(handle.cancel, report):
                    if on_start is not None:  # (after the handlers: a signal from here on cancels the run)
                        on_start(handle.run_id)
                    if display is not None:
                        display.start()
                    try:
                        async for outcome in handle.as_completed():
                            writer.add(outcome)
                            if report.first_error is None and outcome.error is not None:
                                report.first_error = f"line {outcome.index + 1} of the output: {outcome.error}"
                            if display is not None:
                                display.record(outcome)
                        try:
                            report.result = await handle.result()
                        except RunFailed as exc:
                            report.result = exc.result
                            report.message = str(exc)
                    except BaseException:
                        writer.close(create=False)
                        raise
                    else:
                        writer.close()
                    finally:
                        if display is not None:
                            display.stop()
        except JournalFailed as exc:
            report.exit_code, report.message = 1, str(exc)
    _finish(report, ready, writer, store)
    return report


async def _check_run_id(store: Store, job: Job, spec: Any) -> None:
    """The run to resume exists and ran the same shape of pipeline; a new run's id is free.

    (The run checks the same, but a run that fails before it begins leaves ``as_completed``
    waiting: found here, nothing has started.)
    """
    if job.resume is not None:
        record = await store.get_run(job.resume)
        if record is None:
            raise UsageError(
                f"--resume {job.resume}: {store.url} has no such run; `fanfold runs list --store {store.url}` "
                "lists its runs"
            )
        was, now = record.config.get("spec"), describe(spec)
        if was is not None and was != now:
            raise UsageError(
                f"--resume {job.resume}: the run was {was}, and this pipeline is {now}; resume it with the same "
                "pipeline (prompts and limits may change, its shape may not), or start a new run"
            )
    elif job.run_id is not None and await store.get_run(job.run_id) is not None:
        raise UsageError(
            f"--run-id {job.run_id}: {store.url} already has that run; resume it with `fanfold runs resume "
            f"{job.run_id}`, or pick another id"
        )


@contextlib.contextmanager
def _cancel_on_signals(cancel: Callable[[], None], report: Report) -> Iterator[None]:
    """Ctrl-C or SIGTERM cancels the run: every input gets its outcome and line, and the run can
    be resumed. A second Ctrl-C stops at once."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []

    def stop(signum: signal.Signals) -> None:
        report.interrupted = True
        report.signal = signum
        loop.remove_signal_handler(signum)  # a second signal takes the default way out
        cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread; Windows
            loop.add_signal_handler(signum, stop, signum)
            installed.append(signum)
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


def _finish(report: Report, ready: Prepared, writer: OutputWriter, store: Store) -> None:
    """Fill in the exit code and message, and write the summary file."""
    job, result = ready.job, report.result
    summary: dict[str, Any] = {
        "run_id": report.run_id,
        "status": "failed" if result is None else result.status.value,
        "pipeline": job.pipeline,
        "input": str(job.input),
        "output": str(job.output),
        "store": store.url,
        "ordered": job.ordered,
        "lines": writer.written,
    }
    if result is not None:
        summary |= result.summary.as_dict()
        if ready.built.reducer is not None and result.status is RunStatus.SUCCEEDED:
            summary["result"] = _plain(result.output)
        if result.error is not None:
            summary["error"] = str(result.error)
    if report.message is not None and "error" not in summary:
        summary["error"] = report.message
    summary["finished_at"] = time.time()
    write_summary(summary_path(job.output), summary)
    report.summary = summary
    if report.exit_code:
        return
    if report.interrupted or (result is not None and result.status is RunStatus.CANCELLED):
        report.exit_code = 128 + report.signal  # 130 for Ctrl-C, 143 for SIGTERM, as a shell reports them
        report.message = f"interrupted: resume with `fanfold runs resume {report.run_id}`"
    elif result is None or result.status is not RunStatus.SUCCEEDED:
        report.exit_code = 1
        if report.message is None and result is not None:
            report.message = f"the run ended {result.status.value}: {result.summary}"
    elif result.summary.total and not result.summary.succeeded:
        report.exit_code = 1
        report.message = (
            f"every input failed ({result.summary.total:,}); the first: {report.first_error or 'see the output'}; "
            f"fix what it names and run again"
        )


def _plain(value: Any) -> Any:
    """A value as JSON data (Pydantic models as their fields)."""
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(value, serialize_unknown=True)
