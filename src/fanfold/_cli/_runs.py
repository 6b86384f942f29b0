"""``fanfold runs list|show|resume|export`` (the runs in a store), and running a batch job from the
command line: ``run``, ``demo`` and ``runs resume`` all hand their :class:`~fanfold._cli._jobs.Job`
to :func:`execute_job` (a demo job to :func:`run_demo`, which starts the simulated provider first).

:data:`runs_app` is registered on :data:`fanfold._cli._app.app`, which imports this module (and not
the other way round).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fanfold._cli import DEFAULT_STORE
from fanfold._errors import UsageError
from fanfold._records import RunRecord, Store, open_store

# The batch machinery (pipelines on pydantic and YAML, the files, the progress display) and the
# simulator (an aiohttp server) are imported by the commands that use them: `fanfold --help`
# loads none of them.
if TYPE_CHECKING:
    from fanfold._cli._jobs import Job, Report
    from fanfold._sim import SimulatedProvider

STORE_PANEL = "Journal and resume"
StoreOption = Annotated[
    str,
    typer.Option(
        "--store",
        envvar="FANFOLD_STORE",
        help="Where runs are journaled: a SQLite file, a postgresql:// URL, or 'memory'.",
        rich_help_panel=STORE_PANEL,
    ),
]


def execute_job(job: Job, *, after: Callable[[Report], None] | None = None) -> Report:
    """Run the job and exit with its code (after ``after(report)``, when the run started)."""
    from fanfold._cli._jobs import run_job

    err = Console(stderr=True, soft_wrap=True, highlight=False)

    ids: list[str] = []

    def started(run_id: str) -> None:
        ids.append(run_id)
        verb = "resuming" if job.resume else "run"
        err.print(f"[bold]fanfold[/]: {verb} {run_id}: " + escape(f"{job.pipeline} over {job.input} -> {job.output}"))

    try:
        report = asyncio.run(run_job(job, console=err, on_start=started))
    except UsageError as exc:
        err.print("[red]Error:[/] " + escape(str(exc)))
        raise typer.Exit(2) from exc
    except KeyboardInterrupt:  # a second Ctrl-C: out at once; the journal keeps what finished
        which = ids[0] if ids else "RUN_ID"
        err.print(f"[red]stopped[/]: what finished is journaled; resume with `fanfold runs resume {which}`")
        raise typer.Exit(130) from None
    _print_report(report, job, err)
    if after is not None:
        after(report)
    if report.exit_code:
        raise typer.Exit(report.exit_code)
    return report


def _print_report(report: Report, job: Job, err: Console) -> None:
    from fanfold._cli._output import summary_path

    summary = report.summary
    result = report.result
    if result is not None:
        not_ok = result.summary.total - result.summary.succeeded  # (the outcomes are not kept: count)
        colour = "green" if report.exit_code == 0 and not not_ok else "yellow"
        err.print(f"[bold {colour}]run {report.run_id} {result.status.value}[/]: " + escape(str(result.summary)))
        if not_ok and not report.interrupted:
            err.print(f"  {not_ok:,} inputs did not succeed: their lines in {job.output} say why", markup=False)
    lines = summary.get("lines", 0)
    err.print(f"  {lines:,} lines in {job.output}; the summary in {summary_path(job.output)}", markup=False)
    if report.message is not None:
        failed = report.exit_code not in (0, 130, 143)  # an interrupted run is resumable, not failed
        err.print(report.message, style="red" if failed else None, markup=False)
    if "result" in summary and job.command == "run":
        typer.echo(json.dumps(summary["result"], indent=2, ensure_ascii=False))


# -- fanfold runs -----------------------------------------------------------------------------

runs_app = typer.Typer(
    name="runs", help="The runs in a store: list, show, resume, export.", no_args_is_help=True, add_completion=False
)


def _with_store(target: str, use: Callable[[Store], Any]) -> Any:
    """Open the store, await ``use(store)``, close it; a usage error exits 2 with its message.
    These commands read a store: one that does not exist is an error, never created."""

    async def main() -> Any:
        async with store:
            return await use(store)

    try:
        store = open_store(target)
        path = getattr(store, "path", None)
        if isinstance(path, str) and not os.path.exists(path):
            raise UsageError(f"--store {target!r}: no store there (no run has used it); pass the --store a run used")
        return asyncio.run(main())
    except UsageError as exc:
        Console(stderr=True, soft_wrap=True, highlight=False).print("[red]Error:[/] " + escape(str(exc)))
        raise typer.Exit(2) from exc


async def _record(store: Store, run_id: str) -> RunRecord:
    record = await store.get_run(run_id)
    if record is None:
        raise UsageError(f"{store.url} has no run {run_id!r}; `fanfold runs list` shows the runs it has")
    return record


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


@runs_app.command("list", help="The most recent runs, newest first.")
def runs_list(
    store: StoreOption = DEFAULT_STORE,
    limit: Annotated[int, typer.Option(min=1, help="How many runs.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per run.")] = False,
) -> None:
    async def use(s: Store) -> list[RunRecord]:
        return await s.list_runs(limit)

    records: list[RunRecord] = _with_store(store, use)
    if as_json:
        for record in records:
            typer.echo(json.dumps(_record_data(record)))
        return
    if not records:
        typer.echo(f"no runs in {store}")
        return
    table = Table(box=None)
    for name in ("run id", "name", "status", "created", "inputs", "resumes"):
        table.add_column(name, no_wrap=True, justify="right" if name in ("inputs", "resumes") else "left")
    table.add_column("output", overflow="fold")
    for record in records:
        total = (record.summary or {}).get("total")
        output = _near((record.config.get("metadata") or {}).get("output", ""))
        table.add_row(record.run_id, record.name, record.status, _when(record.created_at),
                      "" if total is None else f"{total:,}", str(record.resumes), output)  # fmt: skip
    # Piped into a file or another program, a table is not squeezed into 80 columns.
    Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200).print(table)


def _near(path: str) -> str:
    """A path relative to the working directory when it lies below it."""
    if not path:
        return path
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def _record_data(record: RunRecord) -> dict[str, Any]:
    return {
        "run_id": record.run_id,
        "name": record.name,
        "status": record.status,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "resumes": record.resumes,
        "owner": None if record.lease is None else {k: v for k, v in record.lease.as_dict().items() if k != "token"},
        "attempts": list(record.attempts),
        "config": record.config,
        "summary": record.summary,
    }


@runs_app.command("show", help="One run: what was run, its status, its summary and its journal.")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    store: StoreOption = DEFAULT_STORE,
    as_json: Annotated[bool, typer.Option("--json", help="The record as JSON.")] = False,
) -> None:
    async def use(s: Store) -> tuple[RunRecord, dict[str, int]]:
        return await _record(s, run_id), await s.counts(run_id)

    from fanfold._progress import duration

    record, counts = _with_store(store, use)
    data = _record_data(record) | {"journaled": counts}
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    out = Console(soft_wrap=True, highlight=False, markup=False)
    out.print(f"run {record.run_id} ({record.name}): {record.status}", style="bold")
    out.print(f"  created {_when(record.created_at)}, updated {_when(record.updated_at)}, resumed {record.resumes}x")
    metadata = record.config.get("metadata") or {}
    for name in ("pipeline", "input", "output"):
        if name in metadata:
            out.print(f"  {name}: {metadata[name]}")
    if metadata.get("flags"):
        out.print(f"  flags: {json.dumps(metadata['flags'])}")
    if "spec" in record.config:
        out.print(f"  spec: {record.config['spec']}")
    out.print(f"  journaled tasks: {', '.join(f'{n:,} {s}' for s, n in sorted(counts.items())) or 'none'}")
    summary = record.summary
    if summary:
        counted = ", ".join(f"{n:,} {s}" for s, n in summary.get("counts", {}).items() if n)
        out.print(f"  summary: {summary.get('total', 0):,} inputs: {counted or 'none'}; wall "
                  f"{duration(summary.get('wall', 0.0))}, {summary.get('retries', 0)} retries")  # fmt: skip
        usage = summary.get("usage") or {}
        if usage.get("requests"):
            out.print(f"  usage: {usage['requests']:,} requests, {usage.get('input_tokens', 0):,} tokens in, "
                      f"{usage.get('output_tokens', 0):,} out, ${usage.get('cost', 0.0):.4f}")  # fmt: skip
    for number, attempt in enumerate(record.attempts, 1):
        spent = attempt.get("usage") or {}
        ended = attempt.get("ended")
        out.print(f"  attempt {number}: {attempt.get('status')}, pid {attempt.get('pid')} on {attempt.get('host')}, "
                  f"{_when(attempt.get('started') or 0)} to {'now' if ended is None else _when(ended)}, "
                  f"{spent.get('requests', 0):,} requests, ${spent.get('cost', 0.0):.4f}")  # fmt: skip
    if record.status == "running" and record.lease is not None:
        out.print(f"  running in process {record.lease.pid} on {record.lease.host} (lease until "
                  f"{_when(record.lease.expires_at)}); a resume is refused while it lives")  # fmt: skip
    elif record.status == "running":
        out.print(f"  unfinished: `fanfold runs resume {record.run_id}` continues it")
    elif record.status == "interrupted":
        out.print(f"  interrupted (its process stopped or died): `fanfold runs resume {record.run_id}` continues it")
    elif record.status != "succeeded":
        out.print(f"  `fanfold runs resume {record.run_id}` runs what did not finish")


@runs_app.command("resume", help="Continue a run from its journal, as it was started; rewrite its output whole.")
def runs_resume(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    store: StoreOption = DEFAULT_STORE,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress on stderr.")] = True,
    take_over: Annotated[
        bool, typer.Option("--take-over", help="Take the run from an owner known dead, without waiting for its lease.")
    ] = False,
) -> None:
    async def use(s: Store) -> RunRecord:
        return await _record(s, run_id)

    from fanfold._cli._jobs import Job

    record: RunRecord = _with_store(store, use)
    try:
        job = Job.from_metadata(run_id, record.config.get("metadata") or {}, store=store, progress=progress)
    except UsageError as exc:
        Console(stderr=True, soft_wrap=True, highlight=False).print("[red]Error:[/] " + escape(str(exc)))
        raise typer.Exit(2) from exc
    held = record.lease
    if take_over and held is not None and held.live(time.time()):
        job = dataclasses.replace(job, take_over=True)
        Console(stderr=True, soft_wrap=True, highlight=False).print(
            f"taking over run {run_id} from process {held.pid} on host {escape(held.host)}, without waiting for its "
            "lease to lapse (refused if that process is alive on this host; make sure it is stopped if on another)"
        )
    if job.command == "demo":
        run_demo(job)
    else:
        execute_job(job)


@runs_app.command("export", help="A run's journaled outcomes as JSONL (the lines `fanfold run` writes).")
def runs_export(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    store: StoreOption = DEFAULT_STORE,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here [default: stdout].")] = None,
    unordered: Annotated[bool, typer.Option("--unordered", help="In journal order, holding none in memory.")] = False,
) -> None:
    from fanfold._cli._output import entry_line, is_top_entry

    async def use(s: Store) -> int:
        await _record(s, run_id)
        with _open_output(output) as sink:
            if unordered:
                count = 0
                async for entry in s.entries(run_id):
                    if is_top_entry(entry):
                        sink.write(entry_line(entry))
                        count += 1
                return count
            lines = [(e.index, entry_line(e)) async for e in s.entries(run_id) if is_top_entry(e)]
            lines.sort(key=lambda pair: pair[0])
            for _, line in lines:
                sink.write(line)
            return len(lines)

    count = _with_store(store, use)
    if output is not None:
        Console(stderr=True, markup=False).print(f"exported {count:,} outcomes of run {run_id} to {output}")


@runs_app.command("timeline", help="A run's timeline: one HTML file (bars per task, on lanes), viewable offline.")
def runs_timeline(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    store: StoreOption = DEFAULT_STORE,
    output: Annotated[Path, typer.Option("--output", "-o", help="The HTML file to write.")] = Path("timeline.html"),
) -> None:
    from fanfold._observe._timeline import timeline

    async def use(s: Store) -> Path:
        return await timeline(s, run_id, output)

    written: Path = _with_store(store, use)
    Console(stderr=True, markup=False).print(f"the timeline of run {run_id}: {written}")


@contextlib.contextmanager
def _open_output(path: Path | None) -> Iterator[Any]:
    if path is None:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    try:
        file = path.open("wb")
    except OSError as exc:
        raise UsageError(f"--output {str(path)!r}: cannot write it: {exc.strerror or exc}") from exc
    with file:
        yield file


# -- fanfold demo's job -----------------------------------------------------------------------

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def run_demo(job: Job, *, latency: float = 0.25) -> None:
    """Run the demo job: on a simulated provider started here, unless it names a real model."""
    from fanfold._cli._pipeline import Overrides

    if not Path(job.pipeline).is_file():
        Console(stderr=True).print(
            f"[red]Error:[/] the demo runs the examples of fanfold's source tree, and {job.pipeline} is not there; "
            "clone the repository and run `make demo`"
        )
        raise typer.Exit(2)
    helpers = _load_example("demo_helpers")
    if job.overrides.model is not None and job.overrides.base_url is None:

        def after_real(report: Report) -> None:
            helpers.show(report.summary, None)
            if job.batch_api:
                _show_batch_cost(report.summary, None)

        execute_job(job, after=after_real)
        return
    sim: SimulatedProvider = helpers.simulated_provider(latency=latency)
    with sim.in_thread():
        overrides = Overrides(
            model=helpers.SIMULATED_MODEL, base_url=sim.openai_base_url, api_key="sim", price=helpers.PRICE
        )
        simulated = dataclasses.replace(job, overrides=overrides)
        execute_job(simulated, after=lambda report: _after_demo(helpers, report, job, sim))


def _after_demo(helpers: ModuleType, report: Report, job: Job, sim: SimulatedProvider) -> None:
    """Show the demo's figures, then write its timeline next to its results and print where."""
    from fanfold._observe._timeline import timeline

    # Through the batch endpoint the live routes see no request: the provider's figures are its batches'.
    helpers.show(report.summary, None if job.batch_api else sim.stats)
    if job.batch_api:
        _show_batches(sim.batches, sim.stats.requests)
    run_id = report.run_id
    if run_id is None:  # the run never started: no journal to draw
        return
    path = Path(job.output).parent / "timeline.html"

    async def use(s: Store) -> Path:
        return await timeline(s, run_id, path)

    written: Path = _with_store(job.store, use)
    Console(markup=False, soft_wrap=True).print(f"the run's timeline: {written.resolve()}")
    if job.batch_api:  # the demo's last line: what the batch endpoint saved
        _show_batch_cost(report.summary, helpers.PRICE)


