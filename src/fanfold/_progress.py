"""Progress, built on the run's events: a live terminal display (rich), or plain periodic lines
when the output is not a terminal (a log file, CI), and the figures for a summary at the end."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

from fanfold._events import Event, FanoutStarted, ModelCalled, TaskFinished, TaskRetrying
from fanfold._outcome import Outcome, Status
from fanfold._usage import Usage


@dataclass(slots=True)
class Tally:
    """What a progress display has counted so far. ``done`` counts the top fan-out's finished
    inputs (``resumed`` of them restored from a journal, not run); ``throttled`` the model
    requests answered with a 429 or an overload."""

    total: int | None = None
    done: int = 0
    resumed: int = 0
    failed: int = 0
    skipped: int = 0
    cancelled: int = 0
    then: str | None = None  # what runs once every input is done (a reduce): "mapping done, reducing..."
    retries: int = 0
    throttled: int = 0
    usage: Usage = field(default_factory=Usage)

    def rate(self, elapsed: float) -> float:
        """Inputs per second run here (restored ones cost no time, so they do not count)."""
        ran = self.done - self.resumed
        return ran / elapsed if elapsed > 0 else 0.0

    def eta(self, elapsed: float) -> float | None:
        """Seconds left at the current rate, if the total is known and work is moving."""
        rate = self.rate(elapsed)
        if self.total is None or rate <= 0:
            return None
        return max(0, self.total - self.done) / rate

    def line(self, elapsed: float) -> str:
        """One plain line: ``1,200/5,000 (24%), 41.0/s, ETA 1m33s, 3 failed, ...``."""
        total = f"/{self.total:,} ({self.done / self.total:.0%})" if self.total else ""
        then = self.then
        finishing = then is not None and self.total is not None and self.done >= self.total
        parts = [f"{self.done:,}{total} {f'mapped, {then}...' if finishing else 'done'}",
                 f"{self.rate(elapsed):,.1f}/s"]  # fmt: skip
        eta = self.eta(elapsed)
        if eta is not None:
            parts.append(f"ETA {duration(eta)}")
        parts += self.extras()
        return ", ".join(parts)

    def extras(self, compact: bool = False) -> list[str]:
        """The counts worth showing, in words (or ``compact``: for a bar's line)."""
        if compact:
            return self._compact()
        parts = []
        if self.resumed:
            parts.append(f"{self.resumed:,} resumed")
        if self.failed:
            parts.append(f"{self.failed:,} failed")
        if self.cancelled:
            parts.append(f"{self.cancelled:,} cancelled")
        if self.skipped:
            parts.append(f"{self.skipped:,} skipped")
        if self.retries:
            parts.append(f"{self.retries:,} retries")
        if self.throttled:
            parts.append(f"{self.throttled:,} throttled (429)")
        if self.usage.tokens:
            parts.append(f"{self.usage.tokens:,} tokens")
        if self.usage.cost:
            parts.append(f"${self.usage.cost:.4f}")
        return parts

    def _compact(self) -> list[str]:
        named = [(self.resumed, "resumed"), (self.failed, "failed"), (self.cancelled, "cancelled"),
                 (self.skipped, "skipped"),
                 (self.retries, "retries"), (self.throttled, "429s")]  # fmt: skip
        parts = [f"{n:,} {name}" for n, name in named if n]
        if self.usage.tokens:
            parts.append(f"{_si(self.usage.tokens)} tokens")
        if self.usage.cost:
            parts.append(f"${self.usage.cost:.3f}")
        return parts


def _si(n: int) -> str:
    """``950``, ``86.0k``, ``1.25M``."""
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k"
    return f"{n / 1_000_000:.2f}M"


def duration(seconds: float) -> str:
    """``42s``, ``3m07s``, ``2h05m``.

    >>> duration(187), duration(7500)
    ('3m07s', '2h05m')
    """
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class ProgressDisplay:
    """Counts the top fan-out's finished inputs, failures, retries, 429s, tokens and cost as
    events arrive, and shows them: a live bar on a terminal, else a plain line every
    ``interval`` seconds.

    Subscribe it to a run with ``progress=True`` (or pass it as ``on_event``). With
    ``count_outcomes=False`` it counts only what the events say about model calls and retries,
    and the caller reports each finished input with :meth:`record` (as ``fanfold run`` does for
    the outcomes it streams, restored ones included).
    """

    def __init__(
        self,
        *,
        console: Console | None = None,
        description: str = "fanfold",
        total: int | None = None,
        count_outcomes: bool = True,
        live: bool | None = None,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        then: str | None = None,
    ) -> None:
        self._console = console or Console(stderr=True)
        self.tally = Tally(total=total, then=then)
        self._count_outcomes = count_outcomes
        self._live = self._console.is_terminal if live is None else live
        self._interval = interval
        self._clock = clock
        self._description = description
        self._started: float | None = None
        self._last_line = 0.0
        self._top: str | None = None  # path prefix of the top fan-out's inputs, e.g. "map["
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),  # the description is escaped: a name may hold [ ]
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[stats]}"),
            console=self._console,
            transient=False,
        )
        self._task = self._progress.add_task(escape(description), total=total, rate="", stats="")

    # -- input ---------------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        tally = self.tally
        if isinstance(event, ModelCalled):
            tally.usage += event.usage
            tally.throttled += event.usage.throttled
        elif isinstance(event, TaskRetrying):
            tally.retries += 1
        elif isinstance(event, FanoutStarted) and event.top:
            self._top = f"{event.path}/{event.kind}[" if event.path else f"{event.kind}["
            if tally.total is None:
                tally.total = event.total
        elif isinstance(event, TaskFinished) and self._count_outcomes and self._is_top(event.path):
            self._count(event.outcome)
        else:
            return
        self._refresh()

    def record(self, outcome: Outcome[object]) -> None:
        """Count one finished input of the top fan-out (with ``count_outcomes=False``)."""
        self._count(outcome)
        self._refresh()

    def _count(self, outcome: Outcome[object]) -> None:
        tally = self.tally
        tally.done += 1
        if outcome.resumed:
            tally.resumed += 1
        if outcome.status in (Status.FAILED, Status.TIMED_OUT):
            tally.failed += 1
        elif outcome.status is Status.CANCELLED:
            tally.cancelled += 1
        elif outcome.status is Status.SKIPPED:
            tally.skipped += 1

    def _is_top(self, path: str) -> bool:
        if self._top is None:
            return path == ""  # the root is no fan-out: it is the one input
        return path.startswith(self._top) and "/" not in path[len(self._top) :]

    # -- output --------------------------------------------------------------------------------

    @property
    def elapsed(self) -> float:
        return 0.0 if self._started is None else self._clock() - self._started

    def _refresh(self) -> None:
        if self._started is None:
            return
        tally = self.tally
        if self._live:
            rate = tally.rate(self.elapsed)
            eta = tally.eta(self.elapsed)
            rate_text = f"{rate:,.1f}/s" + (f", ETA {duration(eta)}" if eta is not None else "")
            stats = _colour(tally.extras(compact=True))
            if tally.then is not None and tally.total is not None and tally.done >= tally.total:
                rate_text = f"mapping done, {tally.then}..."
            self._progress.update(self._task, total=tally.total, completed=tally.done, rate=rate_text, stats=stats)
            return
        now = self._clock()
        if now - self._last_line >= self._interval:
            self._last_line = now
            self._print_line()

    def _print_line(self) -> None:
        line = f"{self._description}: {self.tally.line(self.elapsed)}"
        self._console.print(line, highlight=False, soft_wrap=True, markup=False)

    def start(self) -> None:
        self._started = self._last_line = self._clock()
        if self._live:
            self._progress.start()

    def stop(self) -> None:
        self.tally.then = None  # whatever ran after the inputs has ended with the run
        if self._live:
            self._refresh()
            self._progress.stop()
        elif self._started is not None:
            self._print_line()  # the last figures, whenever the previous line was


_COLOURS = {"failed": "red", "cancelled": "yellow", "skipped": "yellow", "retries": "yellow", "429": "magenta"}


def _colour(parts: list[str]) -> str:
    out = []
    for part in parts:
        colour = next((c for word, c in _COLOURS.items() if word in part), None)
        out.append(f"[{colour}]{part}[/]" if colour else part)
    return " · ".join(out)
