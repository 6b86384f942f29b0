"""The ``fanfold`` command line: ``run`` (a batch over a file), ``runs list|show|resume|export``
(runs in a store), ``demo`` and ``simulate``.

Each subcommand is a function on :data:`app` that parses its flags into fanfold's own
configuration objects and hands over; no behaviour lives here that the library lacks. Exit
codes: see :data:`EXIT_CODES`. The ``runs`` subcommands, and the running and reporting of
a job that ``run``, ``demo`` and ``runs resume`` share, are in :mod:`fanfold._cli._runs`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
import typer.rich_utils

from fanfold._cli import DEFAULT_STORE
from fanfold._cli._runs import EXAMPLES, STORE_PANEL, StoreOption, execute_job, run_demo, runs_app
from fanfold._errors import UsageError

if TYPE_CHECKING:  # the simulator (an aiohttp server) and the batch machinery (pydantic, YAML) are
    # imported by the commands that use them, so that `fanfold --help` loads neither
    from fanfold._sim import SimulatedProvider

EXIT_CODES = (
    "Exit codes: 0 the run finished (some inputs may have failed: their lines say why); 1 the run failed, "
    "passed its deadline, or every input failed; 2 a usage error (nothing was called); 130 interrupted by "
    "Ctrl-C, 143 by SIGTERM (both resumable with `fanfold runs resume RUN_ID`)."
)

# Piped into a file or a pager, help is not cut to 80 columns (rich's default off a terminal),
# which would truncate the option names.
if typer.rich_utils.MAX_WIDTH is None and "COLUMNS" not in os.environ and not sys.stdout.isatty():
    typer.rich_utils.MAX_WIDTH = 120

app = typer.Typer(
    name="fanfold",
    help="fanfold: run AI agents in parallel, governed.",
    epilog=EXIT_CODES,
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

_RUN_HELP = (
    "Run a pipeline over every row of a JSONL or CSV file; write one JSONL line per row, and a summary.\n\n"
    "PIPELINE is a YAML file (model, instructions, prompt, output schema, pattern, limits, budget, retries) or a "
    "Python object as module:attr (an agent run on each row, or a function returning one). Outputs come in input "
    "order (or as they finish, with --unordered); a malformed row becomes a failed line naming its file:line. "
    "Every outcome is journaled in the store first, so an interrupted run resumes where it stopped: "
    "`fanfold runs resume RUN_ID`."
)


@app.command(help=_RUN_HELP, epilog=EXIT_CODES)
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
    max_row_bytes: Annotated[
        int | None,
        typer.Option(
            "--max-row-bytes",
            min=1,
            help="The largest row to read; a longer one fails, unread [default: the pipeline's, else 4 MiB].",
            show_default=False,
        ),
    ] = None,
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
    limiter: Annotated[
        str | None,
        typer.Option(
            "--limiter",
            help="Share the models' limits and the budget with other processes through this Redis "
            "(redis://host:6379/0?namespace=my-job); needs fanfold[redis].",
            rich_help_panel=_LIMITS_RUN,
        ),
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="Replace the YAML pipeline's model.")] = None,
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="Call the model at this URL (e.g. `fanfold simulate`'s).")
    ] = None,
    store: StoreOption = DEFAULT_STORE,
    resume: Annotated[
        str | None, typer.Option("--resume", help="Continue this run from its journal.", rich_help_panel=STORE_PANEL)
    ] = None,
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="Name the run [default: a random id].", rich_help_panel=STORE_PANEL)
    ] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress on stderr.")] = True,
    progress_every: Annotated[
        float,
        typer.Option(min=0.0, help="Seconds between progress lines when stderr is not a terminal (a log, CI)."),
    ] = 10.0,
    trace: Annotated[
        bool,
        typer.Option(
            "--trace",
            help="OpenTelemetry spans and metrics of the run (needs fanfold[otel]; set the exporter up with "
            "opentelemetry-instrument and its OTEL_* variables).",
        ),
    ] = False,
    backend: Annotated[
        str,
        typer.Option(
            "--backend",
            help="Where sync function agents run: threads, processes (one per CPU) or ray (a Ray cluster).",
            rich_help_panel=_LIMITS_RUN,
        ),
    ] = "threads",
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address", help="The Ray cluster for --backend ray (host:port).", rich_help_panel=_LIMITS_RUN
        ),
    ] = None,
    batch_api: Annotated[
        bool,
        typer.Option(
            "--batch-api",
            help="Send the model requests through the provider's batch endpoint (OpenAI's Batch API, Anthropic's "
            "Message Batches): half the price, answers within a day (openai and anthropic models without tools; "
            "a stopped run resumes by polling its batches).",
            rich_help_panel=_LIMITS_RUN,
        ),
    ] = False,
) -> None:
    """``fanfold run``: check everything, run the pipeline over the file, report."""
    from fanfold._cli._jobs import Job
    from fanfold._cli._pipeline import Overrides

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
        max_row_bytes=max_row_bytes,
        store=store,
        resume=resume,
        run_id=run_id,
        progress=progress,
        progress_every=progress_every,
        overrides=overrides,
        trace=trace,
        backend=backend,
        ray_address=ray_address,
        limiter=limiter,
        batch_api=batch_api,
    )
    execute_job(job)


app.add_typer(runs_app)  # fanfold runs list|show|resume|export|timeline


@app.command(help="Serve a live dashboard of the runs in a store (progress, usage, failures, timeline; cancel), "
             "until Ctrl-C. It sees runs of other processes through their journals.")  # fmt: skip
def dashboard(
    store: StoreOption = DEFAULT_STORE,
    host: Annotated[str, typer.Option(help="The address to listen on; beyond loopback a token is required.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=0, max=65535, help="The port (0: any free one).")] = 8765,
    token: Annotated[
        str | None, typer.Option(help="The token every request must carry [default: generated off loopback].")
    ] = None,
) -> None:
    from fanfold._observe._dashboard import serve_store

    try:
        asyncio.run(serve_store(store, host=host, port=port, token=token, announce=typer.echo))
    except UsageError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except KeyboardInterrupt:
        typer.echo("dashboard stopped", err=True)


# -- fanfold demo -----------------------------------------------------------------------------

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
    batch_api: Annotated[
        bool,
        typer.Option(
            "--batch-api",
            help="Send the model requests through the provider's batch endpoint (the simulator's Batch API): "
            "the same review at half the price; the last line compares the cost with the normal price.",
        ),
    ] = False,
) -> None:
    """``fanfold demo``: the bundled batch, on the simulator or a real model."""
    from fanfold._cli._jobs import Job
    from fanfold._cli._pipeline import Overrides

    output.parent.mkdir(parents=True, exist_ok=True)
    job = Job(
        pipeline=str(EXAMPLES / "pipelines" / "review.yaml"),
        input=EXAMPLES / "data" / "paragraphs.jsonl",
        output=output,
        store=store,
        progress=progress,
        overrides=Overrides(model=model),
        command="demo",
        batch_api=batch_api,
    )
    run_demo(job, latency=latency)


def main() -> None:
    """The console entry point (``fanfold`` in ``[project.scripts]``)."""
    app()


if __name__ == "__main__":
    main()
