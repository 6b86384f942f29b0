"""The judge of a fan-out: for any sequence of outcomes and any policy, every input ends in exactly
one outcome, the tally the policy sees adds up, and the fan-out stops where the policy says."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fanfold as ff
from fanfold.testing import EventLog

SETTINGS = settings(
    max_examples=int(os.environ.get("FANFOLD_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

KINDS = {"ok": ff.Status.SUCCEEDED, "fail": ff.Status.FAILED, "timeout": ff.Status.TIMED_OUT, "skip": ff.Status.SKIPPED}
scripts = st.lists(st.sampled_from(sorted(KINDS)), max_size=12)
policies = st.one_of(
    st.just(ff.Collect()),
    st.just(ff.FailFast()),
    st.builds(ff.MaxFailures, st.integers(0, 3)),
    st.builds(ff.MaxFailureRate, st.sampled_from([0.0, 0.25, 0.5]), st.integers(1, 4)),
    st.builds(ff.Quorum, st.integers(1, 5)),
)


class InOrder(ff.FailurePolicy):
    """A policy around another that makes inputs end in input order: input ``i`` waits until the
    judge has looked at the outcome of input ``i - 1``. It keeps every tally it was shown."""

    def __init__(self, inner: ff.FailurePolicy, size: int) -> None:
        self.inner = inner
        self.gates = [asyncio.Event() for _ in range(size)]
        if self.gates:
            self.gates[0].set()
        self.looks: list[tuple[ff.Tally, bool]] = []

    def check(self, tally: ff.Tally, *, final: bool) -> ff.Verdict | None:
        self.looks.append((dataclasses.replace(tally), final))
        if not final and tally.finished < len(self.gates):
            self.gates[tally.finished].set()
        return self.inner.check(tally, final=final)


def scripted(script: list[str], policy: InOrder) -> ff.FunctionAgent:
    """Input ``i`` (an index) ends as ``script[i]`` says, once its turn has come."""

    async def work(i: int) -> int:
        await policy.gates[i].wait()
        kind = script[i]
        if kind == "fail":
            raise ValueError(f"input {i} failed")
        if kind == "timeout":
            raise ff.TaskTimeout(f"input {i} timed out")
        if kind == "skip":
            raise ff.Skip(f"input {i} not needed")
        return 10 * i

    return ff.agent(work)


def expected(script: list[str], policy: ff.FailurePolicy) -> tuple[int, ff.Verdict | None, bool]:
    """Where the policy stops a fan-out that sees the script's outcomes in order (how many ran),
    its verdict, and whether that verdict came early (else it is the last look's)."""
    tally = ff.Tally(total=len(script))
    for ran, kind in enumerate(script, 1):
        tally.finished += 1
        tally.succeeded += kind == "ok"
        tally.failed += kind in ("fail", "timeout")
        verdict = policy.check(tally, final=False)
        if verdict is not None:
            return ran, verdict, True
    return len(script), policy.check(tally, final=True), False


def run_map(script: list[str], policy: ff.FailurePolicy, window: int) -> tuple[ff.Result[Any], InOrder]:
    gated = InOrder(policy, len(script))
    log = EventLog()
    spec = ff.map(scripted(script, gated), policy=gated, window=window)
    try:
        result = ff.run_sync(spec, list(range(len(script))), on_event=log)
    except ff.RunFailed as failed:
        result = failed.result
    finished = sorted(e.path for e in log.finished() if e.path.startswith("map["))
    assert finished == sorted(f"map[{i}]" for i in range(len(script)))  # one event per input, skips included
    return result, gated


@SETTINGS
@given(script=scripts, policy=policies, window=st.integers(1, 12))
def test_every_input_ends_once_and_the_fanout_stops_where_the_policy_says(
    script: list[str], policy: ff.FailurePolicy, window: int
) -> None:
    result, gated = run_map(script, policy, window)
    outcomes = result.outcomes
    assert [o.index for o in outcomes] == list(range(len(script)))
    assert sum(result.summary.counts.values()) == result.summary.total == len(script)

    ran, verdict, early_verdict = expected(script, policy)
    assert [o.status for o in outcomes[:ran]] == [KINDS[kind] for kind in script[:ran]]
    for o in outcomes[ran:]:  # stopped: running siblings cancelled, inputs never read skipped
        assert verdict is not None
        assert o.status in (ff.Status.CANCELLED, ff.Status.SKIPPED)
        assert o.reason == verdict.reason

    # One look per outcome until the verdict, then the final look only if there was none;
    # each look's tally adds up.
    early = [tally for tally, final in gated.looks if not final]
    assert [t.finished for t in early] == list(range(1, ran + 1))
    for tally in early:
        assert tally.total == len(script)
        assert tally.succeeded + tally.failed <= tally.finished
    finals = [tally for tally, final in gated.looks if final]
    assert len(finals) == (0 if early_verdict else 1)
    if finals:
        counts = result.summary.counts
        assert finals[0].finished == len(script)
        assert finals[0].succeeded == counts[ff.Status.SUCCEEDED]
        assert finals[0].failed == counts[ff.Status.FAILED] + counts[ff.Status.TIMED_OUT]

    if verdict is not None and not verdict.ok:
        assert result.status is ff.RunStatus.FAILED
        error = result.exception
        assert isinstance(error, ff.FanoutFailed)
        assert str(error) == f"map failed: {verdict.reason}"
        first = next((o for o in outcomes if o.status in (ff.Status.FAILED, ff.Status.TIMED_OUT)), None)
        assert error.__cause__ is (first.exception if first is not None else None)
    else:
        assert result.status is ff.RunStatus.SUCCEEDED
        assert result.output == [10 * i for i, kind in enumerate(script[:ran]) if kind == "ok"]
