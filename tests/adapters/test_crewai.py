"""CrewAI crews run by fanfold: a real ``Crew`` (Agent + Task) on CrewAI's native OpenAI
provider, against the simulated provider on loopback.

CrewAI needs ``openai<3`` and ``pydantic<2.13``, so it lives in ``.venv-crewai`` (``make
crewai-env``, which ``make test`` runs, and this module too when make is at hand). The
scenarios run there, in one process (CrewAI takes ~10 s to import), by
tests/adapters/crewai_scenarios.py; the tests here assert on the facts it reports.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parents[2]
ENV = ROOT / ".venv-crewai"
SCRIPT = Path(__file__).with_name("crewai_scenarios.py")
CLAIMS = [f"claim {i}: the sky is {'green' if i % 3 == 0 else 'blue'}" for i in range(6)]

# The scenarios run once, while the first test sets up (CrewAI's import and ~30 crew runs).
pytestmark = pytest.mark.timeout(900)


def crewai_python() -> Path:
    """The Python of CrewAI's environment, built (or brought up to date) by make if it can be;
    skips the tests, giving the reason, if the environment cannot be built."""
    given = os.environ.get("FANFOLD_CREWAI_PYTHON")
    if given:
        return Path(given)
    if shutil.which("make"):
        built = subprocess.run(
            ["make", "--no-print-directory", "-s", "crewai-env"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        if built.returncode != 0:
            pytest.fail(f"make crewai-env failed:\n{built.stdout}\n{built.stderr}")
    unbuilt = ENV / ".unbuilt"
    if unbuilt.exists():
        pytest.skip(
            f"CrewAI's environment {ENV} could not be built (pip's log: {ENV / '.pip.log'}; "
            f"it ends: {unbuilt.read_text().strip()})"
        )
    python = ENV / "bin" / "python"
    if not python.exists():
        pytest.skip(f"CrewAI's environment {ENV} is not built and make is not at hand: run `make crewai-env`")
    return python


@pytest.fixture(scope="module")
def facts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    python = crewai_python()
    out = tmp_path_factory.mktemp("crewai") / "facts.json"
    env = {**os.environ, "CREWAI_DISABLE_TELEMETRY": "true", "OTEL_SDK_DISABLED": "true"}
    ran = subprocess.run(
        [str(python), str(SCRIPT), str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=800,
        check=False,
    )
    assert ran.returncode == 0, f"the CrewAI scenarios crashed:\n{ran.stderr[-4000:]}"
    found: dict[str, Any] = json.loads(out.read_text())
    return found


def scenario(facts: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = facts[name]
    assert "crashed" not in found, f"scenario {name} raised {found['crashed']}"
    return found


def assert_counted_once(found: dict[str, Any]) -> None:
    usage, served = found["usage"], found["served"]
    assert usage["requests"] == served["requests"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (served["input_tokens"], served["output_tokens"])


def test_one_crew_runs_concurrently_each_model_request_governed(facts: dict[str, Any]) -> None:
    found = scenario(facts, "governed_map")
    assert found["adapted"] == {"governed": True, "resources": []}  # recognised by type, its requests are the leaves
    assert found["output"] == ["does not hold" if "green" in claim else "holds" for claim in CLAIMS]
    assert 1 < found["served"]["peak_concurrency"] <= 3  # the runs overlap, within the provider resource's limit
    assert found["served"]["requests"] == len(CLAIMS)
    assert_counted_once(found)


def test_two_crews_share_one_provider_limit(facts: dict[str, Any]) -> None:
    found = scenario(facts, "two_crews_share_a_limit")
    assert [sorted(pair) for pair in found["output"]] == [["first", "second"]] * len(CLAIMS)
    assert 1 < found["served"]["peak_concurrency"] <= 2
    assert found["served"]["requests"] == 2 * len(CLAIMS)
    assert_counted_once(found)


def test_a_crew_as_a_team_member_checks_one_claim_per_subtask(facts: dict[str, Any]) -> None:
    found = scenario(facts, "team_member")
    assert found["output"] == {"answer": "4 of 6 claims hold", "results": len(CLAIMS), "complete": True}
    assert 1 < found["served"]["peak_concurrency"] <= 4
    assert found["served"]["requests"] == len(CLAIMS)
    assert_counted_once(found)


def test_a_crew_as_one_leaf_is_charged_what_crewai_reports_for_that_run_alone(facts: dict[str, Any]) -> None:
    found = scenario(facts, "one_leaf_map")
    assert found["adapted"] == {"governed": False, "resources": ["crewai"]}
    assert all(answer.startswith("Simulated answer") for answer in found["output"])
    assert 1 < found["served"]["peak_concurrency"] <= 2  # the whole crew run is the leaf, on "crewai"
    assert_counted_once(found)  # CrewAI's counters are per LLM object: each run counts on copies of its own


def test_a_budget_stops_governed_crews_at_the_wire(facts: dict[str, Any]) -> None:
    found = scenario(facts, "governed_budget")
    assert found["served"]["requests"] == 3 == found["usage"]["requests"]
    stopped = [o["error"]["type"] for o in found["outcomes"] if o["error"]]
    assert stopped == ["BudgetExhausted"] * (len(CLAIMS) - 3)


def test_a_budget_refuses_a_crew_run_as_one_leaf_once_spent(facts: dict[str, Any]) -> None:
    found = scenario(facts, "one_leaf_budget")
    assert found["served"]["requests"] == 2 == found["usage"]["requests"]
    stopped = [o["error"]["type"] for o in found["outcomes"] if o["error"]]
    assert stopped == ["BudgetExhausted"] * (len(CLAIMS) - 2)


def test_the_runs_deadline_reaches_the_crews_request_in_flight(facts: dict[str, Any]) -> None:
    found = scenario(facts, "deadline")
    assert [o["status"] for o in found["outcomes"]] == ["timed_out"]
    served = found["served"]
    assert served["requests"] == served["disconnects"] == 1  # the server saw the connection go
    assert served["succeeded"] == 0
    assert found["usage"]["requests"] == 1


def test_a_provider_failure_fails_the_crew_with_the_sdks_error(facts: dict[str, Any]) -> None:
    found = scenario(facts, "provider_fails")
    [outcome] = found["outcomes"]
    assert outcome["status"] == "failed"
    assert outcome["error"]["type"] == "InternalServerError"
    assert "Error code: 500" in outcome["error"]["message"]
    assert found["served"]["requests"] == 2 == found["usage"]["requests"]  # fanfold's two attempts, counted


def test_an_unreachable_model_fails_the_crew_naming_why(facts: dict[str, Any]) -> None:
    found = scenario(facts, "unreachable_one_leaf")
    [outcome] = found["outcomes"]
    assert outcome["status"] == "failed"
    assert "Connection error" in outcome["error"]["message"]


def test_a_streaming_crew_is_refused_with_the_fix(facts: dict[str, Any]) -> None:
    error = scenario(facts, "streaming_refused")["error"]
    assert error is not None
    assert "Crew(stream=True)" in error
    assert "stream=False" in error
