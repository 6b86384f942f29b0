"""One owner per run: the lease a live process holds on its run, in the store.

A run is executed by one process at a time. The process that creates or resumes a run takes its
lease (a compare-and-set in one transaction of the store: :meth:`fanfold._records.Store.change_run`
applies :func:`take`), renews it while it runs (the journal's writer does, every third of the
lease's time to live, checkpointing the attempt's usage in the same transaction: :func:`renew`),
and gives it up when the run ends (:func:`finish`). A second process is refused while the lease
is live (:class:`~fanfold.RunOwned`, naming the owner); once the owner dies, its lease lapses
within ``FANFOLD_LEASE_TTL`` seconds (default 30), the run shows as ``interrupted``
(:func:`seen`), and a resume takes it over. A resume with ``take_over`` does not wait for the
lapse: it takes a live lease unless its holder is a live process on this host
(:func:`holder_alive`).

The functions here are pure: a record and the time in, a record out. The stores apply them
atomically, and tests drive them with a fake clock.
"""

from __future__ import annotations

import dataclasses
import math
import os
import secrets
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fanfold._errors import RunOwned, UsageError

if TYPE_CHECKING:
    from fanfold._records import RunRecord

DEFAULT_TTL = 30.0
TTL_VARIABLE = "FANFOLD_LEASE_TTL"
RUNNING, INTERRUPTED = "running", "interrupted"


@dataclass(frozen=True, slots=True)
class Lease:
    """Who owns a run, and until when (seconds since the epoch) unless renewed."""

    token: str
    host: str
    pid: int
    acquired_at: float
    expires_at: float
    ttl: float  # seconds each renewal extends it by

    @classmethod
    def new(cls, now: float, ttl: float | None = None) -> Lease:
        """A lease for this process, taken at ``now``."""
        ttl = ttl or lease_ttl()
        return cls(secrets.token_hex(16), socket.gethostname(), os.getpid(), now, now + ttl, ttl)

    def live(self, now: float) -> bool:
        return now < self.expires_at

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def lease_ttl() -> float:
    """Seconds a lease lives unless renewed: ``FANFOLD_LEASE_TTL``, or 30."""
    text = os.environ.get(TTL_VARIABLE)
    if text is None or not text.strip():
        return DEFAULT_TTL
    try:
        ttl = float(text)
    except ValueError:
        ttl = math.nan
    if not math.isfinite(ttl) or ttl <= 0:
        raise UsageError(
            f"{TTL_VARIABLE}={text!r} is not a number of seconds; set it to how long a dead process keeps its "
            f"run (e.g. 30), or unset it for the default {DEFAULT_TTL:g}"
        )
    return ttl


def owned(record: RunRecord, lease: Lease) -> RunOwned:
    """The error for a run that ``lease``'s owner holds."""
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(lease.acquired_at))
    return RunOwned(
        f"run {record.run_id!r} is being run by process {lease.pid} on host {lease.host!r} (since {since}); "
        f"one process runs a run at a time. Wait for it to end; if that process is dead, its lease lapses within "
        f"{lease.ttl:g} seconds of its last heartbeat, and then `fanfold runs resume {record.run_id}` "
        f"(or resume={record.run_id!r}) takes the run over",
        lease,
    )


def _attempt(lease: Lease) -> dict[str, Any]:
    return {"started": lease.acquired_at, "ended": None, "status": RUNNING, "host": lease.host,
            "pid": lease.pid, "usage": {}}  # fmt: skip


def _close(record: RunRecord, status: str, ended: float) -> tuple[dict[str, Any], ...]:
    """The attempts with the current one (if any) ended."""
    if not record.attempts or record.attempts[-1].get("ended") is not None:
        return record.attempts
    return (*record.attempts[:-1], record.attempts[-1] | {"ended": ended, "status": status})


def first(record: RunRecord, lease: Lease) -> RunRecord:
    """A new run's record, owned by ``lease``."""
    return dataclasses.replace(record, status=RUNNING, lease=lease, attempts=(_attempt(lease),))


