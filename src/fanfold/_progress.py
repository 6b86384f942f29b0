"""A live terminal progress display, built on the run's events (rich)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from fanfold._events import Event, FanoutStarted, TaskFinished, TaskRetrying
from fanfold._outcome import Status


class ProgressDisplay:
    """Counts the top fan-out's finished inputs, failures and retries as events arrive.

    Subscribe it to a run with ``progress=True`` (or pass it as ``on_event``)."""

    def __init__(self, *, console: Console | None = None, description: str = "fanfold") -> None:
        self._console = console or Console(stderr=True)
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self._console,
        )
        self._task = self._progress.add_task(description, total=None, stats="")
        self._top: str | None = None  # path prefix of the top fan-out's inputs, e.g. "map["
        self._failed = 0
        self._retries = 0

    def __call__(self, event: Event) -> None:
        if isinstance(event, FanoutStarted) and event.top:
            self._top = f"{event.path}/{event.kind}[" if event.path else f"{event.kind}["
            self._progress.update(self._task, total=event.total)
        elif isinstance(event, TaskFinished):
            if not self._is_top(event.path):
                return  # only the top fan-out's inputs count towards the bar
            if event.outcome.status in (Status.FAILED, Status.TIMED_OUT):
                self._failed += 1
            self._progress.update(self._task, advance=1, stats=self._stats())
        elif isinstance(event, TaskRetrying):
            self._retries += 1
            self._progress.update(self._task, stats=self._stats())

    def _is_top(self, path: str) -> bool:
        if self._top is None:
            return path == ""  # the root is no fan-out: it is the one input
        return path.startswith(self._top) and "/" not in path[len(self._top) :]

    def _stats(self) -> str:
        parts = []
        if self._failed:
            parts.append(f"[red]{self._failed} failed[/]")
        if self._retries:
            parts.append(f"[yellow]{self._retries} retries[/]")
        return " ".join(parts)

    def start(self) -> None:
        self._progress.start()

    def stop(self) -> None:
        self._progress.stop()
