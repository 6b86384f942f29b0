"""The ``fanfold`` command line: ``run`` (a batch over a file), ``runs list|show|resume|export``
(runs in a store), ``demo`` and ``simulate``.

Each subcommand is a function on :data:`app` that parses its flags into fanfold's own
configuration objects and hands over; no behaviour lives here that the library lacks. Exit
codes: 0 the run finished, 1 it failed (or passed its deadline), 2 a usage error (nothing was
called), 130 interrupted (resumable).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.util
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fanfold._batch import entry_line, is_top_entry, summary_path
from fanfold._batch_run import DEFAULT_STORE, Job, Report, run_job
from fanfold._errors import UsageError
from fanfold._pipeline import Overrides
from fanfold._progress import duration
from fanfold._store import RunRecord, Store, open_store

if TYPE_CHECKING:  # the simulator (an aiohttp server) is imported by the commands that use it
    from fanfold._sim import SimulatedProvider

app = typer.Typer(
    name="fanfold",
    help="fanfold: run AI agents in parallel, governed.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """fanfold: run AI agents in parallel, governed."""


_LIMITS = "Rate limits (per minute; unset: not enforced)"
_LATENCY = "Latency"
_FAULTS = "Faults (probabilities per request)"


_SIMULATE_HELP = (
    "Serve a simulated LLM provider (OpenAI and Anthropic APIs) until Ctrl-C.\n\n"
    "Point an SDK's base URL at it with any API key. It enforces the rate limits you give as a provider does "
    "(429 with retry-after), answers deterministically after a drawn latency, and injects the faults you ask for. "
    "GET /_sim/stats reports what it served."
)


@app.command(help=_SIMULATE_HELP)
def simulate(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port; 0 picks a free one.")] = 8765,
    requests_per_minute: Annotated[
        float | None, typer.Option("--requests-per-minute", "--rpm", min=0.001, rich_help_panel=_LIMITS)
    ] = None,
    tokens_per_minute: Annotated[
        float | None, typer.Option("--tokens-per-minute", "--tpm", min=0.001, rich_help_panel=_LIMITS)
    ] = None,
    input_tokens_per_minute: Annotated[
        float | None, typer.Option("--input-tokens-per-minute", "--itpm", min=0.001, rich_help_panel=_LIMITS)
    ] = None,
    output_tokens_per_minute: Annotated[
        float | None, typer.Option("--output-tokens-per-minute", "--otpm", min=0.001, rich_help_panel=_LIMITS)
    ] = None,
    burst: Annotated[
        float, typer.Option(min=0.001, help="Seconds of refill each bucket holds.", rich_help_panel=_LIMITS)
    ] = 1.0,
    ramp: Annotated[
        float | None,
        typer.Option(
            min=0.001, help="Ramp the limits up over this many seconds after idling.", rich_help_panel=_LIMITS
        ),
    ] = None,
    ramp_initial: Annotated[
        float, typer.Option(min=0.001, max=1.0, help="Share of the limits a ramp starts at.", rich_help_panel=_LIMITS)
    ] = 0.25,
    latency: Annotated[
        float, typer.Option(min=0.0, help="Median seconds per request.", rich_help_panel=_LATENCY)
    ] = 0.2,
    latency_sigma: Annotated[
        float, typer.Option(min=0.0, help="Spread of the tail (0: fixed).", rich_help_panel=_LATENCY)
    ] = 0.6,
    latency_distribution: Annotated[
        Literal["lognormal", "pareto", "fixed"], typer.Option(help="Shape of the tail.", rich_help_panel=_LATENCY)
    ] = "lognormal",
    per_output_token: Annotated[
        float, typer.Option(min=0.0, help="Extra seconds per output token.", rich_help_panel=_LATENCY)
    ] = 0.0,
    latency_max: Annotated[
        float | None, typer.Option(min=0.0, help="Cap on one request's latency.", rich_help_panel=_LATENCY)
    ] = None,
    rate_429: Annotated[float, typer.Option("--rate-429", min=0.0, max=1.0, rich_help_panel=_FAULTS)] = 0.0,
    rate_500: Annotated[float, typer.Option("--rate-500", min=0.0, max=1.0, rich_help_panel=_FAULTS)] = 0.0,
    rate_529: Annotated[float, typer.Option("--rate-529", min=0.0, max=1.0, rich_help_panel=_FAULTS)] = 0.0,
    rate_timeout: Annotated[float, typer.Option(min=0.0, max=1.0, rich_help_panel=_FAULTS)] = 0.0,
    rate_malformed: Annotated[float, typer.Option(min=0.0, max=1.0, rich_help_panel=_FAULTS)] = 0.0,
    hang: Annotated[
        float, typer.Option(min=0.0, help="Seconds a timed-out request is held.", rich_help_panel=_FAULTS)
    ] = 30.0,
    output_tokens: Annotated[
        int | None, typer.Option(min=1, help="Pad default answers to this many tokens.", show_default=False)
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for answers, latencies and faults.")] = 0,
    rate_limit_headers: Annotated[
        bool, typer.Option("--rate-limit-headers/--no-rate-limit-headers", help="Send x-ratelimit-* headers.")
    ] = True,
) -> None:
    """``fanfold simulate``: build a :class:`SimulatedProvider` from the flags and serve it."""
    from fanfold._sim import Faults, Latency, RampLimit, Reply, SimLimits, SimulatedProvider

    try:
        limits = None
        if any(x is not None for x in (requests_per_minute, tokens_per_minute, input_tokens_per_minute,
                                       output_tokens_per_minute)):  # fmt: skip
            limits = SimLimits(
                requests_per_minute=requests_per_minute,
                tokens_per_minute=tokens_per_minute,
                input_tokens_per_minute=input_tokens_per_minute,
                output_tokens_per_minute=output_tokens_per_minute,
                burst=burst,
                ramp=None if ramp is None else RampLimit(initial=ramp_initial, seconds=ramp),
            )
        sim = SimulatedProvider(
            limits=limits,
            latency=Latency(
                median=latency,
                sigma=latency_sigma,
                distribution=latency_distribution,
                per_output_token=per_output_token,
                maximum=latency_max,
            ),
            faults=Faults(
                rate_429=rate_429,
                rate_500=rate_500,
                rate_529=rate_529,
                rate_timeout=rate_timeout,
                rate_malformed=rate_malformed,
                hang=hang,
            ),
            answer=None if output_tokens is None else Reply(output_tokens=output_tokens),
            seed=seed,
            rate_limit_headers=rate_limit_headers,
            host=host,
            port=port,
        )
    except UsageError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        asyncio.run(_serve(sim))
    except KeyboardInterrupt:
        typer.echo("stopped")
    except OSError as exc:  # the port is taken, the host does not resolve
        typer.echo(f"Error: cannot listen on {host}:{port}: {exc}", err=True)
        raise typer.Exit(1) from exc


async def _serve(sim: SimulatedProvider) -> None:
    """Serve until SIGINT (Ctrl-C) or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows: Ctrl-C still works
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with sim:
        limits = sim.limits
        typer.echo(f"fanfold simulate: serving on {sim.url}")
        typer.echo(f"  OpenAI base URL:    {sim.openai_base_url}")
        typer.echo(f"  Anthropic base URL: {sim.anthropic_base_url}")
        typer.echo(f"  limits: {'none' if limits is None else limits}")
        typer.echo(f"  stats:  GET {sim.url}/_sim/stats    (Ctrl-C to stop)")
        await stop.wait()


