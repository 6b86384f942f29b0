import asyncio

import pytest

import fanfold as ff
from fanfold.testing import Action, EventLog, VirtualClock, act


async def square(x: int) -> int:
    return x * x


def test_map_keeps_input_order_whatever_the_completion_order() -> None:
    async def reversed_finish(x: int) -> int:
        for _ in range(10 - x):  # lower inputs finish later
            await asyncio.sleep(0)
        return x

    result = ff.run_sync(ff.map(reversed_finish), range(10))
    assert result.output == list(range(10))
    assert [o.index for o in result.outcomes] == list(range(10))


def test_map_reads_iterables_generators_and_async_iterables() -> None:
    async def agen():  # type: ignore[no-untyped-def]
        for i in range(5):
            yield i

    assert ff.run_sync(ff.map(square), (i for i in range(5))).output == [0, 1, 4, 9, 16]
    assert ff.run_sync(ff.map(square), agen()).output == [0, 1, 4, 9, 16]
    assert ff.run_sync(ff.map(square), []).output == []


def test_map_collects_failures_as_outcomes_by_default() -> None:
    inputs = [Action(value=1), Action.failing("bad row"), Action(value=3)]
    result = ff.run_sync(ff.map(act), inputs)
    assert result.output == [1, 3]
    statuses = [o.status for o in result.outcomes]
    assert statuses == [ff.Status.SUCCEEDED, ff.Status.FAILED, ff.Status.SUCCEEDED]
    failed = result.outcomes[1]
    assert failed.error is not None
    assert failed.error.type == "ScriptedError"
    assert "bad row" in failed.error.message
    assert result.summary.counts[ff.Status.FAILED] == 1


def test_map_keys_name_outcomes() -> None:
    result = ff.run_sync(ff.map(square, key=lambda x: f"id-{x}"), [2, 3])
    assert [o.key for o in result.outcomes] == ["id-2", "id-3"]


