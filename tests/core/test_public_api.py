"""The public surface is pinned: adding or removing a name is a deliberate change."""

import fanfold as ff
import fanfold.events

PUBLIC = [
    "Admission", "Agent", "Channel", "Collect", "Context", "ErrorInfo", "FailFast", "FailurePolicy", "FanfoldError",
    "FanoutFailed", "FunctionAgent", "Limiter", "Limits", "MaxFailureRate", "MaxFailures", "Outcome",
    "Pattern", "Quorum", "RaceFailed", "Result", "Retry", "RetryPolicy", "Run", "RunError", "RunFailed",
    "RunStatus", "Signal", "Skip", "Status", "Summary", "Tally", "TaskTimeout", "Timeouts", "UsageError",
    "Verdict", "VoteFailed", "__version__", "agent", "as_completed", "as_completed_sync", "events", "map", "map_reduce",
    "parallel", "race", "run", "run_sync", "sequence", "start", "vote",
    # LLM agents and the provider governor
    "Budget", "BudgetExhausted", "LLMAgent", "Price", "RateLimit", "Usage", "llm",
    # Durable runs
    "JournalEntry", "JournalFailed", "MemoryStore", "PostgresStore", "RunRecord", "SQLiteStore", "Store",
    # Teams
    "Brief", "Plan", "PlanRejected", "PlanRequest", "Split", "Subtask", "TeamCaps", "TeamResult", "member", "team",
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
    for signal in (ff.Retry, ff.Skip):
        assert issubclass(signal, ff.Signal)
