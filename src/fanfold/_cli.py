"""The ``fanfold`` command line. One subcommand per verb; today there is ``fanfold simulate``.

Each subcommand is a function on :data:`app` that parses its flags into fanfold's own
configuration objects and hands over; no behaviour lives here that the library lacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Annotated, Literal

import typer

from fanfold._errors import UsageError
from fanfold._sim import Faults, Latency, RampLimit, Reply, SimLimits, SimulatedProvider

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


def main() -> None:
    """The console entry point (``fanfold`` in ``[project.scripts]``)."""
    app()


if __name__ == "__main__":
    main()
