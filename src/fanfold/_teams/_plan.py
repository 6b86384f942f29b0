"""A team's plan: its schema, what the leader is asked, and the checks a plan must pass.

A leader answers a :class:`PlanRequest` with a :class:`Plan`: subtasks, each naming a member,
an instruction and its input (or a :class:`~fanfold.Split` of the team's data set), the
subtasks each one needs first, and how to merge. :func:`check_plan` validates it against the
members, the data and the caps, and expands it into :class:`Runs`, one per subtask, each making
its :class:`Work` (one per run) only when the schedule asks for it: a split subtask is checked by
counting its parts, never by listing them. A plan that fails raises :class:`PlanError`, whose
message goes back to the leader.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import to_json

from fanfold._errors import UsageError
from fanfold._teams._dataset import BadSplit, DataInfo, Split

RESERVED = frozenset({"plan", "lead", "merge", "concat", "vote", "leader"})
"""Names no member and no subtask may take: the team's own steps and the plan's merge words."""

ID_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"


class Subtask(BaseModel):
    """One step of a plan. Its member runs once, or once per part of a ``split`` of the data.

    A run receives a part of the data (with ``split``), else ``input``, else the results of the
    subtasks it ``needs`` (one: its result, a list for a split one; several: a dict by id), else
    its ``instruction``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=ID_PATTERN, description="a short unique name: letters, digits, _ and -")
    member: str = Field(description="the member that does it, by name")
    instruction: str = Field("", description="what the member should do")
    input: Any = Field(None, description="the member's input, when it is not a split of the data set")
    split: Split | None = Field(None, description="run the member once per part of the data set, cut this way")
    needs: list[str] = Field(default_factory=list, description="ids of the subtasks whose results this one needs")


class Plan(BaseModel):
    """What a leader decides: the subtasks, and how their results are merged.

    ``merge`` is ``"concat"`` (the list of results), ``"vote"`` (the most common result),
    ``"leader"`` (the leader writes the answer from the results) or a member's name (that
    member gets the list of results). Only the results of subtasks that no other subtask needs
    are merged, in plan order.

    >>> ff.Plan(subtasks=[ff.Subtask(id="check", member="verifier", split=ff.Split(by="each"))]).merge
    'concat'
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    subtasks: list[Subtask] = Field(min_length=1, description="the work, in the order its results are merged")
    merge: str = Field("concat", description="concat, vote, leader, or the name of a member that merges the results")
    merge_instruction: str = Field("", description="what the merger should do with the results")


@dataclass(frozen=True, slots=True, kw_only=True)
class TeamCaps:
    """Bounds no plan can lift, whatever the leader or the data says.

    ``max_subtasks``: subtask runs per plan once splits are expanded (and delegations per team
    run); ``max_depth``: how deep teams may nest in teams (the outermost team's cap binds every
    team inside it); ``max_replans``: rejected plans sent back to the leader before the team
    fails with :class:`~fanfold.PlanRejected`.
    """

    max_subtasks: int = 100
    max_depth: int = 3
    max_replans: int = 2

    def __post_init__(self) -> None:
        for name, least in (("max_subtasks", 1), ("max_depth", 1), ("max_replans", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise UsageError(f"TeamCaps({name}={value!r}): pass a whole number >= {least}")


@dataclass(frozen=True, slots=True)
class PlanRequest:
    """What a leader is asked to plan. An LLM leader gets it as a prompt (:meth:`prompt`); any
    other leader (a function, say) gets this object and returns a :class:`Plan` or a dict.

    ``members`` maps each member's name to its description; ``data`` describes the data set
    (never its rows), or is ``None``; ``attempt`` counts from 0; ``error`` says why the
    previous plan (``previous``, as the leader gave it) was rejected.
    """

    task: str
    members: Mapping[str, str]
    data: DataInfo | None
    caps: TeamCaps
    attempt: int = 0
    error: str | None = None
    previous: Any = None

    def prompt(self) -> str:
        lines = [f"Task: {self.task or '(none given: work on the data set)'}", "", "Members:"]
        lines += [f"- {name}: {about or '(no description)'}" for name, about in self.members.items()]
        lines.append("")
        if self.data is None:
            lines.append("Data set: none.")
        else:
            lines += ["Data set (stays with fanfold: refer to it with a split, never copy rows):", str(self.data)]
        lines += ["", f"Caps: at most {self.caps.max_subtasks} subtask runs, counting each part of a split."]
        if self.error is not None:
            previous = json_text(self.previous)
            lines += ["", f"Your previous plan was rejected: {self.error}", f"It was: {previous}", "Send a fixed plan."]
        return "\n".join(lines)


PLANNING = """You lead a team: plan the task as subtasks for your members. fanfold runs every \
subtask whose needs are met at the same time, then merges the results. Each subtask names a \
member, an instruction and its input. To work on the data set, never copy rows into inputs: give \
the subtask a split (each row, chunks of `size` rows, a group per value of `field`, or all rows, \
optionally filtered by where/op/value) and the member runs once per part. A subtask that builds \
on others lists their ids in `needs` and gets their results as its input. Stay within the caps."""


class PlanError(Exception):
    """A plan the team cannot run; the message says why, for the leader to fix."""


@dataclass(frozen=True, slots=True)
class Work:
    """One subtask run: part ``index`` of subtask ``subtask`` (0 when it has no ``split``),
    with the input it gets, unless ``from_needs``: then the results of its needs."""

    subtask: str
    index: int
    member: str
    instruction: str
    input: Any
    needs: tuple[str, ...]
    from_needs: bool
    split: bool

    @property
    def key(self) -> str:
        return f"{self.subtask}[{self.index}]"


@dataclass(frozen=True, slots=True)
class Runs:
    """A subtask's runs, one per part: run ``i`` is made (:meth:`work`) when it is about to start."""

    subtask: str
    member: str
    instruction: str
    needs: tuple[str, ...]
    from_needs: bool
    split: bool
    parts: Sequence[Any]

    def __len__(self) -> int:
        return len(self.parts)

    def work(self, index: int) -> Work:
        part = self.parts[index]
        return Work(self.subtask, index, self.member, self.instruction, part, self.needs, self.from_needs, self.split)

    def __iter__(self) -> Iterator[Work]:
        return (self.work(i) for i in range(len(self)))


