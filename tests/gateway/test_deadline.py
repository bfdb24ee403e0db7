"""The runner's per-attempt deadline behaves as ``asyncio.timeout`` does (each case runs
against both)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from console.core.runners.chat import _Deadline


@contextlib.asynccontextmanager
async def _with_deadline(seconds: float) -> AsyncIterator[None]:
    with _Deadline(seconds):
        yield


@contextlib.asynccontextmanager
async def _with_asyncio(seconds: float) -> AsyncIterator[None]:
    async with asyncio.timeout(seconds):
        yield


KINDS = pytest.mark.parametrize("limit", [_with_deadline, _with_asyncio], ids=["deadline", "asyncio"])
Limit = Callable[[float], Any]


@KINDS
async def test_time_up_is_a_timeout_error_and_the_task_is_not_left_cancelled(limit: Limit) -> None:
    async def body() -> int:
        async with limit(0.05):
            await asyncio.sleep(10)
        return 1

    task = asyncio.create_task(body())
    with pytest.raises(TimeoutError):
        await task
    assert task.cancelling() == 0


@KINDS
async def test_an_answer_in_time_comes_back_and_its_timer_is_gone(limit: Limit) -> None:
    async def body() -> tuple[int, int]:
        async with limit(0.05):
            await asyncio.sleep(0)
        await asyncio.sleep(0.1)  # past the limit: nothing may fire now
        return 7, asyncio.current_task().cancelling()  # type: ignore[union-attr]

    assert await asyncio.create_task(body()) == (7, 0)


@KINDS
async def test_another_cancellation_passes_through(limit: Limit) -> None:
    started = asyncio.Event()

    async def body() -> None:
        async with limit(10):
            started.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(body())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@KINDS
async def test_a_cancellation_swallowed_inside_is_not_turned_into_a_timeout(limit: Limit) -> None:
    async def body() -> str:
        async with limit(0.05):
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(10)
        return "finished"

    assert await asyncio.create_task(body()) == "finished"


@KINDS
async def test_an_error_raised_inside_is_kept(limit: Limit) -> None:
    async def body() -> None:
        async with limit(10):
            raise KeyError("x")

    with pytest.raises(KeyError):
        await asyncio.create_task(body())


@KINDS
async def test_a_cancel_caught_before_the_block_does_not_hide_the_timeout(limit: Limit) -> None:
    # The task already heard (and swallowed) a cancel: its count is 1 on entry.
    async def body() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            asyncio.current_task().cancel()  # type: ignore[union-attr]
            await asyncio.sleep(10)
        async with limit(0.05):
            await asyncio.sleep(10)

    with pytest.raises(TimeoutError):
        await asyncio.create_task(body())
