"""Review a folder of documents with a map-reduce over (simulated) model calls.

Each document in ``examples/documents/`` is split into paragraphs; the ``review`` agent reads one
paragraph and returns a :class:`Finding` (a severity and a one-line note); ``synthesize`` merges
findings into a :class:`Report`, eight at a time, level after level, until one report is left.

No model is called, so the demo runs offline with no API key: ``review`` stands in for one. It
waits as long as a model call would (a seeded log-normal, mean ~0.15 s, with a heavy tail), fails
the first attempt of a few calls with a transient "503" that the run's retry policy recovers, and
then applies keyword rules to the text. Everything is seeded, so every run finds the same issues.

    make demo        # or: .venv/bin/python examples/review_documents.py
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

import fanfold as ff

DOCUMENTS = Path(__file__).parent / "documents"
MEAN_LATENCY = 0.15  # seconds per simulated review call
SIGMA = 0.8  # log-normal shape: most calls are quick, a few take several times the mean
FLAKY = 0.04  # the share of review calls whose first attempt fails with a transient error
REDUCE_LATENCY = 0.1  # seconds per simulated synthesis call

# (severity, issue, phrases): the first rule with a phrase in a paragraph decides its finding.
RULES = [
    ("high", "secret in plain text", ("live api key", "hard-coded", "as a plain string")),
    ("high", "no rollback plan", ("no rollback", "cannot be rolled back")),
    ("high", "data loss", ("data loss",)),
    ("medium", "single point of failure", ("single point of failure", "only one engineer", "one replica")),
    ("medium", "untested change", ("untested", "no tests", "without tests", "not yet run", "did not cover")),
    ("medium", "schedule slip", ("slipped", "behind schedule")),
    ("low", "manual step", ("manually", "by hand")),
    ("low", "open TODO", ("todo", "tbd")),
]
SEVERITIES = {"high": "red", "medium": "yellow", "low": "cyan", "ok": "green"}  # worst first, with colours


@dataclass(frozen=True)
class Document:
    name: str
    text: str


@dataclass(frozen=True)
class Section:
    document: str
    index: int
    text: str


@dataclass(frozen=True)
class Finding:
    document: str
    section: int
    severity: str  # a key of SEVERITIES
    issue: str | None  # the rule that fired, or None when the paragraph looks fine
    note: str


@dataclass(frozen=True)
class Report:
    """Findings added up. Adding reports is associative, so they merge in any grouping."""

    sections: int = 0
    documents: frozenset[str] = frozenset()
    severities: Counter[str] = field(default_factory=Counter)
    issues: dict[str, tuple[Finding, ...]] = field(default_factory=dict)  # issue -> its findings, in order

    @classmethod
    def of(cls, finding: Finding) -> Report:
        issues: dict[str, tuple[Finding, ...]] = {finding.issue: (finding,)} if finding.issue else {}
        return cls(1, frozenset({finding.document}), Counter({finding.severity: 1}), issues)

    def __add__(self, other: Report) -> Report:
        issues = dict(self.issues)
        for issue, found in other.issues.items():
            issues[issue] = issues.get(issue, ()) + found
        documents, severities = self.documents | other.documents, self.severities + other.severities
        return Report(self.sections + other.sections, documents, severities, issues)


def load_documents(path: Path) -> list[Document]:
    return [Document(p.stem, p.read_text(encoding="utf-8")) for p in sorted(Path(path).glob("*.txt"))]


def split(documents: list[Document]) -> list[Section]:
    """One section per paragraph; paragraphs are separated by blank lines."""
    sections = []
    for doc in documents:
        paragraphs = [" ".join(p.split()) for p in doc.text.split("\n\n") if p.strip()]
        sections += [Section(doc.name, i, text) for i, text in enumerate(paragraphs)]
    return sections


def judge(section: Section) -> Finding:
    """What the simulated model concludes: the first rule whose phrase appears, with a quote."""
    lowered = section.text.lower()
    for severity, issue, phrases in RULES:
        for phrase in phrases:
            if (at := lowered.find(phrase)) >= 0:
                return Finding(section.document, section.index, severity, issue, quote(section.text, at, len(phrase)))
    return Finding(section.document, section.index, "ok", None, "no issue found")


def quote(text: str, at: int, length: int, margin: int = 20) -> str:
    """The words around ``text[at : at + length]``."""
    start, end = text.rfind(" ", 0, max(0, at - margin)) + 1, text.find(" ", at + length + margin)
    end = len(text) if end < 0 else end
    return f'"{"..." * (start > 0)}{text[start:end]}{"..." * (end < len(text))}"'


@ff.agent
async def review(section: Section, ctx: ff.Context) -> Finding:
    """Review one paragraph as a model call would: take a while, sometimes fail, then answer."""
    rng = random.Random(f"{section.document}#{section.index}")  # seeded per section: every run is the same
    await asyncio.sleep(rng.lognormvariate(math.log(MEAN_LATENCY) - SIGMA**2 / 2, SIGMA))
    if ctx.attempt == 1 and rng.random() < FLAKY:
        raise ff.Retry("simulated 503", after=0.05)
    return judge(section)


@ff.agent
async def synthesize(parts: list[Finding | Report]) -> Report:
    """Merge findings, or the reports of an earlier level of reduction, into one report."""
    await asyncio.sleep(REDUCE_LATENCY)
    return sum((p if isinstance(p, Report) else Report.of(p) for p in parts), Report())


def build_pipeline() -> ff.Pattern:
    return ff.map_reduce(split=split, map=review, reduce=synthesize, fan_in=8)


def show(result: ff.Result[Report], console: Console) -> None:
    """Print the report (counts by severity, the most frequent issues), the summary and the speedup."""
    report, summary = result.output, result.summary
    assert report is not None
    counts = ", ".join(f"{report.severities[s]} {'clean' if s == 'ok' else s}" for s in SEVERITIES)
    console.print(f"\n[bold]Reviewed {report.sections} sections of {len(report.documents)} documents[/]: {counts}")
    rank = list(SEVERITIES)
    for found in sorted(report.issues.values(), key=lambda f: (rank.index(f[0].severity), -len(f)))[:5]:
        first, documents = found[0], {f.document for f in found}
        console.print(f"  [{SEVERITIES[first.severity]}]{first.severity:<7}[/] {first.issue}: "
                      f"{len(documents)} documents, e.g. {first.document}")  # fmt: skip
        console.print(f"          {first.note}", highlight=False)
    console.print(f"\n[bold]summary[/]: {summary}", soft_wrap=True)
    console.print(f"[bold]sequential: {summary.busy:.1f} s, fanfold: {summary.wall:.1f} s, "
                  f"speedup {summary.parallelism:.0f}x[/]")  # fmt: skip


def main(path: Path = DOCUMENTS, *, progress: bool = True) -> ff.Result[Report]:
    result = ff.run_sync(
        build_pipeline(),
        load_documents(path),
        limits=ff.Limits(concurrency=32),
        retry=ff.RetryPolicy(retry_on=ConnectionError, attempts=3, initial=0.05),
        progress=progress,
    )
    show(result, Console())
    return result


if __name__ == "__main__":
    main()
