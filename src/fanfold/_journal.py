"""The journal: every finished task's outcome made durable in a store before it is reported.

A run with a store journals each task under a key that is stable across attempts at the run
(its path, or the fan-out's own ``key`` for the input). Writes are batched by a single writer
task: records that arrive while a batch is being written go into the next one, so a busy run
pays one transaction per batch, not per task (group commit), and a quiet one waits for one
small transaction. A task awaits its batch before its outcome reaches anyone: the events, the
result, ``as_completed``.

Resuming (``resume=run_id``) loads the run's entries first; a task whose key is journaled, for
the same input, is not run again: its outcome is restored and reported with ``resumed=True``.

The run is owned by this process through a lease in the store (``fanfold._lease``): the writer
renews it with every batch, and every third of its time to live when no batch comes, and
checkpoints the attempt's usage in the same transaction, so that a crash loses neither the
ownership's end (the lease lapses) nor what was spent.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import pickle
import sys
import time
from collections.abc import Callable, Hashable
from dataclasses import asdict, fields, is_dataclass, replace
from typing import Any

from fanfold._agent import agent_name, is_composite
from fanfold._context import Context
from fanfold._errors import JournalFailed, RunError, UsageError
from fanfold._lease import Lease, finish, first, release, renew, take
from fanfold._outcome import Call, ErrorInfo, Outcome, Status
from fanfold._records import Entry, RunRecord, Store
from fanfold._redact import known, redact
from fanfold._usage import Usage

_PLAIN_SCALARS = (str, int, float, bool, type(None))


class JournaledError(RunError):
    """A failure restored from the journal of an earlier attempt at the run. ``error`` is what
    the original exception was."""

    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(f"{error} (journaled by an earlier attempt at this run)")
        self.error = error


class Journal:
    """One run's journal: the entries to restore (when resuming) and the batching writer."""

    def __init__(
        self,
        store: Store,
        run_id: str,
        restored: dict[str, Entry] | None = None,
        *,
        lease: Lease | None = None,
        spent: Callable[[], Usage] = Usage,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.lease = lease or Lease.new(time.time())
        self._spent = spent
        self._restored = restored or {}
        # The fan-out keys (given by the user) this attempt has met, with the input that had each.
        self._claimed: dict[str, int] = {}
        self._published: dict[tuple[int, str], list[tuple[str, Any]]] = {}  # restored, until replayed
        self._batch: list[Entry] = []
        self._flushed: asyncio.Future[None] | None = None
        self._wake = asyncio.Event()
        self._closing = False
        self._failure: BaseException | None = None
        self._writer: asyncio.Task[None] | None = None
        self.written = 0
        # Called once when a cancel request is seen in the run's record (`fanfold dashboard` writes one).
        self.on_cancel: Callable[[], None] | None = None
        self._cancel_seen = False

    @property
    def failure(self) -> JournalFailed | None:
        """Why the journal stopped keeping outcomes, if it did."""
        if self._failure is None:
            return None
        error = JournalFailed(self._failure_message())
        error.__cause__ = self._failure
        return error

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(self._write_batches(), name="fanfold-journal")

    async def aclose(self) -> None:
        """Write what is pending and stop the writer."""
        self.on_cancel = None  # the run's body is over: nothing left to cancel
        self._closing = True
        self._wake.set()
        writer = self._writer
        if writer is not None:
            await asyncio.wait({writer})  # it never raises: a failed write goes to the waiting tasks

    async def end(self, status: str | None, summary: dict[str, Any] | None) -> None:
        """Give up the lease: the run ended with ``status`` (and ``summary``), or, with ``None``,
        stopped unfinished (it shows as interrupted, and resumes at once)."""
        token, usage = self.lease.token, asdict(self._spent())
        if status is None:
            await self.store.change_run(self.run_id, lambda r: release(r, token, time.time(), usage))
        else:
            await self.store.change_run(self.run_id, lambda r: finish(r, token, time.time(), status, summary, usage))

    # -- restoring ---------------------------------------------------------------------------

    def restore(self, ctx: Context, key: str, digest: str | None, label: Hashable | None) -> Outcome[Any] | None:
        """The journaled outcome of this task (whose fan-out ``key`` is ``label``), if it has one
        for the same input; a failed outcome if another input of the fan-out had the same key."""
        if label is not None:
            other = self._claimed.setdefault(key, ctx.index)
            if other != ctx.index:
                return _duplicate(ctx, key, label, other)
        if not self._restored:
            return None
        entry = self._restored.get(key)
        if entry is None or entry.input_digest != digest:
            return None  # never ran, or ran on another input: run it again
        del self._restored[key]  # each journaled task is restored once
        if entry.published is not None:
            self._published[ctx.index, ctx.path] = [(name, value) for name, value in json.loads(entry.published)]
        error = None if entry.error_type is None else ErrorInfo(entry.error_type, entry.error_message or "")
        return Outcome(
            ctx.index,
            Status(entry.status),
            decode(entry) if entry.status == Status.SUCCEEDED else None,
            label,
            ctx.path,
            entry.attempts,
            entry.start,
            entry.end,
            error=error,
            reason=entry.reason,
            exception=None if error is None else JournaledError(error),
            usage=None if entry.usage is None else Usage(**json.loads(entry.usage)),
            resumed=True,
            calls=None if entry.calls is None else tuple(Call.from_row(row) for row in json.loads(entry.calls)),
        )

    def published_of(self, outcome: Outcome[Any]) -> list[tuple[str, Any]]:
        """What the task of a restored outcome published to channels, to replay (once)."""
        return self._published.pop((outcome.index, outcome.path), [])

    # -- recording ---------------------------------------------------------------------------

    def record(
        self, outcome: Outcome[Any], key: str, digest: str | None, published: list[tuple[str, Any]] | None = None
    ) -> asyncio.Future[None]:
        """Queue the outcome, with what its task published to channels; the future is done once
        it is durable (or the write failed)."""
        if self._failure is not None:
            raise JournalFailed(self._failure_message()) from self._failure
        value_json, value_pickle = encode(outcome.value) if outcome.status is Status.SUCCEEDED else (None, None)
        error = outcome.error  # its message is redacted already (ErrorInfo.of)
        self._batch.append(
            Entry(
                key,
                outcome.index,
                outcome.path,
                outcome.status.value,
                value_json,
                value_pickle,
                None if error is None else error.type,
                None if error is None else error.message,
                None if outcome.reason is None else redact(outcome.reason),
                outcome.attempts,
                outcome.start,
                outcome.end,
                None if outcome.usage is None else json.dumps(asdict(outcome.usage)),
                digest,
                None if not published else redact(_to_json([list(p) for p in published]).decode()),
                None if outcome.calls is None else json.dumps([call.as_row() for call in outcome.calls]),
            )
        )
        flushed = self._flushed
        if flushed is None:
            flushed = self._flushed = asyncio.get_running_loop().create_future()
            self._wake.set()
        return flushed

    async def _write_batches(self) -> None:
        beat = self.lease.ttl / 3  # a lease outlives two missed heartbeats
        last = time.monotonic()
        while True:
            try:
                async with asyncio.timeout(min(beat, CANCEL_POLL)):
                    await self._wake.wait()
            except TimeoutError:
                if self._failure is None and time.monotonic() - last >= beat:
                    await self._heartbeat()
                    last = time.monotonic()
                elif self._failure is None and self.on_cancel is not None:
                    await self._look_for_cancel()
                continue
            last = time.monotonic()
            self._wake.clear()
            while self._batch:
                batch, flushed = self._batch, self._flushed
                self._batch, self._flushed = [], None
                assert flushed is not None
                try:
                    await self.store.write(self.run_id, batch, self._renewal(len(batch)))
                    self._cancel_if_asked()
                except Exception as exc:
                    self._failure = exc
                    flushed.set_exception(JournalFailed(self._failure_message()))
                    flushed.exception()  # the tasks awaiting it raise it; mark it retrieved
                    continue
                self.written += len(batch)
                flushed.set_result(None)
            if self._closing:
                return

    def _renewal(self, batch: int = 0) -> Callable[[RunRecord], RunRecord]:
        token, usage, journaled = self.lease.token, asdict(self._spent()), self.written + batch

        def change(record: RunRecord) -> RunRecord:
            renewed = renew(record, token, time.time(), usage)
            self._cancel_seen = self._cancel_seen or cancel_requested(renewed)
            if not renewed.attempts:  # a record written without a lease
                return renewed
            # How many entries this attempt has journaled: the timeline places entries by it.
            return replace(renewed, attempts=(*renewed.attempts[:-1], renewed.attempts[-1] | {"journaled": journaled}))

        return change

    async def _heartbeat(self) -> None:
        try:
            await self.store.write(self.run_id, [], self._renewal())
            self._cancel_if_asked()
        except Exception as exc:  # the next task to finish reports it, and the run stops
            self._failure = exc

    async def _look_for_cancel(self) -> None:
        try:
            record = await self.store.get_run(self.run_id)
        except Exception as exc:  # as for a heartbeat: the next task to finish reports it
            self._failure = exc
            return
        self._cancel_seen = record is not None and cancel_requested(record)
        self._cancel_if_asked()

    def _cancel_if_asked(self) -> None:
        on_cancel = self.on_cancel
        if self._cancel_seen and on_cancel is not None:
            self.on_cancel = None
            on_cancel()

    def _failure_message(self) -> str:
        exc = self._failure
        return (
            f"the journal could not write to {self.store.url}: {type(exc).__name__}: {exc}; the run stopped "
            f"rather than report outcomes it could not keep. What was journaled is kept: once the store "
            f"works again, resume with resume={self.run_id!r} (or `fanfold runs resume {self.run_id}`)"
        )


CANCEL_POLL = 1.0  # seconds between looks for a cancel request while no batch is written


def request_cancel(record: RunRecord) -> RunRecord:
    """The record with a request to cancel its current attempt (the process running it sees the
    request within :data:`CANCEL_POLL` seconds and cancels the run). Raises :class:`UsageError`
    for a run that is not running."""
    if record.status != "running" or not record.attempts or record.attempts[-1].get("ended") is not None:
        raise UsageError(f"run {record.run_id!r} is {record.status}, not running: there is nothing to cancel")
    return replace(record, attempts=(*record.attempts[:-1], record.attempts[-1] | {"cancel_requested": time.time()}))


def cancel_requested(record: RunRecord) -> bool:
    """True when someone asked to cancel the run's current attempt."""
    return bool(record.attempts) and record.attempts[-1].get("cancel_requested") is not None


def _duplicate(ctx: Context, key: str, label: Hashable, other: int) -> Outcome[Any]:
    exc = UsageError(
        f"inputs {other} and {ctx.index} of the fan-out at {ctx.parent.path if ctx.parent else ''!r} have the same "
        f"key {label!r} (journal key {key!r}); a journal keeps one outcome per key, so input {ctx.index} was not "
        "run: give every input a distinct key"
    )
    error = ErrorInfo.of(exc)
    return Outcome(ctx.index, Status.FAILED, None, label, ctx.path, 0, error=error, exception=exc)


def task_key(ctx: Context, key: Hashable | None) -> str:
    """The task's journal key: its path, with the fan-out's ``key`` for the input (when given)
    in place of the position, so that a resumed run finds an input wherever it now stands."""
    if key is None:
        return ctx.path
    parent = ctx.parent.path if ctx.parent is not None else ""
    segment = f"{ctx.kind}{{{key!r}}}"
    return f"{parent}/{segment}" if parent else segment


def digest(value: Any) -> str:
    """A short, stable fingerprint of an input (its JSON form)."""
    return hashlib.blake2b(_to_json(value), digest_size=10).hexdigest()


def encode(value: Any) -> tuple[str, bytes | None]:
    """The value as JSON text, and as a pickle when JSON would not give it back as it was."""
    text = _to_json(value).decode()
    secrets = known()
    if secrets and any(secret in text for secret in secrets):
        return redact(text), None  # a value that holds a secret is kept redacted, and never pickled
    if _is_plain(value):
        return text, None
    try:
        return text, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # not picklable (it holds a lock, a socket): a resumed run gets the JSON form
        return text, None


def _to_json(value: Any) -> bytes:
    # Imported here: pydantic-core costs ~50 ms to import, and only a run with a store needs it.
    from pydantic_core import to_json

    return to_json(value, serialize_unknown=True)


def decode(entry: Entry) -> Any:
    """The entry's value as it was journaled, by whichever fanfold version journaled it."""
    if entry.value_pickle is not None:
        return _Unpickler(io.BytesIO(entry.value_pickle)).load()
    return None if entry.value_json is None else json.loads(entry.value_json)


# Where fanfold's private modules went (old -> new), so that a value journaled before a move
# restores after it. Values journaled since name the public module (`fanfold.TeamResult`).
MOVED_MODULES = {
    "fanfold._calls": "fanfold._llm._model_call",
    "fanfold._llm": "fanfold._llm._agent",
    "fanfold._providers": "fanfold._llm._providers",
    "fanfold._team": "fanfold._teams._team",
    "fanfold._plan": "fanfold._teams._plan",
    "fanfold._dataset": "fanfold._teams._dataset",
    "fanfold._schedule": "fanfold._teams._schedule",
    "fanfold._delegate": "fanfold._teams._delegate",
    "fanfold._cli": "fanfold._cli._app",
    "fanfold._cli_runs": "fanfold._cli._runs",
    "fanfold._batch": "fanfold._cli._batch_files",
    "fanfold._batch_run": "fanfold._cli._jobs",
    "fanfold._pipeline": "fanfold._cli._pipeline",
    "fanfold._pipeline_schema": "fanfold._cli._pipeline_schema",
    "fanfold._store._base": "fanfold._records",
    "fanfold._runtime": "fanfold._task",
}


class _Unpickler(pickle.Unpickler):
    """Finds a class a pickle names in a private module that has since moved: through
    :data:`MOVED_MODULES`, or else by its name among the package's exports.

    The private module (moved or not) is tried before the export of the same name, because the
    two may differ: ``fanfold._progress.Tally`` is not ``fanfold.Tally``.
    """

    def find_class(self, module: str, name: str) -> Any:
        if not module.startswith("fanfold._"):
            return super().find_class(module, name)
        try:
            return super().find_class(MOVED_MODULES.get(module, module), name)
        except (ImportError, AttributeError):
            package = sys.modules["fanfold"]  # loaded before any of its modules; no import, no cycle
            if name not in package.__all__:
                raise
            return getattr(package, name)


def _is_plain(value: Any) -> bool:
    """True when JSON gives the value back equal and of the same types."""
    if type(value) in _PLAIN_SCALARS:
        return True
    if type(value) is list:
        return all(_is_plain(v) for v in value)
    if type(value) is dict:
        return all(type(k) is str and _is_plain(v) for k, v in value.items())
    return False


def describe(agent: Any) -> str:
    """The shape of a spec, for the run record: ``map(vote(llm openai:gpt-5-mini))``. A resumed
    run must have the same shape (prompts and limits may change)."""
    if not is_composite(agent) or not is_dataclass(agent):
        return agent_name(agent)
    parts: list[str] = []
    for f in fields(agent):
        value = getattr(agent, f.name)
        for item in value if isinstance(value, tuple) else (value,):
            child = item if hasattr(item, "run") else getattr(item, "agent", None)  # a team's member
            if child is not None and hasattr(child, "run") and not isinstance(child, type):
                parts.append(describe(child))
    return f"{agent_name(agent)}({', '.join(parts)})"


async def open_journal(
    store: Store,
    run_id: str,
    name: str,
    config: dict[str, Any],
    resume: bool,
    spent: Callable[[], Usage] = Usage,
    *,
    take_over: bool = False,
) -> Journal:
    """Record the run (or find it, to resume it), take its lease, and load what is journaled.
    Raises :class:`~fanfold.RunOwned` when another live process runs it (with ``take_over``:
    when that process is alive on this host)."""
    await store.open()
    lease = Lease.new(time.time())
    if not resume:
        await store.create_run(first(RunRecord(run_id, name, config=config), lease))
        return Journal(store, run_id, lease=lease, spent=spent)
    record = await store.get_run(run_id)
    if record is None:
        raise UsageError(
            f"resume={run_id!r}: {store.url} has no such run; list its runs with `fanfold runs list --store "
            f"{store.url}`, or start a new run without resume="
        )
    shape, was = config.get("spec"), record.config.get("spec")
    if was is not None and shape != was:
        raise UsageError(
            f"resume={run_id!r}: the run was {was}, and this spec is {shape}; resume it with the same pipeline "
            "(prompts and limits may change, its shape may not), or start a new run"
        )
    # Taken before the entries are read: what a second process would run is decided by one owner.
    await store.change_run(run_id, lambda r: take(r, lease, time.time(), take_over=take_over))
    restored = {entry.key: entry async for entry in store.entries(run_id)}
    return Journal(store, run_id, restored, lease=lease, spent=spent)
