"""``run_eagerly``: a coroutine that does not wait finishes in the caller's step; one that
waits goes on in a task, as it would have in its own."""

from __future__ import annotations

import asyncio

import pytest

from console.core.eager import run_eagerly


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


async def test_cancelling_the_task_cancels_what_the_coroutine_waits_for() -> None:
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    seen: list[str] = []
    done, task = run_eagerly(waiting(gate, seen))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gate.cancelled()
    assert seen == ["before", "cancelled"]
