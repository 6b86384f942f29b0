import asyncio
import threading

import pytest

import fanfold as ff


def test_plain_functions_sync_and_async_are_agents() -> None:
    async def double(x: int) -> int:
        return 2 * x

    def triple(x: int) -> int:
        return 3 * x

    assert ff.run_sync(double, 4).output == 8
    assert ff.run_sync(triple, 4).output == 12
    assert ff.run_sync(ff.agent(triple), 4).output == 12


def test_decorated_agent_is_still_callable() -> None:
    @ff.agent
    def shout(text: str) -> str:
        return text.upper()

    assert shout("hi") == "HI"
    assert shout.name == "shout"


def test_function_taking_ctx_receives_the_context() -> None:
    @ff.agent
    async def where(x: int, ctx: ff.Context) -> str:
        return f"{ctx.path}@{ctx.attempt}"

    result = ff.run_sync(ff.map(where), [1, 2])
    assert result.output == ["map[0]@1", "map[1]@1"]


def test_sync_functions_run_in_worker_threads_not_on_the_loop() -> None:
    main = threading.get_ident()

    def which_thread(_: int) -> int:
        return threading.get_ident()

    result = ff.run_sync(ff.map(which_thread), range(4))
    assert main not in result.output


def test_sync_agents_do_not_block_the_event_loop() -> None:
    # A sync agent blocks on a threading.Event that only an async sibling can set: with the sync
    # call on the loop thread this would deadlock (pytest-timeout would fail the test).
    released = threading.Event()

    def blocking(_: object) -> str:
        released.wait()
        return "sync done"

    async def releaser(_: object) -> str:
        await asyncio.sleep(0)
        released.set()
        return "released"

    result = ff.run_sync(ff.parallel(blocking, releaser), None)
    assert result.output == {"blocking": "sync done", "releaser": "released"}


def test_objects_with_async_run_are_agents() -> None:
    class Echo:
        name = "echo"

        async def run(self, input: object, ctx: ff.Context) -> object:
            return (input, ctx.path)

    assert ff.run_sync(ff.map(Echo()), ["a"]).output == [("a", "map[0]")]


@pytest.mark.parametrize("bad", [42, "text", None])
def test_non_agents_are_refused_with_the_fix(bad: object) -> None:
    with pytest.raises(ff.UsageError, match="pass a function"):
        ff.map(bad)


def test_function_with_too_many_parameters_is_refused() -> None:
    def three(a: int, b: int, c: int) -> int:
        return a

    with pytest.raises(ff.UsageError, match=r"def f\(input\) or def f\(input, ctx\)"):
        ff.agent(three)


def test_resources_must_be_a_list_of_names() -> None:
    with pytest.raises(ff.UsageError, match=r"pass \['db'\]"):
        ff.agent(resources="db")  # type: ignore[arg-type]


def test_branch_local_state_is_copied_not_shared() -> None:
    async def writer(x: int, ctx: ff.Context) -> dict[str, int]:
        ctx.state["mine"] = x
        await asyncio.sleep(0)
        return dict(ctx.state)

    result = ff.run_sync(ff.map(writer), [1, 2, 3])
    assert result.output == [{"mine": 1}, {"mine": 2}, {"mine": 3}]


def test_channels_merge_shared_state_explicitly() -> None:
    total = ff.Channel("total", merge=lambda a, b: a + b, initial=0)

    async def count(x: int, ctx: ff.Context) -> int:
        ctx.publish(total, x)
        return ctx.read(total)

    result = ff.run_sync(ff.map(count), [1, 2, 3, 4])
    assert result.channels == {"total": 10}


def test_context_reports_time_left_before_the_deadline() -> None:
    async def left(_: object, ctx: ff.Context) -> float | None:
        return ctx.time_left

    assert ff.run_sync(left, None).output is None
    remaining = ff.run_sync(left, None, deadline=30).output
    assert remaining is not None
    assert 0 < remaining <= 30


def test_channels_merge_safely_from_sync_agents_in_threads() -> None:
    total = ff.Channel("total", merge=lambda a, b: a + b, initial=0)

    def count(x: int, ctx: ff.Context) -> int:
        for _ in range(200):
            ctx.publish(total, 1)
        return x

    result = ff.run_sync(ff.map(count), range(20), limits=ff.Limits(concurrency=8))
    assert result.channels == {"total": 4000}
