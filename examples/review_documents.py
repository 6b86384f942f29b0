"""Review a folder of documents with LLM agents: a map-reduce over hundreds of model calls.

Each document in ``examples/documents/`` is split into paragraphs (in code); the ``review`` agent
reads one paragraph and returns a :class:`Finding`; the ``synthesize`` agent merges eight
findings into a :class:`Report`, then eight reports into one, level after level, until one
report is left. Both are ``ff.llm`` agents on pydantic-ai, with structured output.

By default the model is fanfold's simulated provider: a real HTTP server on loopback that speaks
OpenAI's API, with a provider's rate limits, heavy-tailed latency and a few injected 429s and
500s. Its answers are deterministic and meaningful (``_simulated_answers.py``: keyword rules for
a review, arithmetic for a synthesis), so the demo runs offline, needs no key, and finds the
same issues every time. fanfold is given no rate limits: it learns them from the provider's
rate-limit headers, and retries 429s and 5xx on its own.

    make demo                                   # simulated, offline
    make demo MODEL=openai:gpt-5-mini           # a real model; the key from OPENAI_API_KEY
    .venv/bin/python examples/review_documents.py --model anthropic:claude-sonnet-4-5 --limit 5
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel
from rich.console import Console

import fanfold as ff
from _simulated_answers import answer  # next to this file, which Python puts on sys.path
from fanfold.testing import Faults, Latency, SimLimits, SimStats, SimulatedProvider

DOCUMENTS = Path(__file__).parent / "documents"
SIMULATED = "openai-chat:sim-1"  # any model name will do: the simulator answers them all
SIM_LIMITS = SimLimits(requests_per_minute=3000, tokens_per_minute=2_000_000)
SIM_LATENCY = Latency(median=0.25, sigma=0.7)  # a heavy tail: a few calls take seconds
SIM_FAULTS = Faults(rate_429=0.01, rate_500=0.02)
SIM_PRICE = ff.Price(input=0.25, output=2.0)  # dollars per million tokens, as a small model costs
FAN_IN = 8
COLOURS = {"high": "red", "medium": "yellow", "low": "cyan", "none": "green"}  # worst first

Severity = Literal["high", "medium", "low", "none"]


class Finding(BaseModel):
    document: str
    severity: Severity
    issue: str
    note: str


class Issue(BaseModel):
    issue: str
    severity: Severity
    documents: list[str]
    example: str


class Severities(BaseModel):  # fields, not a dict: every provider's structured output takes them
    high: int
    medium: int
    low: int
    none: int


class Report(BaseModel):
    sections: int
    documents: list[str]
    severities: Severities
    issues: list[Issue]


REVIEW = """You review one paragraph of an engineering document for risks. Return its finding:
document: the document's name, as given; severity: high (secrets in plain text, no rollback plan,
data loss), medium (a single point of failure, untested changes, a schedule slip), low (manual
steps, open TODOs) or none; issue: a short name for the problem, or "none"; note: a short quote of
the words that show it, or "no issue found"."""

SYNTHESIZE = """You merge findings about paragraphs, and reports that merged findings before, into
one report. The input is a JSON list of both. sections: one per finding, plus the sections of each
report; documents: every document named, each once, in order; severities: for each of high,
medium, low and none, the findings with that severity plus the reports' counts; issues: one entry
per issue that is not "none", with its severity, every document it was found in (each once), and
one finding's note as the example."""


@dataclass(frozen=True)
class Document:
    name: str
    text: str


@dataclass(frozen=True)
class Section:
    document: str
    index: int
    text: str


def load_documents(path: Path) -> list[Document]:
    return [Document(p.stem, p.read_text(encoding="utf-8")) for p in sorted(Path(path).glob("*.txt"))]


def split(documents: list[Document]) -> list[Section]:
    """One section per paragraph; paragraphs are separated by blank lines."""
    sections = []
    for doc in documents:
        paragraphs = [" ".join(p.split()) for p in doc.text.split("\n\n") if p.strip()]
        sections += [Section(doc.name, i, text) for i, text in enumerate(paragraphs)]
    return sections


def build_pipeline(
    model: str, *, base_url: str | None = None, api_key: str | None = None, price: ff.Price | None = None
) -> ff.Pattern:
    """Split in code, review every section, synthesize the findings: two LLM agents on ``model``."""
    llm = functools.partial(ff.llm, model, base_url=base_url, api_key=api_key, price=price)
    review = llm(
        name="review",
        instructions=REVIEW,
        output_type=Finding,
        prompt=lambda section: f"Document: {section.document}\n\n{section.text}",
    )
    synthesize = llm(
        name="synthesize",
        instructions=SYNTHESIZE,
        output_type=Report,
        prompt=lambda parts: json.dumps([part.model_dump(mode="json") for part in parts]),
    )
    return ff.map_reduce(split=split, map=review, reduce=synthesize, fan_in=FAN_IN)


