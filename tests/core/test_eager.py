"""``run_eagerly``: a coroutine that does not wait finishes in the caller's step; one that
waits goes on in a task, as it would have in its own. ``start_task``: a task whose first
step ran before it was returned, as that task (current task, context, timeouts)."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from console.core.eager import run_eagerly, start_task

WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="caller")


async def quick(value: int) -> int:
    return value * 2


async def failing() -> int:
    raise ValueError("no")


async def waiting(gate: asyncio.Future[int], seen: list[str]) -> int:
    seen.append("before")
    try:
        got = await gate
    except asyncio.CancelledError:
        seen.append("cancelled")
        raise
    await asyncio.sleep(0)  # a bare yield, too
    seen.append("after")
    return got + 1


async def test_a_coroutine_that_never_waits_finishes_at_once() -> None:
    assert run_eagerly(quick(21)) == (True, 42)


async def test_its_exception_is_raised_at_once() -> None:
    with pytest.raises(ValueError, match="no"):
        run_eagerly(failing())


async def test_a_coroutine_that_waits_goes_on_in_a_task() -> None:
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    seen: list[str] = []
    done, task = run_eagerly(waiting(gate, seen))
    assert not done and seen == ["before"]
    await asyncio.sleep(0)
    assert not task.done()
    gate.set_result(1)
    assert await task == 2
    assert seen == ["before", "after"]


async def test_an_exception_after_the_wait_reaches_the_task() -> None:
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    done, task = run_eagerly(waiting(gate, []))
    gate.set_exception(ValueError("late"))
    with pytest.raises(ValueError, match="late"):
        await task


async def cancel_while_waiting(start: Callable[[Coroutine[Any, Any, int]], asyncio.Future[int]],
                               turns: int) -> None:  # fmt: skip
    """``waiting`` started by ``start``, cancelled after ``turns`` turns of the loop: the
    coroutine hears it where it waits, and the future it waits for is cancelled."""
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    seen: list[str] = []
    task = start(waiting(gate, seen))
    for _ in range(turns):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gate.cancelled()
    assert seen == ["before", "cancelled"]


async def test_cancelling_the_task_cancels_what_the_coroutine_waits_for() -> None:
    await cancel_while_waiting(lambda coro: run_eagerly(coro)[1], turns=1)


async def test_a_started_task_has_run_its_first_step_when_it_is_returned() -> None:
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    seen: list[str] = []
    task = start_task(waiting(gate, seen), name="eager")
    assert seen == ["before"] and not task.done() and task.get_name() == "eager"
    gate.set_result(1)
    assert await task == 2
    assert seen == ["before", "after"]


async def test_its_first_step_runs_as_the_task_in_its_own_context() -> None:
    caller = asyncio.current_task()
    inside: list[object] = []

    async def first_step() -> str:
        inside.append(asyncio.current_task())
        WHO.set("task")
        await asyncio.sleep(0)
        inside.append(asyncio.current_task())
        return WHO.get()

    task = start_task(first_step())
    assert inside == [task]  # not the caller's task
    assert asyncio.current_task() is caller  # the caller is current again
    assert WHO.get() == "caller"  # what the step set stays in the task's context
    assert await task == "task"
    assert inside == [task, task]


async def test_a_timeout_entered_in_the_first_step_cancels_that_task_only() -> None:
    async def slow() -> str:
        async with asyncio.timeout(0.01):
            await asyncio.sleep(10)
        return "not reached"

    task = start_task(slow())
    with pytest.raises(TimeoutError):
        await task
    await asyncio.sleep(0.02)  # the caller was never cancelled
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_task_that_ends_in_its_first_step_has_its_result_or_exception() -> None:
    assert await start_task(quick(21)) == 42
    with pytest.raises(ValueError, match="no"):
        await start_task(failing())


@pytest.mark.parametrize("turns", [0, 1], ids=["before its own first step", "once waiting"])
async def test_a_cancelled_task_cancels_what_its_coroutine_waits_for(turns: int) -> None:
    await cancel_while_waiting(start_task, turns)  # 0: its own first step has not run yet