# -- fanfold run ------------------------------------------------------------------------------

_LIMITS_RUN = "Limits and budget (override the pipeline's)"
_STORE = "Journal and resume"
StoreOption = Annotated[
    str,
    typer.Option(
        "--store",
        envvar="FANFOLD_STORE",
        help="Where runs are journaled: a SQLite file, a postgresql:// URL, or 'memory'.",
        rich_help_panel=_STORE,
    ),
]

_RUN_HELP = (
    "Run a pipeline over every row of a JSONL or CSV file; write one JSONL line per row, and a summary.\n\n"
    "PIPELINE is a YAML file (model, instructions, prompt, output schema, pattern, limits, budget, retries) or a "
    "Python object as module:attr (an agent run on each row, or a function returning one). Outputs come in input "
    "order (or as they finish, with --unordered); a malformed row becomes a failed line naming its file:line. "
    "Every outcome is journaled in the store first, so an interrupted run resumes where it stopped: "
    "`fanfold runs resume RUN_ID`."
)


@app.command(help=_RUN_HELP)
def run(
    pipeline: Annotated[str, typer.Argument(help="A YAML pipeline file, or a Python object as module:attr.")],
    input: Annotated[Path, typer.Option("--input", "-i", help="The rows: a .jsonl or .csv file.")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="The JSONL results file [default: INPUT-NAME.results.jsonl here]."),
    ] = None,
    format: Annotated[
        str | None, typer.Option("--format", help="jsonl, csv or tsv [default: from the input's suffix].")
    ] = None,
    unordered: Annotated[bool, typer.Option("--unordered", help="Write lines as they finish.")] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Check every row first; stop, calling nothing, at a malformed one.")
    ] = False,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Run only the first N rows.")] = None,
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", "-c", min=1, help="Calls at once.", rich_help_panel=_LIMITS_RUN)
    ] = None,
    rpm: Annotated[
        float | None,
        typer.Option("--rpm", min=0.001, help="Requests per minute, per model.", rich_help_panel=_LIMITS_RUN),
    ] = None,
    tpm: Annotated[
        float | None,
        typer.Option("--tpm", min=0.001, help="Tokens per minute, per model.", rich_help_panel=_LIMITS_RUN),
    ] = None,
    budget_tokens: Annotated[
        int | None,
        typer.Option("--budget-tokens", min=0, help="Tokens the run may spend.", rich_help_panel=_LIMITS_RUN),
    ] = None,
    budget_cost: Annotated[
        float | None,
        typer.Option("--budget-cost", min=0.0, help="Dollars the run may spend.", rich_help_panel=_LIMITS_RUN),
    ] = None,
    budget_requests: Annotated[
        int | None,
        typer.Option("--budget-requests", min=0, help="Model requests the run may make.", rich_help_panel=_LIMITS_RUN),
    ] = None,
    deadline: Annotated[
        float | None,
        typer.Option("--deadline", min=0.001, help="Seconds the whole run may take.", rich_help_panel=_LIMITS_RUN),
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="Replace the YAML pipeline's model.")] = None,
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="Call the model at this URL (e.g. `fanfold simulate`'s).")
    ] = None,
    store: StoreOption = DEFAULT_STORE,
    resume: Annotated[
        str | None, typer.Option("--resume", help="Continue this run from its journal.", rich_help_panel=_STORE)
    ] = None,
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="Name the run [default: a random id].", rich_help_panel=_STORE)
    ] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress on stderr.")] = True,
    progress_every: Annotated[
        float,
        typer.Option(min=0.0, help="Seconds between progress lines when stderr is not a terminal (a log, CI)."),
    ] = 10.0,
) -> None:
    """``fanfold run``: check everything, run the pipeline over the file, report."""
    overrides = Overrides(
        model=model,
        base_url=base_url,
        concurrency=concurrency,
        requests_per_minute=rpm,
        tokens_per_minute=tpm,
        budget_tokens=budget_tokens,
        budget_cost=budget_cost,
        budget_requests=budget_requests,
        deadline=deadline,
    )
    job = Job(
        pipeline=pipeline,
        input=input,
        output=output or Path(f"{input.name.removesuffix(input.suffix)}.results.jsonl"),
        format=format,
        ordered=not unordered,
        strict=strict,
        limit=limit,
        store=store,
        resume=resume,
        run_id=run_id,
        progress=progress,
        progress_every=progress_every,
        overrides=overrides,
    )
    _execute(job)