def simulated_provider(latency: Latency = SIM_LATENCY, faults: Faults = SIM_FAULTS) -> SimulatedProvider:
    return SimulatedProvider(limits=SIM_LIMITS, latency=latency, faults=faults, answer=answer, seed=2)


def main(
    path: Path = DOCUMENTS,
    *,
    progress: bool = True,
    model: str | None = None,
    limit: int | None = None,
    sim: SimulatedProvider | None = None,
) -> ff.Result[Report]:
    """Review the documents in ``path`` (the first ``limit``) with ``model``, or on the simulated
    provider ``sim`` (by default :func:`simulated_provider`) when no model is given."""
    documents = load_documents(path)[:limit]
    console = Console(soft_wrap=True)  # long lines stay whole when the output is piped
    run = {"limits": ff.Limits(concurrency=64), "progress": progress}
    if model is not None:
        pipeline = build_pipeline(model)  # a UsageError here names what is missing, e.g. the key
        console.print(f"[bold]{model}[/]: reviewing {len(documents)} documents")
        result = ff.run_sync(pipeline, documents, **run)
        show(result, console)
        show_speedup(result.summary, console)
        return result
    sim = sim or simulated_provider()
    with sim.in_thread():
        console.print(f"[bold]simulated provider[/] at {sim.url}: reviewing {len(documents)} documents")
        pipeline = build_pipeline(SIMULATED, base_url=sim.openai_base_url, api_key="sim", price=SIM_PRICE)
        result = ff.run_sync(pipeline, documents, **run)
        stats = sim.stats
    show(result, console)
    show_provider(stats, console)
    show_speedup(result.summary, console)
    return result


def show(result: ff.Result[Report], console: Console) -> None:
    """Print the report (counts by severity, the worst and most frequent issues) and the summary."""
    report, summary = result.output, result.summary
    assert report is not None
    counts = ", ".join(f"{getattr(report.severities, s)} {'clean' if s == 'none' else s}" for s in COLOURS)
    console.print(f"\n[bold]Reviewed {report.sections} sections of {len(report.documents)} documents[/]: {counts}")
    rank = list(COLOURS)
    for issue in sorted(report.issues, key=lambda i: (rank.index(i.severity), -len(i.documents)))[:5]:
        found = issue.documents
        where = f"{len(found)} document{'s' * (len(found) != 1)}" + (f", e.g. {found[0]}" if found else "")
        console.print(f"  [{COLOURS[issue.severity]}]{issue.severity:<7}[/] {issue.issue}: {where}")
        console.print(f"          {issue.example}", highlight=False)
    usage = summary.usage
    console.print(f"\n[bold]summary[/]: {summary}")
    console.print(f"[bold]tokens[/]: {usage.tokens:,} in {usage.requests} requests, ${usage.cost:.4f}; "
                  f"{usage.throttled} throttled (429), {summary.retries} retries")  # fmt: skip


def show_provider(stats: SimStats, console: Console) -> None:
    """What the simulated provider saw, and the limits fanfold found out for itself."""
    errors = sum(n for status, n in stats.by_status.items() if status >= 500)
    rpm, tpm = SIM_LIMITS.requests_per_minute or 0, SIM_LIMITS.tokens_per_minute or 0
    console.print(f"[bold]provider[/] (simulated): answered 429 to {stats.status_429} requests "
                  f"({stats.injected_429} injected, {stats.rate_limited} over its limits) and 5xx to {errors}; "
                  f"{stats.peak_concurrency} at once at most, {max(stats.timeline_ok, default=0)} "
                  "in its busiest second")  # fmt: skip
    console.print(f"  fanfold was given no rate limits: it learned the provider's {rpm:,.0f} requests and "
                  f"{tpm:,.0f} tokens per minute from its x-ratelimit-* headers")  # fmt: skip


def show_speedup(summary: ff.Summary, console: Console) -> None:
    console.print(f"[bold]one after another, the model calls would take {summary.busy:.1f} s; "
                  f"fanfold took {summary.wall:.1f} s: {summary.parallelism:.0f}x faster[/]")  # fmt: skip


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a 'provider:model', e.g. openai:gpt-5-mini (default: the simulator)")
    parser.add_argument("--limit", type=int, metavar="N", help="review only the first N documents")
    parser.add_argument("--no-progress", action="store_true", help="no live progress bar")
    args = parser.parse_args()
    try:
        main(progress=not args.no_progress, model=args.model or None, limit=args.limit)
    except ff.UsageError as exc:
        hint = "(or leave out --model to run on the simulated provider)"
        Console(stderr=True).print(f"[red]error:[/] {exc}\n{hint}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except ff.RunFailed as exc:
        Console(stderr=True).print(f"[red]the run failed:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    cli()