def test_a_failing_key_function_fails_only_that_input() -> None:
    result = ff.run_sync(ff.map(square, key=lambda x: 10 // x), [0, 5])
    assert [o.status for o in result.outcomes] == [ff.Status.FAILED, ff.Status.SUCCEEDED]
    assert result.outcomes[0].error is not None
    assert result.outcomes[0].error.type == "ZeroDivisionError"


def test_map_refuses_a_single_string_with_the_fix() -> None:
    with pytest.raises(ff.RunFailed) as info:
        ff.run_sync(ff.map(square), "abc")
    assert isinstance(info.value.__cause__, ff.UsageError)
    assert "wrap one input in a list" in str(info.value.__cause__)


def test_parallel_returns_results_by_agent_name() -> None:
    async def skeptic(plan: str) -> str:
        return f"no to {plan}"

    def optimist(plan: str) -> str:
        return f"yes to {plan}"

    result = ff.run_sync(ff.parallel(skeptic, optimist, realist=lambda p: "maybe"), "lunch")
    assert result.output == {"skeptic": "no to lunch", "optimist": "yes to lunch", "realist": "maybe"}
    assert [o.path for o in result.outcomes] == ["parallel[skeptic]", "parallel[optimist]", "parallel[realist]"]


def test_parallel_runs_the_same_agent_twice_under_numbered_names() -> None:
    calls: list[int] = []

    async def spanish(x: int) -> int:
        calls.append(x)
        return x + len(calls)

    result = ff.run_sync(ff.parallel(spanish, spanish, spanish), 1)
    assert sorted(result.output) == ["spanish", "spanish#2", "spanish#3"]
    assert sorted(result.output.values()) == [2, 3, 4]  # three calls, not one
    assert [o.path for o in result.outcomes] == ["parallel[spanish]", "parallel[spanish#2]", "parallel[spanish#3]"]


def test_parallel_numbering_skips_a_name_already_taken() -> None:
    spec = ff.parallel(square, square, ff.agent(square, name="square#2"))
    assert sorted(ff.run_sync(spec, 3).output) == ["square", "square#2", "square#3"]


def test_parallel_names_the_positional_agents() -> None:
    spec = ff.parallel(square, square, names=["first", "second"], third=square)
    assert ff.run_sync(spec, 3).output == {"first": 9, "second": 9, "third": 9}
    with pytest.raises(ff.UsageError, match=r"names the 2 agent\(s\) passed by position: pass a list of 2"):
        ff.parallel(square, square, names=["only"])


def test_sequence_pipes_results_and_stops_at_a_failure() -> None:
    assert ff.run_sync(ff.sequence(square, square, str), 2).output == "16"

    def broken(_: int) -> int:
        raise KeyError("missing")

    with pytest.raises(ff.RunFailed) as info:
        ff.run_sync(ff.sequence(square, broken, str), 2)
    assert isinstance(info.value.__cause__, KeyError)


def test_race_first_success_wins_and_the_rest_are_cancelled() -> None:
    async def fast(x: int) -> str:
        return "fast"

    async def slow(x: int) -> str:
        await asyncio.Event().wait()
        return "slow"

    log = EventLog()
    result = ff.run_sync(ff.race(slow, fast), 1, on_event=log)
    assert result.output == "fast"
    by_path = {o.path: o for o in result.outcomes}
    assert by_path["race[slow]"].status is ff.Status.CANCELLED
    assert by_path["race[slow]"].reason == "race won by fast"


def test_race_fails_when_every_racer_fails() -> None:
    with pytest.raises(ff.RunFailed) as info:
        ff.run_sync(ff.race(act, act), Action.failing())
    assert isinstance(info.value.__cause__, ff.RaceFailed)


def test_hedged_race_never_starts_the_backup_when_the_first_is_quick(clock: VirtualClock) -> None:
    calls: list[str] = []

    async def primary(x: int) -> str:
        calls.append("primary")
        return "primary"

    async def backup(x: int) -> str:
        calls.append("backup")
        return "backup"

    result = ff.run_sync(ff.race(primary, backup, stagger=30), 1)
    assert result.output == "primary"
    assert calls == ["primary"]
    backup_outcome = result.outcomes[1]
    assert backup_outcome.status in (ff.Status.SKIPPED, ff.Status.CANCELLED)
    assert backup_outcome.start is None
    assert backup_outcome.reason == "race won by primary"


def test_hedged_race_starts_the_backup_when_the_first_is_slow(clock: VirtualClock) -> None:
    async def stuck(x: int) -> str:
        await asyncio.sleep(10)
        return "stuck"

    async def backup(x: int) -> str:
        return "backup"

    result = ff.run_sync(ff.race(stuck, backup, stagger=1.5), 1)
    assert result.output == "backup"
    assert clock.now == pytest.approx(1.5)  # the backup started after the stagger, and won at once
    assert result.outcomes[0].status is ff.Status.CANCELLED


def test_vote_majority_with_early_stop() -> None:
    answers = iter(["a", "a", "a", "b", "b"])

    async def sample(_: object) -> str:
        answer = next(answers)
        await asyncio.sleep(0)  # let every sample start before any finishes
        if answer == "b":
            await asyncio.Event().wait()  # the last two never finish: the vote must not need them
        return answer

    result = ff.run_sync(ff.vote(sample, n=5), None)
    assert result.output == "a"
    assert [o.status for o in result.outcomes].count(ff.Status.CANCELLED) == 2


def test_vote_tie_goes_to_the_answer_first_in_sample_order() -> None:
    answers = iter(["x", "y", "y", "x"])

    async def sample(_: object) -> str:
        return next(answers)

    assert ff.run_sync(ff.vote(sample, n=4), None).output == "x"
    assert ff.majority_of(["y", "x", "x", "y"]) == "y" if hasattr(ff, "majority_of") else True


def test_vote_with_judge_and_with_custom_decide() -> None:
    counter = iter(range(100))

    async def sample(_: object) -> int:
        return next(counter)

    def pick_max(values: list[int]) -> int:
        return max(values)

    assert ff.run_sync(ff.vote(sample, n=3, judge=pick_max), None).output == 2
    assert ff.run_sync(ff.vote(sample, n=3, decide=min), None).output == 3


def test_vote_fails_when_no_sample_succeeds() -> None:
    with pytest.raises(ff.RunFailed) as info:
        ff.run_sync(ff.vote(act, n=3), Action.failing())
    assert isinstance(info.value.__cause__, ff.VoteFailed)


def test_vote_ignores_failed_samples() -> None:
    results = iter([RuntimeError("x"), "a", RuntimeError("y"), "b", "a"])

    async def sample(_: object) -> str:
        value = next(results)
        if isinstance(value, Exception):
            raise value
        return value

    result = ff.run_sync(ff.vote(sample, n=5), None)
    assert result.output == "a"
    assert result.summary.counts[ff.Status.FAILED] == 2


def test_map_reduce_reduces_hierarchically_in_groups_of_fan_in() -> None:
    group_sizes: list[int] = []

    def total(values: list[int]) -> int:
        group_sizes.append(len(values))
        return sum(values)

    spec = ff.map_reduce(split=lambda n: range(n), map=square, reduce=total, fan_in=4)
    result = ff.run_sync(spec, 50)
    assert result.output == sum(i * i for i in range(50))
    assert max(group_sizes) <= 4
    assert len(group_sizes) == 13 + 4 + 1  # 50 results -> 13 groups -> 4 groups -> the final reduce
    assert len(result.outcomes) == 50  # the map's inputs are the run's outcomes


def test_map_reduce_paths_name_every_stage() -> None:
    log = EventLog()
    spec = ff.map_reduce(split=lambda n: range(n), map=square, reduce=sum, fan_in=2)
    ff.run_sync(spec, 3, on_event=log)
    paths = {e.path for e in log.finished()}
    assert {"split[split]", "map[0]", "map[2]", "reduce[0.0]", "reduce[0.1]", "reduce[final]"} <= paths


def test_patterns_nest_at_any_depth() -> None:
    async def solve(x: int) -> int:
        return x % 3

    spec = ff.map(ff.vote(ff.parallel(a=solve, b=solve), n=3))
    log = EventLog()
    result = ff.run_sync(spec, range(4), on_event=log)
    assert result.output == [{"a": x % 3, "b": x % 3} for x in range(4)]
    assert any(e.path == "map[2]/vote[1]/parallel[b]" for e in log.finished())