def _execute(job: Job, *, after: Callable[[Report], None] | None = None) -> Report:
    """Run the job and exit with its code (after ``after(report)``, when the run started)."""
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
        failed = report.exit_code not in (0, 130)
        err.print(report.message, style="red" if failed else None, markup=False)
    if "result" in summary and job.command == "run":
        typer.echo(json.dumps(summary["result"], indent=2, ensure_ascii=False))


# -- fanfold runs -----------------------------------------------------------------------------

runs_app = typer.Typer(
    name="runs", help="The runs in a store: list, show, resume, export.", no_args_is_help=True, add_completion=False
)
app.add_typer(runs_app)


def _with_store(target: str, use: Callable[[Store], Any]) -> Any:
    """Open the store, await ``use(store)``, close it; a usage error exits 2 with its message."""

    async def main() -> Any:
        async with open_store(target) as store:
            return await use(store)

    try:
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
    if record.status == "running":
        out.print(f"  unfinished (or still running): `fanfold runs resume {record.run_id}` continues it")
    elif record.status != "succeeded":
        out.print(f"  `fanfold runs resume {record.run_id}` runs what did not finish")


@runs_app.command("resume", help="Continue a run from its journal, as it was started; rewrite its output whole.")
def runs_resume(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    store: StoreOption = DEFAULT_STORE,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress on stderr.")] = True,
) -> None:
    async def use(s: Store) -> RunRecord:
        return await _record(s, run_id)

    record: RunRecord = _with_store(store, use)
    try:
        job = Job.from_metadata(run_id, record.config.get("metadata") or {}, store=store, progress=progress)
    except UsageError as exc:
        Console(stderr=True, soft_wrap=True, highlight=False).print("[red]Error:[/] " + escape(str(exc)))
        raise typer.Exit(2) from exc
    if job.command == "demo":
        _demo(job)
    else:
        _execute(job)


