"""A run's options, typed once for every entry point, and checked once when a run is made.

:class:`RunOptions` is what ``run``, ``start``, ``as_completed`` and their sync twins accept as
keywords (``**options: Unpack[RunOptions]``), so a type checker catches a misspelt option;
:func:`check_options` catches it at run time, and checks each value.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, fields
from os import PathLike
from typing import Any, TypedDict

from fanfold._backend import BackendOption, check_backend
from fanfold._errors import UsageError
from fanfold._events import Callback
from fanfold._hedge import Hedge, check_hedge
from fanfold._limits import Limiter, Limits, check_limiter_url
from fanfold._records import Store
from fanfold._retry import RetryPolicy, Timeouts
from fanfold._tracing import Tracing, as_tracing
from fanfold._usage import Budget


class RunOptions(TypedDict, total=False):
    """The options of ``ff.run``, ``ff.start``, ``ff.as_completed`` and their sync twins, each
    optional. ``ff.run``'s docstring says what each does."""

    limits: Limits | None
    retry: RetryPolicy | None
    timeouts: Timeouts | None
    deadline: float | None
    on_event: Callback | list[Callback] | None
    progress: bool
    keep: bool
    run_id: str | None
    limiter: Limiter | str | None
    budget: Budget | None
    store: Store | str | PathLike[str] | None
    resume: str | None
    take_over: bool
    metadata: dict[str, Any] | None
    trace: bool | Tracing | None
    backend: BackendOption
    hedge: Hedge | None
    batch_api: bool


class UnknownOption(UsageError, TypeError):
    """A keyword that is not a run option. A ``TypeError`` too, as Python's own "unexpected
    keyword argument" is."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """A run's options with their defaults, each value checked. Its fields are the keys of
    :class:`RunOptions` (a test pins that)."""

    limits: Limits | None = None
    retry: RetryPolicy | None = None
    timeouts: Timeouts | None = None
    deadline: float | None = None
    on_event: Callback | list[Callback] | None = None
    progress: bool = False
    keep: bool = True
    run_id: str | None = None
    limiter: Limiter | str | None = None
    budget: Budget | None = None
    store: Store | str | PathLike[str] | None = None
    resume: str | None = None
    take_over: bool = False
    metadata: dict[str, Any] | None = None
    trace: bool | Tracing | None = None
    backend: BackendOption = None
    hedge: Hedge | None = None
    batch_api: bool = False

    def __post_init__(self) -> None:
        as_tracing(self.trace)  # names a bad value
        check_backend(self.backend)
        check_hedge("run", self.hedge)
        if not isinstance(self.batch_api, bool):
            raise UsageError(f"batch_api={self.batch_api!r}: pass True to send ff.llm requests through the batch API")
        if self.limits is not None and not isinstance(self.limits, Limits):
            raise UsageError(f"limits={self.limits!r}: pass ff.Limits(concurrency=..., resources={{...}})")
        if self.retry is not None and not isinstance(self.retry, RetryPolicy):
            raise UsageError(f"retry={self.retry!r}: pass ff.RetryPolicy(retry_on=...)")
        if self.timeouts is not None and not isinstance(self.timeouts, Timeouts):
            raise UsageError(f"timeouts={self.timeouts!r}: pass ff.Timeouts(attempt=..., task=...)")
        if self.limiter is not None and not isinstance(self.limiter, Limiter):
            check_limiter_url(self.limiter)
        if self.budget is not None and not isinstance(self.budget, Budget):
            raise UsageError(f"budget={self.budget!r}: pass ff.Budget(tokens=..., cost=..., requests=...)")
        deadline = self.deadline
        if deadline is not None and (
            isinstance(deadline, bool) or not isinstance(deadline, int | float) or deadline <= 0
        ):
            raise UsageError(f"deadline={deadline!r}: pass the seconds the whole run may take, > 0")
        if self.resume is not None:
            if not isinstance(self.resume, str) or not self.resume:
                raise UsageError(f"resume={self.resume!r}: pass the run id of the run to resume, a string")
            if self.store is None:
                raise UsageError(f"resume={self.resume!r} needs the store that journaled the run: pass store=...")
            if self.run_id is not None and self.run_id != self.resume:
                raise UsageError(f"run_id={self.run_id!r} and resume={self.resume!r} differ; pass one of them")
        if not isinstance(self.take_over, bool):
            raise UsageError(f"take_over={self.take_over!r}: pass True or False")
        if self.take_over and self.resume is None:
            raise UsageError("take_over=True takes over a run being resumed: pass resume=<run id> with it")
        if self.metadata is not None:
            try:
                json.dumps(self.metadata)
            except (TypeError, ValueError) as exc:
                raise UsageError(
                    f"metadata={self.metadata!r}: pass JSON data (a dict of str, numbers, lists): {exc}"
                ) from exc

    @property
    def tracing(self) -> Tracing | None:
        return as_tracing(self.trace)

    @property
    def callbacks(self) -> list[Callback]:
        on_event = self.on_event
        return [] if on_event is None else list(on_event) if isinstance(on_event, list) else [on_event]


OPTION_NAMES: tuple[str, ...] = tuple(RunOptions.__annotations__)


def check_options(options: Mapping[str, Any]) -> Settings:
    """The options as :class:`Settings`; raises :class:`UnknownOption` for a keyword that is
    none, naming it and the option it likely meant."""
    unknown = [name for name in options if name not in RunOptions.__annotations__]
    if unknown:
        import difflib  # only on this error path

        name = unknown[0]
        close = difflib.get_close_matches(name, OPTION_NAMES, n=1)
        hint = f"did you mean {close[0]}=?" if close else f"the options are {', '.join(OPTION_NAMES)}"
        raise UnknownOption(f"{name}={options[name]!r}: fanfold runs have no option {name!r}; {hint}")
    return Settings(**options)


def signature_with_options(fn: Callable[..., Any]) -> inspect.Signature:
    """``fn``'s signature with its ``**options`` spelt out as the keyword parameters they are,
    with their defaults, so that ``help()`` and ``inspect.signature`` show them (annotations as
    the text they are written as, like the rest of the signature)."""
    options = [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type)
        for f in fields(Settings)
        if f.default is not MISSING
    ]
    own = inspect.signature(fn).parameters.values()
    return inspect.Signature(
        [p for p in own if p.kind is not inspect.Parameter.VAR_KEYWORD] + options,
        return_annotation=inspect.signature(fn).return_annotation,
    )
