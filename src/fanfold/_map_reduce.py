"""Split, map in parallel, reduce; hierarchically when the results are too many for one reducer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fanfold._agent import Agent
from fanfold._context import Context
from fanfold._errors import UsageError
from fanfold._fanout import Fanout
from fanfold._patterns import Map, Pattern, Step, as_step, as_worker, check_policy, check_window, fed
from fanfold._policy import Collect, FailFast, FailurePolicy
from fanfold._task import run_step


@dataclass(frozen=True, slots=True, eq=False)
class MapReduce(Pattern):
    split: Agent | None
    mapper: Agent
    reducer: Step
    fan_in: int
    policy: FailurePolicy = field(default_factory=Collect)
    window: int | None = None
    name: str = "map_reduce"

    async def run(self, input: Any, ctx: Context, /) -> Any:
        parts = input
        if self.split is not None:
            parts = await run_step(self.split, input, ctx.child("split", 0, "split"))
        mapped = await Map(self.mapper, self.policy, self.window).run(parts, ctx)
        level = 0
        while len(mapped) > self.fan_in:
            groups = [mapped[i : i + self.fan_in] for i in range(0, len(mapped), self.fan_in)]
            # A reducer that fails would silently drop a whole group, so reductions fail fast.
            fanout = Fanout(
                ctx,
                "reduce",
                (fed(self.reducer, input, g) for g in groups),
                policy=FailFast(),
                total=len(groups),
                window=self.window,
                labels=[f"{level}.{j}" for j in range(len(groups))],
                primary=False,
            )
            mapped = [o.value for o in await fanout.run()]
            level += 1
        reducer, given = fed(self.reducer, input, mapped)
        return await run_step(reducer, given, ctx.child("reduce", 0, "final"))


def map_reduce(
    *,
    map: Any,
    reduce: Any,
    split: Any = None,
    fan_in: int = 10,
    policy: FailurePolicy | None = None,
    window: int | None = None,
) -> MapReduce:
    """Split the input into parts, map an agent over them in parallel, and reduce the results.

    ``split`` (a function or an agent; default: the input is already the parts) returns the
    parts. ``reduce`` receives a list of mapped results, in order; when there are more than
    ``fan_in`` of them it is applied to groups of ``fan_in`` in parallel, level after level, until
    one reduction is left. Wrapped in :func:`with_input`, ``reduce`` receives the map-reduce's
    input (before the split) too, on every level. ``policy`` governs the map step (default:
    collect failures, reduce what succeeded).

    >>> ff.run_sync(ff.map_reduce(split=str.split, map=len, reduce=sum), "to be or not").output
    9
    """
    if isinstance(fan_in, bool) or not isinstance(fan_in, int) or fan_in < 2:
        raise UsageError(f"map_reduce(fan_in={fan_in!r}): pass how many results one reducer takes, a whole number >= 2")
    policy = policy or Collect()
    check_policy("map_reduce", policy)
    check_window("map_reduce", window)
    return MapReduce(
        None if split is None else as_worker(split, "map_reduce(split=...)"),
        as_worker(map, "map_reduce(map=...)"),
        as_step(reduce, "map_reduce(reduce=...)"),
        fan_in,
        policy,
        window,
    )
