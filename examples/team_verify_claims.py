"""Verify a list of claims with a team: one verifier per claim, all at once, then a summary.

The leader (an ``ff.llm`` agent) is shown the claims as a data set it does not read: their
number, their fields and a sample. It plans one subtask, ``verify``, split ``each``: fanfold
runs the ``verifier`` member once per claim (the same member, 30 fresh runs at once), then asks
the leader to write the summary from the verdicts. Every model call goes through fanfold's
governor; the events show the verifiers running at the same time.

It runs offline on fanfold's simulated provider, whose answers are scripted below: the leader's
plan, a verdict per claim (a claim holds unless it says something known to be false), and the
leader's summary, counted from the verdicts in its prompt.

    .venv/bin/python examples/team_verify_claims.py
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel

import fanfold as ff
from fanfold.testing import EventLog, Latency, SimLimits, SimRequest, SimulatedProvider

MODEL = "openai-chat:sim-1"

CLAIMS = [
    {"id": i, "claim": claim}
    for i, claim in enumerate(
        [
            "Water boils at 100 degrees Celsius at sea level.",
            "The Moon is made of cheese.",
            "Light from the Sun reaches the Earth in about eight minutes.",
            "Bats are blind.",
            "Mount Everest is the highest mountain above sea level.",
            "Humans use only ten percent of their brains.",
            "The Pacific is the largest ocean.",
            "Goldfish have a three-second memory.",
            "Diamonds are a form of carbon.",
            "Lightning never strikes the same place twice.",
            "Sound travels faster in water than in air.",
            "The Great Wall of China is visible from the Moon with the naked eye.",
            "Venus is the hottest planet in the Solar System.",
            "Bulls are enraged by the colour red.",
            "An octopus has three hearts.",
        ]
        * 2
    )
]
FALSE = ("cheese", "blind", "ten percent", "three-second", "never strikes", "naked eye", "colour red")


class Verdict(BaseModel):
    claim: str
    supported: bool
    reason: str


def answer(request: SimRequest) -> dict[str, Any] | str:
    """The simulated model: the leader's plan and summary, and each verifier's verdict."""
    schema = request.output_schema or {}
    text = request.last_user_text
    if "subtasks" in schema.get("properties", {}):  # the leader, asked for a plan
        return {
            "subtasks": [
                {"id": "verify", "member": "verifier", "instruction": "Check this claim.", "split": {"by": "each"}}
            ],
            "merge": "leader",
            "merge_instruction": "Say how many claims hold and list the ones that do not.",
        }
    if "supported" in schema.get("properties", {}):  # a verifier, given one claim as JSON
        claim = json.loads(text)["claim"]
        wrong = next((word for word in FALSE if word in claim), None)
        reason = f"'{wrong}' is a well-known myth" if wrong else "consistent with the sources"
        return {"claim": claim, "supported": wrong is None, "reason": reason}
    # The leader, asked for the summary: count the verdicts listed in its prompt.
    verdicts = [
        json.loads(line.split(": ", 1)[1]) for line in text.splitlines() if re.match(r"- verify\[\d+\]: ", line)
    ]
    false = sorted({v["claim"] for v in verdicts if not v["supported"]})
    held = sum(v["supported"] for v in verdicts)
    return f"{held} of {len(verdicts)} claims hold. These do not:\n" + "\n".join(f"  - {c}" for c in false)


def main(latency: Latency | None = None, verbose: bool = True) -> ff.Result[ff.TeamResult[str]]:
    limits = SimLimits(requests_per_minute=6000)  # fanfold learns it from the rate-limit headers
    sim = SimulatedProvider(answer=answer, latency=latency or Latency(median=0.3, sigma=0.3), limits=limits)
    with sim.in_thread():
        llm = {"base_url": sim.openai_base_url, "api_key": "sim"}
        leader = ff.llm(MODEL, name="leader", instructions="You lead a team of fact-checkers.", **llm)
        verifier = ff.llm(
            MODEL, name="verifier", output_type=Verdict, instructions="Decide whether the claim holds.", **llm
        )
        log = EventLog()
        team = ff.team(leader, [verifier])
        result = ff.run_sync(team, ff.Brief("Verify every claim.", CLAIMS), on_event=log)
    if verbose:
        show(result, log)
    return result


def show(result: ff.Result[ff.TeamResult[str]], log: EventLog) -> None:
    team = result.output
    assert team is not None
    assert team.plan is not None
    for subtask in team.plan.subtasks:
        split = f", split by {subtask.split.by}" if subtask.split else ""
        print(f"plan: subtask {subtask.id!r} for the {subtask.member}{split}; merge by the {team.plan.merge}")
    print(f"{len(team.results)} verifiers ran, {log.max_running('verify')} of them at once")
    print(f"missing: {team.missing or 'nothing'}")
    print(f"\n{team.answer}\n")
    print(f"summary: {result.summary}")


if __name__ == "__main__":
    main()