def check_plan(
    raw: Any, *, members: Mapping[str, Any], rows: list[Any] | None, caps: TeamCaps, llm_leader: bool
) -> tuple[Plan, list[Runs]]:
    """Validate a leader's answer and expand it into runs, or raise :class:`PlanError`."""
    subtasks = raw.subtasks if isinstance(raw, Plan) else raw.get("subtasks") if isinstance(raw, Mapping) else None
    if isinstance(subtasks, list) and len(subtasks) > caps.max_subtasks:  # before it costs more than a count
        raise PlanError(
            f"the plan has {len(subtasks)} subtasks, past the cap of {caps.max_subtasks} subtask runs "
            "(max_subtasks); merge subtasks, or split the data set into fewer, larger parts"
        )
    try:
        plan = raw if isinstance(raw, Plan) else Plan.model_validate(raw)
    except ValidationError as exc:
        raise PlanError(f"the plan is not valid: {_errors(exc)}") from None
    seen: set[str] = set()
    for subtask in plan.subtasks:
        if subtask.id in seen:
            raise PlanError(f"two subtasks have the id {subtask.id!r}; give each its own")
        seen.add(subtask.id)
    for subtask in plan.subtasks:
        _check_subtask(subtask, members, seen)
    _check_acyclic(plan)
    if plan.merge not in ("concat", "vote", "leader") and plan.merge not in members:
        raise PlanError(f"merge {plan.merge!r} is neither concat, vote, leader nor a member; {_names(members)}")
    if plan.merge == "leader" and not llm_leader:
        raise PlanError("merge 'leader' needs an LLM leader; merge by concat, vote or a member")
    runs: list[Runs] = []
    used = 0
    for subtask in plan.subtasks:
        runs.append(_expand(subtask, rows, used, caps.max_subtasks))
        used += len(runs[-1])
    return plan, runs


def _check_subtask(subtask: Subtask, members: Mapping[str, Any], known: set[str]) -> None:
    if subtask.id in RESERVED:
        raise PlanError(f"subtask id {subtask.id!r} is reserved; pick another")
    if subtask.member not in members:
        raise PlanError(f"subtask {subtask.id!r} names an unknown member {subtask.member!r}; {_names(members)}")
    for need in subtask.needs:
        if need not in known:
            raise PlanError(f"subtask {subtask.id!r} needs {need!r}, which is not a subtask of the plan")
    if subtask.split is not None and subtask.input is not None:
        raise PlanError(f"subtask {subtask.id!r} has both an input and a split; give one")


def _check_acyclic(plan: Plan) -> None:
    needs = {s.id: s.needs for s in plan.subtasks}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for need in needs[node]:
            if state.get(need) == 1:
                cycle = [*path[path.index(need) :], need]
                raise PlanError(
                    f"the subtasks' needs form a cycle: {' -> '.join(cycle)}; a subtask cannot wait for itself"
                )
            if need not in state:
                visit(need, [*path, need])
        state[node] = 2

    for node in needs:
        if node not in state:
            visit(node, [node])


def _expand(subtask: Subtask, rows: list[Any] | None, used: int, cap: int) -> Runs:
    """The subtask's runs, or :class:`PlanError` when there are none, or too many for the cap
    with the ``used`` runs of the subtasks before it."""
    member, instruction, needs = subtask.member, subtask.instruction, tuple(subtask.needs)
    if subtask.split is None:
        parts: Sequence[Any] = (subtask.input if subtask.input is not None or needs else instruction,)
    elif rows is None:
        raise PlanError(f"subtask {subtask.id!r} splits the data set, but this team was given none")
    else:
        try:
            parts = subtask.split.parts(rows)
        except BadSplit as exc:
            raise PlanError(f"subtask {subtask.id!r}: {exc}") from None
        if not parts:
            raise PlanError(f"subtask {subtask.id!r}: its split selects no rows; change the filter")
    if used + len(parts) > cap:
        raise PlanError(
            f"subtask {subtask.id!r} makes {len(parts)} runs, which brings the plan to {used + len(parts)}, past "
            f"the cap of {cap} (max_subtasks); split into fewer, larger parts (chunks or group_by) or drop subtasks"
        )
    from_needs = subtask.split is None and subtask.input is None and bool(needs)
    split = subtask.split is not None
    return Runs(subtask.id, member, instruction, needs, from_needs, split, parts)


def _names(members: Mapping[str, Any]) -> str:
    return "the members are " + ", ".join(repr(name) for name in members)


def _errors(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "plan"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def json_text(value: Any, limit: int = 2000) -> str:
    try:
        text = to_json(value, fallback=repr).decode()
    except ValueError:  # a value pydantic cannot write (a cycle, say): its repr will do
        text = json.dumps(repr(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."
