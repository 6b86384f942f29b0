"""Research three topics with three different members at once, then have an editor merge them.

The leader (an ``ff.llm`` agent) plans four subtasks: a historian, an economist and an ecologist
each research one topic, at the same time; an editor, whose subtask ``needs`` the other three,
starts as soon as all three have finished and gets their notes as its input. fanfold runs the
plan as a DAG through its runtime: one model call fails with a 500 on the way and is retried,
and the events show who ran when.

It runs offline on fanfold's simulated provider; its answers are scripted below, told apart by
each member's instructions.

    .venv/bin/python examples/team_research.py
"""

from __future__ import annotations

import json

import fanfold as ff
from fanfold import events
from fanfold.testing import EventLog, Faults, Latency, SimRequest, SimulatedProvider

MODEL = "openai-chat:sim-1"
TOPIC = "tea"

MEMBERS = {
    "historian": "You research the history of a topic. Answer in one sentence.",
    "economist": "You research the economics of a topic. Answer in one sentence.",
    "ecologist": "You research the environmental side of a topic. Answer in one sentence.",
    "editor": "You merge research notes into a short brief.",
}
NOTES = {
    "historian": "Tea was first drunk in China around 2700 BCE and reached Europe in the 17th century.",
    "economist": "Tea is a $200 billion market; India and China grow over half of it.",
    "ecologist": "Tea plantations need steady rain, and warming shifts where they can grow.",
}


def plan() -> dict[str, object]:
    research = [
        {"id": "history", "member": "historian", "instruction": f"Research the history of {TOPIC}.", "input": TOPIC},
        {"id": "economy", "member": "economist", "instruction": "Research the tea trade.", "input": TOPIC},
        {"id": "ecology", "member": "ecologist", "instruction": "Research tea and climate.", "input": TOPIC},
    ]
    brief = {"id": "brief", "member": "editor", "instruction": "Write a three-line brief.",
             "needs": ["history", "economy", "ecology"]}  # fmt: skip
    return {"subtasks": [*research, brief]}


def answer(request: SimRequest) -> dict[str, object] | str:
    """The simulated model: the leader's plan, each researcher's note, the editor's brief."""
    if "subtasks" in (request.output_schema or {}).get("properties", {}):
        return plan()
    system = next((text for role, text in request.messages if role == "system"), "")
    member = next(name for name, instructions in MEMBERS.items() if system.startswith(instructions))
    if member != "editor":
        return NOTES[member]
    notes = json.loads(request.last_user_text)  # {"history": ..., "economy": ..., "ecology": ...}
    return "\n".join(f"{part.title()}: {note}" for part, note in notes.items())


def main(latency: Latency | None = None, verbose: bool = True) -> ff.Result[ff.TeamResult[list[str]]]:
    faults = Faults(script=lambda number, request: "500" if number == 3 else None)  # one failure, retried
    sim = SimulatedProvider(answer=answer, latency=latency or Latency(median=0.4, sigma=0.3), faults=faults)
    with sim.in_thread():
        llm = {"base_url": sim.openai_base_url, "api_key": "sim"}
        leader = ff.llm(MODEL, name="leader", instructions="You lead a research team.", **llm)
        members = [ff.llm(MODEL, name=name, instructions=text, **llm) for name, text in MEMBERS.items()]
        log = EventLog()
        result = ff.run_sync(ff.team(leader, members), f"Write a brief on {TOPIC}.", on_event=log)
    if verbose:
        show(result, log)
    return result


def show(result: ff.Result[ff.TeamResult[list[str]]], log: EventLog) -> None:
    team = result.output
    assert team is not None
    print("who ran when (seconds since the run began):")
    for outcome in team.outcomes:
        assert outcome.start is not None
        assert outcome.end is not None
        print(f"  {outcome.path:<11} {outcome.start:5.2f} -> {outcome.end:5.2f}")
    retried = [e.path for e in log.of_type(events.ModelCalled) if e.status != "ok"]
    print(f"model calls retried: {retried}, missing: {team.missing or 'nothing'}")
    print(f"\n{team.results['brief[0]']}\n")
    print(f"summary: {result.summary}")


if __name__ == "__main__":
    main()
