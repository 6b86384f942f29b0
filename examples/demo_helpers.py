"""What ``fanfold demo`` adds to a plain ``fanfold run`` of ``pipelines/review.yaml``: the
simulated provider it runs on, and a readable account of the report at the end.

The simulator answers deterministically and meaningfully (``_simulated_answers.py``: keyword
rules for a review, arithmetic for a merge), so the demo runs offline, needs no key, and finds
the same issues every time. fanfold is given no rate limits: it learns the simulator's from its
rate-limit headers, and retries the 429s and 500s it injects.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape

import fanfold as ff
from _simulated_answers import answer  # next to this file
from fanfold.testing import Faults, Latency, SimLimits, SimStats, SimulatedProvider

SIMULATED_MODEL = "openai-chat:sim-1"  # any model name will do: the simulator answers them all
PRICE = ff.Price(input=0.25, output=2.0)  # dollars per million tokens, as a small model costs
LIMITS = SimLimits(requests_per_minute=3000, tokens_per_minute=2_000_000)
FAULTS = Faults(rate_429=0.01, rate_500=0.02)
COLOURS = {"high": "red", "medium": "yellow", "low": "cyan", "none": "green"}  # worst first


def simulated_provider(latency: float = 0.25, faults: Faults = FAULTS) -> SimulatedProvider:
    """The provider the demo runs on: a heavy tail of latency around ``latency`` seconds."""
    shape = Latency(median=latency, sigma=0.7) if latency else Latency.fixed(0)
    return SimulatedProvider(limits=LIMITS, latency=shape, faults=faults, answer=answer, seed=2)


def show(summary: dict[str, Any], stats: SimStats | None, console: Console | None = None) -> None:
    """The report (counts by severity, the worst and most frequent issues), what the provider
    saw, and the speedup over making the same calls one after another."""
    console = console or Console(soft_wrap=True)
    report = summary.get("result")
    if report is not None:
        severities = report["severities"]
        counts = ", ".join(f"{severities[s]} {'clean' if s == 'none' else s}" for s in COLOURS)
        console.print(f"\n[bold]Reviewed {report['sections']} sections of {len(report['documents'])} documents[/]: "
                      f"{counts}")  # fmt: skip
        rank = list(COLOURS)
        issues = sorted(report["issues"], key=lambda i: (rank.index(i["severity"]), -len(i["documents"])))
        for issue in issues[:5]:
            found = issue["documents"]
            where = f"{len(found)} document{'s' * (len(found) != 1)}" + (f", e.g. {found[0]}" if found else "")
            what = escape(f"{issue['issue']}: {where}")  # the model's words: [ ] are not markup
            console.print(f"  [{COLOURS[issue['severity']]}]{issue['severity']:<7}[/] {what}")
            console.print(f"          {issue['example']}", highlight=False, markup=False)
    usage = summary.get("usage") or {}
    console.print(f"[bold]tokens[/]: {usage.get('input_tokens', 0) + usage.get('output_tokens', 0):,} in "
                  f"{usage.get('requests', 0)} requests, ${usage.get('cost', 0.0):.4f}; "
                  f"{usage.get('throttled', 0)} throttled (429), {summary.get('retries', 0)} retries")  # fmt: skip
    if stats is not None:
        errors = sum(n for status, n in stats.by_status.items() if status >= 500)
        console.print(f"[bold]provider[/] (simulated): answered 429 to {stats.status_429} requests "
                      f"({stats.injected_429} injected, {stats.rate_limited} over its limits) and 5xx to {errors}; "
                      f"{stats.peak_concurrency} at once at most")  # fmt: skip
        console.print(f"  fanfold was given no rate limits: it learned the provider's "
                      f"{LIMITS.requests_per_minute or 0:,.0f} requests and {LIMITS.tokens_per_minute or 0:,.0f} "
                      "tokens per minute from its x-ratelimit-* headers")  # fmt: skip
    busy, wall = summary.get("busy", 0.0), summary.get("wall", 0.0)
    if wall:
        console.print(f"[bold]one after another, the model calls would take {busy:.1f} s; fanfold took "
                      f"{wall:.1f} s: {busy / wall:.0f}x faster[/]")  # fmt: skip
    run_id = summary.get("run_id")
    console.print(f"\nThe run's journal: `fanfold runs show {run_id}`; its lines: `fanfold runs export {run_id}`")
