"""The typed events a run emits, for ``on_event`` callbacks and ``Run.events()``.

Each carries ``run_id``, ``path`` (the task's place in the tree, ``""`` for the run itself) and
``at`` (seconds since the run started). The five ``Task*`` events that end a task derive from
:class:`TaskFinished` and carry its :class:`~fanfold.Outcome`. :class:`AgentEvent` is what agents report themselves
with ``ctx.emit(name, **data)``.
"""

from fanfold import _exports
from fanfold._events import (
    AgentEvent,
    Event,
    FanoutStarted,
    HedgeStarted,
    HedgeWon,
    ModelCalled,
    RunFinished,
    RunStarted,
    TaskCancelled,
    TaskFailed,
    TaskFinished,
    TaskQueued,
    TaskRetrying,
    TaskSkipped,
    TaskStarted,
    TaskSucceeded,
    TaskTimedOut,
    Throttled,
)

__all__ = [
    "AgentEvent",
    "Event",
    "FanoutStarted",
    "HedgeStarted",
    "HedgeWon",
    "ModelCalled",
    "RunFinished",
    "RunStarted",
    "TaskCancelled",
    "TaskFailed",
    "TaskFinished",
    "TaskQueued",
    "TaskRetrying",
    "TaskSkipped",
    "TaskStarted",
    "TaskSucceeded",
    "TaskTimedOut",
    "Throttled",
]

_exports.adopt(globals(), __name__, __all__)
