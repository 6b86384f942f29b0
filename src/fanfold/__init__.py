"""fanfold: run AI agents in parallel, governed.

>>> import fanfold as ff
>>> ff.run_sync(ff.map(str.upper), ["a", "b"]).output
['A', 'B']
"""

from typing import TYPE_CHECKING, Any

from fanfold import _exports, events
from fanfold._agent import Agent, FunctionAgent, agent
from fanfold._backend import Backend, TaskInfo, WorkerLost
from fanfold._context import Channel, Context
from fanfold._errors import (
    BudgetExhausted,
    FanfoldError,
    FanoutFailed,
    JournalFailed,
    PlanRejected,
    RaceFailed,
    Retry,
    RunError,
    RunFailed,
    RunOwned,
    Signal,
    Skip,
    TaskTimeout,
    UsageError,
    VoteFailed,
)
from fanfold._governor import RateLimit
from fanfold._guard import Blocked, guard
from fanfold._hedge import Hedge
from fanfold._limits import Admission, Limiter, Limits
from fanfold._map_reduce import map_reduce
from fanfold._outcome import ErrorInfo, Outcome, Status, Summary
from fanfold._patterns import Given, Pattern, map, parallel, race, sequence, with_input  # noqa: A004 - ff.map is the pattern
from fanfold._policy import Collect, FailFast, FailurePolicy, MaxFailureRate, MaxFailures, Quorum, Tally, Verdict
from fanfold._records import Entry as JournalEntry
from fanfold._records import RunRecord, Store
from fanfold._retry import RetryPolicy, Timeouts
from fanfold._run import Result, Run, RunStatus, as_completed, run, start
from fanfold._scope import scope
from fanfold._sync import as_completed_sync, run_sync
from fanfold._tracing import Tracing
from fanfold._usage import Budget, Price, Usage
from fanfold._vote import AtLeast, Majority, VoteRule, vote

if TYPE_CHECKING:  # the wings, loaded on first use (see _LAZY); type checkers see them as imported
    from fanfold._adapters._adapt import adapt
    from fanfold._adapters._base import ForeignAgentError
    from fanfold._adapters._clients import anthropic_client, openai_client
    from fanfold._backends._processes import Processes
    from fanfold._backends._ray import Ray
    from fanfold._llm._agent import LLMAgent, llm
    from fanfold._observe._dashboard import serve_dashboard
    from fanfold._observe._timeline import write_timeline as timeline
    from fanfold._shared._redis_limiter import RedisLimiter
    from fanfold._store._memory import MemoryStore
    from fanfold._store._postgres import PostgresStore
    from fanfold._store._sqlite import SQLiteStore
    from fanfold._teams._dataset import Split
    from fanfold._teams._plan import Plan, PlanRequest, Subtask, TeamCaps
    from fanfold._teams._team import Brief, TeamResult, member, team

__version__ = "0.1.0"

# Public names from the wings: `import fanfold` loads none of them (nor pydantic-ai, an HTTP
# client or a database driver); the first use of a name imports its wing.
_LAZY = {
    "ForeignAgentError": "fanfold._adapters._base:ForeignAgentError",
    "adapt": "fanfold._adapters._adapt:adapt",
    "anthropic_client": "fanfold._adapters._clients:anthropic_client",
    "openai_client": "fanfold._adapters._clients:openai_client",
    "LLMAgent": "fanfold._llm._agent:LLMAgent",
    "llm": "fanfold._llm._agent:llm",
    "MemoryStore": "fanfold._store._memory:MemoryStore",
    "PostgresStore": "fanfold._store._postgres:PostgresStore",
    "RedisLimiter": "fanfold._shared._redis_limiter:RedisLimiter",
    "SQLiteStore": "fanfold._store._sqlite:SQLiteStore",
    "Split": "fanfold._teams._dataset:Split",
    "Plan": "fanfold._teams._plan:Plan",
    "PlanRequest": "fanfold._teams._plan:PlanRequest",
    "Subtask": "fanfold._teams._plan:Subtask",
    "TeamCaps": "fanfold._teams._plan:TeamCaps",
    "Brief": "fanfold._teams._team:Brief",
    "TeamResult": "fanfold._teams._team:TeamResult",
    "member": "fanfold._teams._team:member",
    "team": "fanfold._teams._team:team",
    "Processes": "fanfold._backends._processes:Processes",
    "Ray": "fanfold._backends._ray:Ray",
    "serve_dashboard": "fanfold._observe._dashboard:serve_dashboard",
    "timeline": "fanfold._observe._timeline:write_timeline",
}

__all__ = [
    "Admission",
    "Agent",
    "AtLeast",
    "Backend",
    "Blocked",
    "Brief",
    "Budget",
    "BudgetExhausted",
    "Channel",
    "Collect",
    "Context",
    "ErrorInfo",
    "FailFast",
    "FailurePolicy",
    "FanfoldError",
    "FanoutFailed",
    "ForeignAgentError",
    "FunctionAgent",
    "Given",
    "Hedge",
    "JournalEntry",
    "JournalFailed",
    "LLMAgent",
    "Limiter",
    "Limits",
    "Majority",
    "MaxFailureRate",
    "MaxFailures",
    "MemoryStore",
    "Outcome",
    "Pattern",
    "Plan",
    "PlanRejected",
    "PlanRequest",
    "PostgresStore",
    "Price",
    "Processes",
    "Quorum",
    "RaceFailed",
    "RateLimit",
    "Ray",
    "RedisLimiter",
    "Result",
    "Retry",
    "RetryPolicy",
    "Run",
    "RunError",
    "RunFailed",
    "RunOwned",
    "RunRecord",
    "RunStatus",
    "SQLiteStore",
    "Signal",
    "Skip",
    "Split",
    "Status",
    "Store",
    "Subtask",
    "Summary",
    "Tally",
    "TaskInfo",
    "TaskTimeout",
    "TeamCaps",
    "TeamResult",
    "Timeouts",
    "Tracing",
    "Usage",
    "UsageError",
    "Verdict",
    "VoteFailed",
    "VoteRule",
    "WorkerLost",
    "__version__",
    "adapt",
    "agent",
    "anthropic_client",
    "as_completed",
    "as_completed_sync",
    "events",
    "guard",
    "llm",
    "map",
    "map_reduce",
    "member",
    "openai_client",
    "parallel",
    "race",
    "run",
    "run_sync",
    "scope",
    "sequence",
    "serve_dashboard",
    "start",
    "team",
    "timeline",
    "vote",
    "with_input",
]

_exports.adopt(globals(), __name__, [name for name in __all__ if name not in _LAZY])

if not TYPE_CHECKING:  # hidden from type checkers, which would take any name as valid through it

    def __getattr__(name: str) -> Any:
        return _exports.load(__name__, _LAZY, name)


def __dir__() -> list[str]:
    return sorted({*__all__, *(name for name in globals() if name.startswith("__"))})
