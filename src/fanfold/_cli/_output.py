"""The other side of a batch file: the JSONL output of ``fanfold run``, one line per row (in
input order through a reorder buffer, or as rows finish; buffered and flushed about once a
second), the summary beside it, and the lines ``fanfold runs export`` rebuilds from a journal.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from pydantic_core import to_json

from fanfold._errors import UsageError
from fanfold._outcome import Outcome, Status
from fanfold._records import Entry


def summary_path(output: Path) -> Path:
    """``results.jsonl`` -> ``results.summary.json``, beside it."""
    stem = output.name.removesuffix(output.suffix) if output.suffix in (".jsonl", ".ndjson", ".json") else output.name
    return output.with_name(f"{stem}.summary.json")


def line_of(outcome: Outcome[Any]) -> bytes:
    """One output line: index, status, the value or the error, reason, attempts, retries, usage, key."""
    data: dict[str, Any] = {"index": outcome.index, "status": outcome.status.value}
    if outcome.key is not None:
        data["key"] = outcome.key
    if outcome.status is Status.SUCCEEDED:
        data["value"] = outcome.value
    else:
        error = outcome.error
        data["error"] = None if error is None else {"type": error.type, "message": error.message}
    data["reason"] = outcome.reason
    data["attempts"] = outcome.attempts
    if outcome.retries:  # of the leaf calls under the row (an LLM row's model requests); not journaled
        data["retries"] = outcome.retries
    data["usage"] = None if outcome.usage is None else dataclasses.asdict(outcome.usage)
    return to_json(data, serialize_unknown=True) + b"\n"


class OutputWriter:
    """Writes one JSONL line per outcome: in input order through a reorder buffer (``ordered``),
    or as they come. Lines are buffered and flushed every ``flush_every`` seconds.

    :meth:`check` before the run: a path that cannot be written fails there, before any call.
    The file is created (or truncated) when the first line comes, so a run that fails to start
    (a resume refused by its journal, say) leaves an earlier output as it was.
    """

    def __init__(self, path: str | Path, *, ordered: bool = True, flush_every: float = 1.0) -> None:
        self.path = Path(path)
        self.ordered = ordered
        self.flush_every = flush_every
        self.written = 0
        self._file: IO[bytes] | None = None
        self._next = 0
        self._pending: dict[int, bytes] = {}
        self._flushed = time.monotonic()

    def check(self) -> None:
        """Raise :class:`~fanfold.UsageError` now if the output or its summary cannot be written."""
        for path in (self.path, summary_path(self.path)):
            _check_writable(path)

    def _open(self) -> IO[bytes]:
        try:
            self._file = self.path.open("wb", buffering=1 << 16)
        except OSError as exc:
            raise UsageError(f"--output {str(self.path)!r}: cannot write it: {exc.strerror or exc}") from exc
        return self._file

    def add(self, outcome: Outcome[Any]) -> None:
        file = self._file or self._open()
        line = line_of(outcome)
        if not self.ordered:
            file.write(line)
            self.written += 1
        elif outcome.index == self._next:
            file.write(line)
            self.written += 1
            self._next += 1
            pending = self._pending
            while self._next in pending:
                file.write(pending.pop(self._next))
                self.written += 1
                self._next += 1
        else:
            self._pending[outcome.index] = line
        now = time.monotonic()
        if now - self._flushed >= self.flush_every:
            file.flush()
            self._flushed = now

    @property
    def pending(self) -> int:
        """Lines held back until the inputs before them finish."""
        return len(self._pending)

    def close(self, *, create: bool = True) -> None:
        """Write what the buffer holds (in index order, past any gap) and close the file; with
        ``create=False``, a file that no line was written to is left as it was."""
        file, self._file = self._file, None
        if file is None:
            if not create:
                return
            file = self._open()
            self._file = None
        for index in sorted(self._pending):
            file.write(self._pending[index])
            self.written += 1
        self._pending.clear()
        file.close()


def _check_writable(path: Path) -> None:
    """Fail now, naming the path and why, if ``path`` cannot be created or written."""
    flag = "--output" if not path.name.endswith(".summary.json") else "the summary file"
    if path.is_dir():
        raise UsageError(f"{flag} {str(path)!r} is a directory; pass a file path, e.g. {path / 'results.jsonl'}")
    parent = path.parent
    if not parent.is_dir():
        raise UsageError(f"{flag} {str(path)!r}: the directory {str(parent)!r} does not exist; create it first")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise UsageError(f"{flag} {str(path)!r}: not writable (permission denied); choose another path")
        return
    try:
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".fanfold-check-"):
            pass
    except OSError as exc:
        raise UsageError(
            f"{flag} {str(path)!r}: cannot create files in {str(parent)!r} ({exc.strerror or exc}); choose another path"
        ) from exc


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    """Write the summary JSON whole (a temporary file, then a rename)."""
    text = json.dumps(summary, indent=2, default=str) + "\n"
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(temporary, path)


def entry_line(entry: Entry) -> bytes:
    """An output line for a journal entry of a top input (``fanfold runs export``)."""
    data: dict[str, Any] = {"index": entry.index, "status": entry.status}
    key = entry.key
    if "{" in key and key.endswith("}"):  # map{'id': 7}: the input's own key, as its repr
        text = key[key.index("{") + 1 : -1]
        try:
            data["key"] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            data["key"] = text
    if entry.status == Status.SUCCEEDED:
        data["value"] = None if entry.value_json is None else json.loads(entry.value_json)
    else:
        error = None if entry.error_type is None else {"type": entry.error_type, "message": entry.error_message or ""}
        data["error"] = error
    data["reason"] = entry.reason
    data["attempts"] = entry.attempts
    data["usage"] = None if entry.usage is None else json.loads(entry.usage)
    return to_json(data) + b"\n"


def is_top_entry(entry: Entry) -> bool:
    """Whether the entry is an input of the run's top fan-out (``map[17]``), not a nested task."""
    return "/" not in entry.path and entry.path.startswith("map[")
