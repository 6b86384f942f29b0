import asyncio

import pytest

import fanfold as ff
from fanfold.testing import Action, act


def test_quorum_succeeds_once_k_succeed_and_cancels_the_rest() -> None:
    inputs = [Action(value=i) for i in range(3)] + [Action(hang=True)] * 2
    result = ff.run_sync(ff.map(act, policy=ff.Quorum(3)), inputs)
    statuses = [o.status for o in result.outcomes]
    assert statuses[:3] == [ff.Status.SUCCEEDED] * 3
    assert set(statuses[3:]) <= {ff.Status.CANCELLED, ff.Status.SKIPPED}
    assert all(o.reason == "quorum of 3 reached" for o in result.outcomes[3:])


def test_quorum_fails_as_soon_as_it_is_out_of_reach() -> None:
    inputs = [Action.failing(), Action.failing(), Action(hang=True)]
    with pytest.raises(ff.RunFailed) as info:
        ff.run_sync(ff.map(act, policy=ff.Quorum(2)), inputs)
    assert "out of reach" in str(info.value)
    assert info.value.result.outcomes[2].status in (ff.Status.CANCELLED, ff.Status.SKIPPED)


def test_max_failures_tolerates_k_failures() -> None:
    ok = ff.run_sync(ff.map(act, policy=ff.MaxFailures(2)), [Action.failing()] * 2 + [Action(value=1)])
    assert ok.output == [1]
    with pytest.raises(ff.RunFailed, match="3 failures, more than the 2 tolerated"):
        ff.run_sync(ff.map(act, policy=ff.MaxFailures(2)), [Action.failing()] * 3 + [Action(value=1)])


def test_max_failure_rate_judges_after_min_finished() -> None:
    inputs = [Action.failing()] + [Action(value=i) for i in range(9)]
    assert len(ff.run_sync(ff.map(act, policy=ff.MaxFailureRate(0.2, min_finished=5)), inputs).output) == 9
    inputs = [Action.failing()] * 3 + [Action(value=i) for i in range(7)]
    with pytest.raises(ff.RunFailed, match=r"above the rate 0\.2"):
        ff.run_sync(ff.map(act, policy=ff.MaxFailureRate(0.2, min_finished=5)), inputs)


def test_a_failing_fanout_inside_a_collecting_one_is_one_failed_outcome() -> None:
    inner = ff.map(act, policy=ff.FailFast())
    result = ff.run_sync(ff.map(inner), [[Action.failing()], [Action(value=1)]])
    assert [o.status for o in result.outcomes] == [ff.Status.FAILED, ff.Status.SUCCEEDED]
    error = result.outcomes[0].error
    assert error is not None
    assert error.type == "FanoutFailed"


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: ff.Quorum(0), "Quorum"),
        (lambda: ff.MaxFailures(-1), "MaxFailures"),
        (lambda: ff.MaxFailureRate(1.5), "MaxFailureRate"),
        (lambda: ff.map(act, policy="collect"), "policy"),
        (lambda: ff.vote(act, n=0), r"vote\(n=0\)"),
        (lambda: ff.map_reduce(map=act, reduce=act, fan_in=1), "fan_in=1"),
        (lambda: ff.map_reduce(map=act, reduce=act, window=0), r"map_reduce\(window=0\)"),
        (lambda: ff.vote(act, policy=3), r"vote\(policy=3\)"),
        (lambda: ff.map(act, timeout="5"), r"map\(timeout='5'\)"),
        (lambda: ff.race(act, stagger="1"), r"race\(stagger='1'\)"),
    ],
)
def test_bad_policies_name_the_value_and_the_fix(make: object, match: str) -> None:
    with pytest.raises(ff.UsageError, match=match):
        make()  # type: ignore[operator]


def test_a_custom_policy_is_a_small_class() -> None:
    class StopAfterTwo(ff.FailurePolicy):
        def check(self, tally: ff.Tally, *, final: bool) -> ff.Verdict | None:
            return ff.Verdict(True, "enough") if tally.succeeded >= 2 else None

    async def item(x: int) -> int:
        await asyncio.sleep(0)
        return x

    result = ff.run_sync(ff.map(item, policy=StopAfterTwo(), window=1), range(5))
    assert result.output == [0, 1]
    assert [o.reason for o in result.outcomes[2:]] == ["enough"] * 3


def test_a_source_that_breaks_while_the_rest_is_skipped_is_still_reported() -> None:
    class Rows:
        def __init__(self) -> None:
            self.n = 0

        def __iter__(self) -> "Rows":
            return self

        def __next__(self) -> Action:
            self.n += 1
            if self.n == 1:
                return Action.failing()
            if self.n == 3:
                raise OSError("truncated file")
            return Action(value=self.n)

    with pytest.raises(ff.RunFailed) as info:
        ff.run_sync(ff.map(act, policy=ff.FailFast(), window=1), Rows())
    cause = info.value.__cause__
    assert isinstance(cause, ff.FanoutFailed)
    assert "reading input #2 failed: OSError: truncated file" in str(cause)
    assert [o.status for o in info.value.result.outcomes] == [ff.Status.FAILED, ff.Status.SKIPPED]