def _show_batches(batches: dict[str, Any], live: int) -> None:
    """What the simulated provider's batch endpoint did for the demo (``live``: requests its
    live endpoints saw)."""
    counts = [batch["request_counts"] for batch in batches["batches"]]
    failed = sum(c.get("failed", 0) + c.get("errored", 0) for c in counts)
    Console(soft_wrap=True).print(
        f"[bold]provider[/] (simulated): {batches['created']} batches through its Batch API, "
        f"{batches['answered']:,} requests answered in them and {failed} failed (injected faults, retried in a "
        f"later batch); {live} requests through its live endpoint, whose rate limits a batch does not use"
    )


def _show_batch_cost(summary: dict[str, Any], price: Any) -> None:
    """The run's cost at the batch price against the same requests at the normal price: from
    the run's tokens at ``price`` (the simulated model's), else the batch price undiscounted."""
    from fanfold._llm._batch import DISCOUNT

    usage = summary.get("usage") or {}
    cost = float(usage.get("cost") or 0.0)
    if price is not None:
        normal = (usage.get("input_tokens", 0) * price.input + usage.get("output_tokens", 0) * price.output) / 1e6
    else:
        normal = cost / DISCOUNT
    ratio = f"{cost / normal:.2f}x" if normal else "n/a"
    Console(soft_wrap=True, highlight=False).print(
        f"[bold]batch API[/]: ${cost:.4f} for {usage.get('requests', 0):,} requests, against ${normal:.4f} for the "
        f"same tokens at the normal price: {ratio} the cost"
    )


def _load_example(name: str) -> ModuleType:
    """A helper module of the examples folder (it imports its neighbours, as a script would)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
