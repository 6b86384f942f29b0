"""Delegation as tools: an LLM leader calls ``delegate(member, task)``, as often as it likes.

The leader runs once, as the team's step ``lead[0]``, with one extra tool. Every call is a child
task of the team, ``<member>[n]`` (``n`` counts that member's calls, in the order the model made
them), run through the runtime like any subtask: a fresh, isolated run with its own context,
under the run's limits, retries, budget and events. Calls past ``TeamCaps.max_subtasks`` are
refused, whatever the leader was told.

pydantic-ai runs the tool calls of one model response concurrently, but prepares them one after
another, at a fraction of a millisecond each. So that fifty calls in one answer start together,
a hook on the leader's model responses starts every well-formed ``delegate`` call the moment the
response arrives; the tool itself then only waits for its call's result. The calls run in a task
group that the team waits for; a started call whose tool pydantic-ai never runs is cancelled when
the leader finishes.

pydantic-ai is imported when a delegating team runs, not with this module: its leader is an
``ff.llm`` agent, which has imported it already, and ``import fanfold`` stays light. (So this
module does without ``from __future__ import annotations``: pydantic-ai reads the tool's
annotations, and a name imported inside a function is no global they could be looked up in.)
"""

import asyncio
from collections import Counter
from typing import TYPE_CHECKING, Any

from fanfold._context import Context
from fanfold._outcome import Outcome, Status
from fanfold._task import execute, run_step
from fanfold._teams._crew import Crew, Directable
from fanfold._teams._plan import PlanRequest
from fanfold._teams._schedule import reason_of

if TYPE_CHECKING:
    from pydantic_ai.messages import ModelResponse

DELEGATING = """You lead a team. Hand work to your members with the delegate tool: call it once \
per piece of work, and call it many times in one answer to have the pieces done at the same \
time. Each call returns that member's result. When you have what you need, give the final answer."""


class _Delegations:
    """One team run's delegations: the tool the leader calls, and what became of each call."""

    def __init__(self, crew: Crew, ctx: Context, cutoff: float | None, group: asyncio.TaskGroup) -> None:
        self.crew = crew
        self.ctx = ctx
        self.cutoff = cutoff
        self.group = group
        self.names = [m.name for m in crew.members]
        self.counts: Counter[str] = Counter()
        self.used = 0
        self.keys: list[str] = []  # in the order the calls began
        self.outcomes: dict[str, Outcome[Any]] = {}
        self.early: dict[str, asyncio.Task[Any] | str] = {}  # by tool call id, until the tool claims it
        self.finished = False

    async def claim(self, call_id: str | None, member: str, task: str) -> Any:
        """The result of a delegate call: of the run begun early for it, else of one begun now."""
        call = self.early.pop(call_id, None) if call_id else None
        if call is None:
            call = self._begin(member, task)
        return call if isinstance(call, str) else await call

    def start_early(self, response: "ModelResponse") -> None:
        """Begin every well-formed delegate call of a model response at once."""
        for part in response.parts:
            if part.part_kind != "tool-call":
                continue
            call_id = part.tool_call_id
            if part.tool_name == "delegate" and call_id and call_id not in self.early:
                try:
                    args = part.args_as_dict(raise_if_invalid=True)
                except (ValueError, AssertionError):
                    continue  # pydantic-ai sends the error back to the model
                if set(args) == {"member", "task"} and all(isinstance(v, str) for v in args.values()):
                    self.early[call_id] = self._begin(args["member"], args["task"])

    def _begin(self, member: str, task: str) -> asyncio.Task[Any] | str:
        if member not in self.names:
            return f"refused: there is no member {member!r}; the members are {', '.join(self.names)}"
        cap = self.crew.caps.max_subtasks
        if self.used >= cap:
            return f"refused: this team may delegate at most {cap} tasks (max_subtasks), and has used them all"
        timeout = None if self.cutoff is None else self.cutoff - self.ctx.run_state.clock()
        if timeout is not None and timeout <= 0:
            return "refused: the team's deadline has passed"
        self.used += 1
        number = self.counts[member]
        self.counts[member] += 1
        key = f"{member}[{number}]"
        self.keys.append(key)
        agent, value = self.crew.assign(member, task, "")
        return self.group.create_task(self._run(key, self.ctx.child(member, number), agent, value, timeout))

    async def _run(self, key: str, ctx: Context, agent: Any, value: Any, timeout: float | None) -> Any:
        def report(outcome: Outcome[Any]) -> None:
            self.outcomes[key] = outcome

        def stop_reason() -> str | None:
            return "the leader finished without waiting for it" if self.finished else None

        outcome = await execute(agent, value, ctx, report, timeout=timeout, stop_reason=stop_reason)
        if outcome.status is Status.SUCCEEDED:
            return outcome.value
        return f"{key} did not succeed: {reason_of(outcome)}"

    def cancel_unclaimed(self) -> None:
        self.finished = True
        for call in self.early.values():
            if not isinstance(call, str):
                call.cancel()


async def delegate(
    crew: Crew, leader: Directable, task: str, ctx: Context, cutoff: float | None
) -> tuple[Any, list[tuple[str, Outcome[Any]]]]:
    """Run a delegating team: the leader's answer, and each delegated run's key and outcome,
    in the order the calls began."""
    from pydantic_ai import RunContext, Tool
    from pydantic_ai.capabilities import Hooks
    from pydantic_ai.messages import ModelResponse
    from pydantic_ai.toolsets import FunctionToolset

    request = PlanRequest(task, {m.name: m.description for m in crew.members}, None, crew.caps)
    async with asyncio.TaskGroup() as group:
        delegations = _Delegations(crew, ctx, cutoff, group)

        async def delegate_tool(call: RunContext[Any], member: str, task: str) -> Any:
            """Hand a task to a member of the team and get its result; calls in one answer run at once.

            Args:
                member: the member's name
                task: what the member should do, with everything it needs to know
            """
            return await delegations.claim(call.tool_call_id, member, task)

        def start_early(_: RunContext[Any], *, request_context: Any, response: ModelResponse) -> ModelResponse:
            delegations.start_early(response)
            return response

        lead = leader.with_options(
            instructions=DELEGATING,
            toolsets=[FunctionToolset([Tool(delegate_tool, takes_ctx=True, name="delegate")])],
            capabilities=[Hooks(after_model_request=start_early)],
            keep_prompt=False,
        )
        answer = await run_step(lead, request.prompt(), ctx.child("lead", 0))
        delegations.cancel_unclaimed()
    return answer, [(key, delegations.outcomes[key]) for key in delegations.keys]
