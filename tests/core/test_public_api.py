"""The public surface is pinned: adding or removing a name is a deliberate change."""

import pickle
import sys
import types
from typing import Any

import pytest

import fanfold as ff
import fanfold.events
import fanfold.testing

PUBLIC = [
    "Admission", "Agent", "Channel", "Collect", "Context", "ErrorInfo", "FailFast", "FailurePolicy", "FanfoldError",
    "FanoutFailed", "FunctionAgent", "Limiter", "Limits", "MaxFailureRate", "MaxFailures", "Outcome",
    "Pattern", "Quorum", "RaceFailed", "Result", "Retry", "RetryPolicy", "Run", "RunError", "RunFailed",
    "RunStatus", "Signal", "Skip", "Status", "Summary", "Tally", "TaskTimeout", "Timeouts", "UsageError",
    "Verdict", "VoteFailed", "__version__", "agent", "as_completed", "as_completed_sync", "events", "map", "map_reduce",
    "parallel", "race", "run", "run_sync", "scope", "sequence", "start", "vote",
    # Patterns: votes over several agents and their rules, guards, and the input passed along
    "AtLeast", "Blocked", "Given", "Majority", "VoteRule", "guard", "with_input",
    # LLM agents and the provider governor
    "Budget", "BudgetExhausted", "Hedge", "LLMAgent", "Price", "RateLimit", "Usage", "llm",
    # Durable runs
    "JournalEntry", "JournalFailed", "MemoryStore", "RunOwned", "PostgresStore", "RunRecord", "SQLiteStore", "Store",
    # Seeing a run: traces (OpenTelemetry), the timeline file, the live dashboard
    "Tracing", "serve_dashboard", "timeline",
    # One governor shared by several processes
    "RedisLimiter",
    # Teams
    "Brief", "Plan", "PlanRejected", "PlanRequest", "Split", "Subtask", "TeamCaps", "TeamResult", "member", "team",
    # Backends: where leaf work runs
    "Backend", "Processes", "Ray", "TaskInfo", "WorkerLost",
    # Other frameworks' agents
    "ForeignAgentError", "adapt", "anthropic_client", "openai_client",
]  # fmt: skip


def test_all_is_pinned() -> None:
    assert sorted(ff.__all__) == sorted(PUBLIC)


def test_every_public_name_exists() -> None:
    for name in ff.__all__:
        assert hasattr(ff, name), name


def test_events_module_exports_typed_events() -> None:
    for name in fanfold.events.__all__:
        assert isinstance(getattr(fanfold.events, name), type)
    assert issubclass(fanfold.events.TaskSucceeded, fanfold.events.TaskFinished)


def test_exception_families() -> None:
    assert issubclass(ff.UsageError, ff.FanfoldError)
    assert issubclass(ff.UsageError, ValueError)
    run_errors = (ff.FanoutFailed, ff.VoteFailed, ff.RaceFailed, ff.TaskTimeout, ff.RunFailed, ff.BudgetExhausted)
    for run_error in (*run_errors, ff.JournalFailed, ff.PlanRejected):
        assert issubclass(run_error, ff.RunError)
    assert issubclass(ff.TaskTimeout, TimeoutError)
    assert issubclass(ff.RunOwned, ff.UsageError)  # a resume refused, not a run that failed
    for signal in (ff.Retry, ff.Skip):
        assert issubclass(signal, ff.Signal)


def public_objects(module: Any) -> list[tuple[str, Any]]:
    """The classes and functions a public module exports (not its submodules, strings or agent instances)."""
    objects = [(name, getattr(module, name)) for name in module.__all__]
    return [(name, obj) for name, obj in objects if isinstance(obj, type | types.FunctionType)]


@pytest.mark.parametrize("module", [ff, fanfold.events, fanfold.testing], ids=lambda m: m.__name__)
def test_public_names_belong_to_their_public_module(module: Any) -> None:
    objects = public_objects(module)
    assert len(objects) > 10
    for name, obj in objects:
        assert obj.__module__ == module.__name__, name
        assert obj.__qualname__ == name, name  # an alias (JournalEntry) takes its public name
        assert getattr(sys.modules[obj.__module__], obj.__qualname__) is obj, name


def test_reprs_name_the_package() -> None:
    assert repr(ff.Limits) == "<class 'fanfold.Limits'>"
    assert repr(ff.TeamResult) == "<class 'fanfold.TeamResult'>"
    assert repr(fanfold.events.TaskSucceeded) == "<class 'fanfold.events.TaskSucceeded'>"
    assert repr(fanfold.testing.SimulatedProvider) == "<class 'fanfold.testing.SimulatedProvider'>"
    assert ff.JournalEntry.__name__ == "JournalEntry"


PICKLABLE: dict[str, Any] = {
    "Usage": lambda: ff.Usage(requests=1, input_tokens=3),
    "Outcome": lambda: ff.run_sync(ff.map(str.upper), ["a"]).outcomes[0],
    "Summary": lambda: ff.run_sync(ff.map(str.upper), ["a"]).summary,
    "Status": lambda: ff.Status.TIMED_OUT,
    "Limits": lambda: ff.Limits(concurrency=3),
    "RetryPolicy": lambda: ff.RetryPolicy(retry_on=(ValueError,)),
    "Budget": lambda: ff.Budget(tokens=10),
    "TeamCaps": lambda: ff.TeamCaps(),
    "Brief": lambda: ff.Brief(task="t", data=[1, 2]),
    "JournalEntry": lambda: ff.JournalEntry(
        "k", 0, "map[0]", "succeeded", "1", None, None, None, None, 1, 0.0, 1.0, None, None
    ),
    "map": lambda: ff.map,
}


@pytest.mark.parametrize("name", PICKLABLE)
def test_pickles_name_the_package_and_round_trip(name: str) -> None:
    value = PICKLABLE[name]()
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    assert pickle.loads(data) == value
    assert b"fanfold._" not in data
    assert b"fanfold" in data


def test_exceptions_pickle_under_the_package_name() -> None:
    data = pickle.dumps(ff.TaskTimeout("x"))
    back = pickle.loads(data)
    assert type(back) is ff.TaskTimeout
    assert back.args == ("x",)
    assert b"fanfold._" not in data


def test_dir_lists_the_lazy_names() -> None:
    listed = dir(ff)
    for name in ff.__all__:
        assert name in listed, name
    assert "SimulatedProvider" in dir(fanfold.testing)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="module 'fanfold' has no attribute 'Limts'"):
        ff.Limts  # type: ignore[attr-defined]