@runs_app.command("export", help="A run's journaled outcomes as JSONL (the lines `fanfold run` writes).")
def runs_export(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    store: StoreOption = DEFAULT_STORE,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here [default: stdout].")] = None,
    unordered: Annotated[bool, typer.Option("--unordered", help="In journal order, holding none in memory.")] = False,
) -> None:
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


# -- fanfold demo -----------------------------------------------------------------------------

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
_DEMO_HELP = (
    "Review 261 paragraphs of 40 bundled documents with a map-reduce of two LLM agents, as a batch run "
    "(examples/pipelines/review.yaml over examples/data/paragraphs.jsonl), offline.\n\n"
    "By default the model is fanfold's simulated provider, in this process: OpenAI's API on loopback, with rate "
    "limits, heavy-tailed latency and a few injected 429s and 500s. With --model, a real model (its key from "
    "the provider's environment variable)."
)


@app.command(help=_DEMO_HELP)
def demo(
    model: Annotated[str | None, typer.Option("--model", help="A real model, e.g. openai:gpt-5-mini.")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="The results file.")] = Path(
        ".fanfold/demo/results.jsonl"
    ),
    latency: Annotated[float, typer.Option(min=0.0, help="The simulated provider's median latency, seconds.")] = 0.25,
    store: StoreOption = DEFAULT_STORE,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress on stderr.")] = True,
) -> None:
    """``fanfold demo``: the bundled batch, on the simulator or a real model."""
    output.parent.mkdir(parents=True, exist_ok=True)
    job = Job(
        pipeline=str(EXAMPLES / "pipelines" / "review.yaml"),
        input=EXAMPLES / "data" / "paragraphs.jsonl",
        output=output,
        store=store,
        progress=progress,
        overrides=Overrides(model=model),
        command="demo",
    )
    _demo(job, latency=latency)


def _demo(job: Job, *, latency: float = 0.25) -> None:
    """Run the demo job: on a simulated provider started here, unless it names a real model."""
    if not Path(job.pipeline).is_file():
        Console(stderr=True).print(
            f"[red]Error:[/] the demo runs the examples of fanfold's source tree, and {job.pipeline} is not there; "
            "clone the repository and run `make demo`"
        )
        raise typer.Exit(2)
    helpers = _load_example("demo_helpers")
    if job.overrides.model is not None and job.overrides.base_url is None:
        _execute(job, after=lambda report: helpers.show(report.summary, None))
        return
    sim: SimulatedProvider = helpers.simulated_provider(latency=latency)
    with sim.in_thread():
        overrides = Overrides(
            model=helpers.SIMULATED_MODEL, base_url=sim.openai_base_url, api_key="sim", price=helpers.PRICE
        )
        simulated = dataclasses.replace(job, overrides=overrides)
        _execute(simulated, after=lambda report: helpers.show(report.summary, sim.stats))


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


def main() -> None:
    """The console entry point (``fanfold`` in ``[project.scripts]``)."""
    app()


if __name__ == "__main__":
    main()
