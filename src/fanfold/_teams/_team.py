"""Teams: a leader plans the split and the assignments, the runtime runs them in parallel.

A team runs in three steps, each a task of the run with a stable path below the team's own:

1. ``plan[0]``: the leader answers a :class:`~fanfold.PlanRequest` with a
   :class:`~fanfold.Plan`. A plan that fails :func:`~fanfold._teams._plan.check_plan` goes back to the
   leader with the error as ``plan[1]``, and so on, at most ``caps.max_replans`` times.
2. ``<subtask>[i]``: every subtask run, each a child task of the team (run ``i`` of a split
   subtask is its part ``i``), started as soon as the subtasks it needs have finished
   (:class:`~fanfold._teams._schedule.Schedule`).
3. ``merge[0]``: the results are merged, unless the merge is a plain concatenation or vote.

In ``mode="delegate"`` the leader instead runs once as ``lead[0]``, with a ``delegate(member,
task)`` tool; every call of it is a child task ``<member>[n]``, and the calls of one answer run at
once (:mod:`fanfold._teams._delegate`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from fanfold._agent import Agent, FunctionAgent, agent_name, as_agent
from fanfold._context import Context
from fanfold._errors import PlanRejected, UsageError
from fanfold._outcome import Outcome, Status
from fanfold._patterns import Pattern, check_policy
from fanfold._policy import Collect, FailurePolicy
from fanfold._task import run_step
from fanfold._teams._crew import Directable
from fanfold._teams._dataset import DataInfo, describe, load
from fanfold._teams._delegate import delegate
from fanfold._teams._plan import (
    ID_PATTERN,
    PLANNING,
    RESERVED,
    Plan,
    PlanError,
    PlanRequest,
    Runs,
    TeamCaps,
    check_plan,
    json_text,
)
from fanfold._teams._schedule import Schedule, reason_of
from fanfold._vote import majority_of

T = TypeVar("T")

# The run's teams under way, by context: (how deep in teams, the depth cap that binds there).
_TEAMS = "fanfold.teams"
_RESERVE = 0.1  # under a run deadline, members stop when this share of the time left remains
_MERGES = ("concat", "vote", "leader")

SYNTHESIS = """Your team has worked on the task. Write the final answer from the results below, \
in the form asked of you. Say what is missing, if anything is."""


@dataclass(frozen=True, slots=True)
class Member:
    """A team member: an agent, the name the leader calls it by, and what it does."""

    agent: Agent
    name: str
    description: str


def member(agent: Any, *, name: str | None = None, description: str | None = None) -> Member:
    """A team member with a name and a description for the leader; by default the agent's name
    and its description (an LLM agent's instructions, a function's docstring).

    >>> ff.member(len, name="count", description="counts the items of a list").name
    'count'
    """
    resolved = as_agent(agent, "member")
    name = name or agent_name(resolved)
    _check_name(name, "member")
    return Member(resolved, name, description if description is not None else _description(resolved))


@dataclass(frozen=True, slots=True)
class Brief:
    """A team's input: the ``task``, and the ``data`` set to work on, held by reference (a list,
    an iterable, or a ``pathlib.Path`` to a .jsonl, .json or .csv file). A team given a string
    takes it as the task; given anything else, takes it as the data."""

    task: str
    data: Any = None


@dataclass(frozen=True, slots=True)
class TeamResult(Generic[T]):
    """What a team produced: the merged ``answer``; ``results``, every successful subtask run's
    value by its key (``"verify[3]"``), in plan order; ``missing``, the reason for every run
    that did not succeed; ``outcomes``, one per run; ``counts``, the runs by status (they add
    up to the plan's runs: each ended in exactly one outcome); the ``plan`` carried out
    (``None`` for a delegating team) and the errors of the plans ``rejected`` before it.

    A plan of more than 10,000 runs (``DETAIL``) keeps no ``outcomes`` (the list is empty), and
    its runs that were never started (the team stopped, or its deadline passed) are one entry
    of ``missing`` per subtask, keyed by their range: ``"check[9000:200000]"``. ``counts``
    always holds every run."""

    answer: T | None
    results: dict[str, Any]
    missing: dict[str, str]
    outcomes: list[Outcome[Any]]
    plan: Plan | None = None
    rejected: tuple[str, ...] = ()
    counts: dict[Status, int] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Every subtask run succeeded."""
        return not self.missing

    def __repr__(self) -> str:  # a team may make hundreds of runs: show their count, not them
        answer = repr(self.answer)
        answer = answer if len(answer) <= 80 else answer[:77] + "..."
        counts = ", ".join(f"{status.value}={n:,}" for status, n in self.counts.items())
        return f"TeamResult(answer={answer}, results=<{len(self.results)}>, missing=<{len(self.missing)}>, {counts})"


@dataclass(frozen=True, slots=True, eq=False)
class Team(Pattern):
    """A team; see :func:`team`. A composite: it holds no slot while its leader and members run."""

    leader: Agent
    members: tuple[Member, ...]
    merge: Agent | str | None = None
    caps: TeamCaps = field(default_factory=TeamCaps)
    policy: FailurePolicy = field(default_factory=Collect)
    mode: Literal["plan", "delegate"] = "plan"
    deadline: float | None = None
    name: str = "team"

    async def run(self, input: Any, ctx: Context, /) -> TeamResult[Any]:
        brief = input if isinstance(input, Brief) else Brief(input) if isinstance(input, str) else Brief("", input)
        if self.mode == "delegate" and brief.data is not None:
            raise UsageError(
                f"team {self.name!r} delegates by tool calls and takes a task, not a data set; "
                "use mode='plan' to have the leader split the data"
            )
        teams: dict[Context, tuple[int, int]] = ctx.run_state.services.setdefault(_TEAMS, {})
        teams[ctx] = self._depth(ctx, teams)
        try:
            began = ctx.run_state.clock()
            if self.mode == "delegate":
                assert isinstance(self.leader, Directable)  # team() makes sure of it
                answer, runs = await delegate(self, self.leader, brief.task, ctx, self._cutoff(ctx, began))
                return _result(answer, runs)
            return await self._planned(brief, ctx, began)
        finally:
            del teams[ctx]

    async def _planned(self, brief: Brief, ctx: Context, began: float) -> TeamResult[Any]:
        rows: list[Any] | None = None
        info: DataInfo | None = None
        if brief.data is not None:
            rows, source = load(brief.data)
            info = describe(rows, source)
        plan, runs, rejected = await self._plan(brief.task, info, rows, ctx)
        # The cutoff once the plan is ready: loading, describing and planning took their time.
        ran = await Schedule(self, ctx, runs, self._cutoff(ctx, began)).run()
        needed = {need for s in plan.subtasks for need in s.needs}
        finals = [pair for subtask, pairs in ran.values.items() if subtask not in needed for pair in pairs]
        answer = await self._merge(plan, brief.task, finals, ran.missing, ctx)
        return TeamResult(answer, ran.results, ran.missing, ran.outcomes, plan, rejected, ran.counts)

    async def _plan(
        self, task: str, info: DataInfo | None, rows: list[Any] | None, ctx: Context
    ) -> tuple[Plan, list[Runs], tuple[str, ...]]:
        """Ask the leader for a plan until one passes the checks, at most ``max_replans`` more
        times; each ask is the step ``plan[attempt]``."""
        planner = self.leader
        llm_leader = isinstance(planner, Directable)
        if isinstance(planner, Directable):  # asked for a Plan as structured output, from a prompt
            planner = planner.with_options(output_type=Plan, instructions=PLANNING, keep_prompt=False)
        members = {m.name: m for m in self.members}
        descriptions = {m.name: m.description for m in self.members}
        rejected: list[str] = []
        previous: Any = None
        for attempt in range(self.caps.max_replans + 1):
            error = rejected[-1] if rejected else None
            request = PlanRequest(task, descriptions, info, self.caps, attempt, error, previous)
            asked = request.prompt() if llm_leader else request
            previous = await run_step(planner, asked, ctx.child("plan", attempt))
            try:
                plan, runs = check_plan(previous, members=members, rows=rows, caps=self.caps, llm_leader=llm_leader)
            except PlanError as exc:
                rejected.append(str(exc))
                continue
            return plan, runs, tuple(rejected)
        raise PlanRejected(
            f"team {self.name!r}: the leader's plan was rejected {len(rejected)} times; the last time: {rejected[-1]}",
            rejected,
        )

    async def _merge(
        self, plan: Plan, task: str, finals: list[tuple[str, Any]], missing: dict[str, str], ctx: Context
    ) -> Any:
        """Merge the values of the final subtasks' successful runs (``finals``, by key)."""
        values = [value for _, value in finals]
        how = self.merge if self.merge is not None else plan.merge
        if not isinstance(how, str):
            return await run_step(how, values, ctx.child("merge", 0))
        if how == "concat":
            return values
        if how == "vote":
            return majority_of(values) if values else None
        if how == "leader":
            assert isinstance(self.leader, Directable)
            synthesizer = self.leader.with_options(instructions=SYNTHESIS, keep_prompt=False)
            prompt = _synthesis_prompt(task, finals, missing, plan.merge_instruction)
            return await run_step(synthesizer, prompt, ctx.child("merge", 0))
        agent, value = self.assign(how, values, plan.merge_instruction)
        return await run_step(agent, value, ctx.child("merge", 0))

    # -- what every step shares ---------------------------------------------------------------

    def assign(self, member: str, value: Any, instruction: str) -> tuple[Agent, Any]:
        """The agent and input for one run of the member named ``member``. When the instruction
        is not the input itself, an LLM member gets it as instructions added to its own, and a
        team member as the task of a :class:`Brief` with the input as its data; other members
        get the input."""
        agent = next(m.agent for m in self.members if m.name == member)
        if not instruction or (isinstance(value, str) and value == instruction):
            return agent, value
        if isinstance(agent, Team):
            return agent, value if isinstance(value, Brief) else Brief(instruction, value)
        if isinstance(agent, Directable):
            return agent.with_options(instructions=instruction), value
        return agent, value

    def _depth(self, ctx: Context, teams: dict[Context, tuple[int, int]]) -> tuple[int, int]:
        """This team's depth in teams, and the cap that binds it: the tightest on the way down."""
        above = ctx.parent
        while above is not None and above not in teams:
            above = above.parent
        depth, cap = (0, self.caps.max_depth) if above is None else teams[above]
        depth, cap = depth + 1, min(cap, self.caps.max_depth)
        if depth > cap:
            raise UsageError(
                f"team {self.name!r} would run {depth} teams deep, past the cap of {cap} (TeamCaps.max_depth "
                "of a team around it); nest fewer teams, or raise max_depth on the outermost team"
            )
        return depth, cap

    def _cutoff(self, ctx: Context, began: float) -> float | None:
        """When members must be done, on the run's clock: the team's ``deadline`` from its start
        (``began``), and before the run's deadline, a tenth of the time left now to merge what
        finished."""
        state = ctx.run_state
        now = state.clock()
        ends = [] if self.deadline is None else [began + self.deadline]
        if state.deadline is not None:
            ends.append(state.deadline - _RESERVE * max(0.0, state.deadline - now))
        return min(ends, default=None)


def _result(
    answer: Any, runs: list[tuple[str, Outcome[Any]]], plan: Plan | None = None, rejected: tuple[str, ...] = ()
) -> TeamResult[Any]:
    results = {key: o.value for key, o in runs if o.status is Status.SUCCEEDED}
    missing = {key: reason_of(o) for key, o in runs if o.status is not Status.SUCCEEDED}
    counts: dict[Status, int] = {}
    for _, o in runs:
        counts[o.status] = counts.get(o.status, 0) + 1
    return TeamResult(answer, results, missing, [o for _, o in runs], plan, rejected, counts)


def _synthesis_prompt(task: str, finals: list[tuple[str, Any]], missing: dict[str, str], instruction: str) -> str:
    lines = [f"Task: {task or '(work on the data set)'}", "", "Results, in plan order:"]
    lines += [f"- {key}: {json_text(value)}" for key, value in finals]
    if missing:
        lines += ["", "Missing (these runs did not succeed):", *(f"- {k}: {why}" for k, why in missing.items())]
    if instruction:
        lines += ["", instruction]
    return "\n".join(lines)


def _description(agent: Agent) -> str:
    about = getattr(agent, "description", None)
    if isinstance(about, str) and about:
        return about
    if isinstance(agent, FunctionAgent):
        return (agent.fn.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
    if isinstance(agent, Team):
        return "a team of " + ", ".join(m.name for m in agent.members)
    return ""


def _check_name(name: str, where: str) -> None:
    if not isinstance(name, str) or not re.match(ID_PATTERN, name) or name in RESERVED:
        raise UsageError(
            f"{where} name {name!r}: a member's name starts with a letter and has letters, digits, _ and - "
            f"(at most 64), and is none of {sorted(RESERVED)}; pass name=..."
        )


def _members(members: Any) -> Iterator[Member]:
    if isinstance(members, Mapping):
        for name, agent in members.items():
            if isinstance(agent, Member):
                yield Member(agent.agent, name, agent.description)
            else:
                yield member(agent, name=name)
    else:
        for agent in members:
            yield agent if isinstance(agent, Member) else member(agent)


def team(
    leader: Any,
    members: Any,
    *,
    merge: Any = None,
    caps: TeamCaps | None = None,
    policy: FailurePolicy | None = None,
    mode: Literal["plan", "delegate"] = "plan",
    deadline: float | None = None,
    name: str = "team",
) -> Team:
    """A leader that plans the work, and members that do it in parallel.

    ``leader`` is an ``ff.llm`` agent (asked for a :class:`~fanfold.Plan` as structured
    output) or any agent or function that takes a :class:`~fanfold.PlanRequest` and returns a
    ``Plan`` or a dict. ``members`` is a list of agents (named by their names) or ``ff.member``
    entries, or a dict of name to agent; any member may be used by many subtasks at once, each
    use a fresh run. The input is a task (a string), a data set, or ``ff.Brief(task, data)``;
    the value is a :class:`~fanfold.TeamResult`.

    Each run of a member gets one input (see :class:`~fanfold.Subtask`). A function or pattern
    gets the input alone; an LLM member also gets the subtask's instruction, added to its own
    instructions; a team member gets ``ff.Brief(instruction, input)``.

    ``merge`` overrides the plan's choice: ``"concat"``, ``"vote"``, ``"leader"``, a member's
    name, or an agent that takes the list of results. ``caps`` bounds subtasks, nesting and
    re-plans; ``policy`` decides what failures do (by default they are collected, and the
    answer comes with what is missing); ``deadline`` is the seconds members may take from the
    team's start (under a run deadline they also stop when a tenth of the time left remains,
    to merge). ``mode="delegate"`` gives an LLM leader a ``delegate(member, task)`` tool instead.

    >>> def plan(request):
    ...     return {"subtasks": [{"id": "double", "member": "twice", "split": {"by": "each"}}]}
    >>> def twice(x): return 2 * x
    >>> ff.run_sync(ff.team(plan, [twice]), ff.Brief("double them", [1, 2, 3])).output.answer
    [2, 4, 6]
    """
    crew = list(_members(members))
    if not crew:
        raise UsageError("team() got no members; pass a list of agents: ff.team(leader, [verifier, researcher])")
    names = [m.name for m in crew]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"team() has two members named {twice[0]!r}; name them: ff.member(agent, name=...)")
    lead = as_agent(leader, "team(leader=...)")
    llm_leader = isinstance(lead, Directable)
    if mode not in ("plan", "delegate"):
        raise UsageError(f"team(mode={mode!r}): pass 'plan' (the leader returns a plan) or 'delegate' (tool calls)")
    if mode == "delegate" and not llm_leader:
        raise UsageError("team(mode='delegate') needs an ff.llm leader, which calls the delegate tool")
    if isinstance(merge, str) and merge not in _MERGES and merge not in names:
        raise UsageError(f"team(merge={merge!r}): pass 'concat', 'vote', 'leader', a member's name, or an agent")
    if merge == "leader" and not llm_leader:
        raise UsageError("team(merge='leader') needs an ff.llm leader to write the answer; pass a merge agent")
    merger = merge if merge is None or isinstance(merge, str) else as_agent(merge, "team(merge=...)")
    if caps is not None and not isinstance(caps, TeamCaps):
        raise UsageError(f"team(caps={caps!r}): pass ff.TeamCaps(max_subtasks=..., max_depth=..., max_replans=...)")
    if deadline is not None and (isinstance(deadline, bool) or not isinstance(deadline, int | float) or deadline <= 0):
        raise UsageError(f"team(deadline={deadline!r}): pass the seconds members may take, > 0, or None")
    policy = policy or Collect()
    check_policy("team", policy)
    _check_name(name, "team")
    return Team(lead, tuple(crew), merger, caps or TeamCaps(), policy, mode, deadline, name)