def holder_alive(lease: Lease) -> bool:
    """Whether the lease's holder is a live process on this host (a process on another host
    cannot be checked from here: it counts as not alive)."""
    if lease.host != socket.gethostname():
        return False
    try:
        os.kill(lease.pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def take(record: RunRecord, lease: Lease, now: float, *, take_over: bool = False) -> RunRecord:
    """The record with ``lease`` owning it, for a resume; raises :class:`RunOwned` while
    another live lease holds it, unless ``take_over`` and its holder is not a live process on
    this host. The attempt of an owner that died ends ``interrupted``."""
    held = record.lease
    if held is not None and held.live(now) and held.token != lease.token:
        if not take_over:
            raise owned(record, held)
        if holder_alive(held):
            raise RunOwned(
                f"run {record.run_id!r}: take_over refused, its owner, process {held.pid} on this host "
                f"({held.host!r}), is alive; stop that process first (`kill {held.pid}`), or wait for it to end",
                held,
            )
    ended = held.expires_at if held is not None else now
    return dataclasses.replace(
        record,
        status=RUNNING,
        lease=lease,
        attempts=(*_close(record, INTERRUPTED, min(ended, now)), _attempt(lease)),
        resumes=record.resumes + 1,
        updated_at=now,
    )


def renew(record: RunRecord, token: str, now: float, usage: dict[str, Any] | None) -> RunRecord:
    """The record with the lease ``token`` names renewed from ``now``, and the current attempt's
    usage checkpointed; raises :class:`RunOwned` when the lease is no longer ``token``'s (it
    lapsed and another process took the run over)."""
    held = record.lease
    if held is None or held.token != token:
        raise owned(record, held) if held is not None else _lost(record)
    attempts = record.attempts
    if usage is not None and attempts:
        attempts = (*attempts[:-1], attempts[-1] | {"usage": usage})
    return dataclasses.replace(
        record, lease=dataclasses.replace(held, expires_at=now + held.ttl), attempts=attempts, updated_at=now
    )


def finish(record: RunRecord, token: str, now: float, status: str, summary: dict[str, Any] | None,
           usage: dict[str, Any] | None) -> RunRecord:  # fmt: skip
    """The record of a run whose attempt ended with ``status``: the lease given up, the attempt
    closed with its ``usage``, and ``summary["usage"]`` the total over every attempt."""
    if record.lease is None or record.lease.token != token:
        raise owned(record, record.lease) if record.lease is not None else _lost(record)
    attempts = record.attempts
    if usage is not None and attempts:
        attempts = (*attempts[:-1], attempts[-1] | {"usage": usage})
    replaced = dataclasses.replace(record, lease=None, attempts=attempts)
    attempts = _close(replaced, status, now)
    if summary is not None:
        summary = summary | {"usage": total_usage(attempts), "attempts": len(attempts)}
    return dataclasses.replace(
        replaced, status=status, attempts=attempts, summary=record.summary if summary is None else summary,
        updated_at=now,
    )  # fmt: skip


def release(record: RunRecord, token: str, now: float, usage: dict[str, Any] | None) -> RunRecord:
    """The record of a run that stopped unfinished (its journal failed, its process is
    exiting): the lease given up, the attempt closed ``interrupted`` with its usage."""
    if record.lease is None or record.lease.token != token:
        return record  # another process owns it now: nothing of ours to give up
    attempts = record.attempts
    if usage is not None and attempts:
        attempts = (*attempts[:-1], attempts[-1] | {"usage": usage})
    replaced = dataclasses.replace(record, lease=None, attempts=attempts)
    return dataclasses.replace(
        replaced, status=INTERRUPTED, attempts=_close(replaced, INTERRUPTED, now), updated_at=now
    )


def seen(record: RunRecord, now: float) -> RunRecord:
    """The record as a reader should see it: a running run whose lease lapsed (or was given up
    without an ending) is interrupted. A record written without a lease (by a fanfold from
    before leases, or through the store's own API) is shown as it was written."""
    if record.status != RUNNING or not record.attempts or (record.lease is not None and record.lease.live(now)):
        return record
    return dataclasses.replace(record, status=INTERRUPTED, attempts=_close(record, INTERRUPTED, now))


def total_usage(attempts: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    """The usage of every attempt added up, field by field."""
    total: dict[str, Any] = {}
    for attempt in attempts:
        for name, value in (attempt.get("usage") or {}).items():
            total[name] = total.get(name, 0) + value
    return total


def _lost(record: RunRecord) -> RunOwned:
    return RunOwned(
        f"run {record.run_id!r} is no longer owned by this process (its lease lapsed or was given up); "
        f"`fanfold runs resume {record.run_id}` continues it",
        None,
    )
