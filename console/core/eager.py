"""Run a coroutine at once, in the caller's step, and hand it to a task only if it must
wait: the store's writes finish without waiting unless another process holds the lock,
and a task (plus the shield around it) costs three turns of the event loop.

    done, value = run_eagerly(store.add_job(job))
    if not done:
        value = await asyncio.shield(value)  # the task running the rest of it
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_eagerly(coro: Coroutine[Any, Any, T]) -> tuple[bool, Any]:
    """``(True, result)`` when ``coro`` finished without suspending (its exception, if it
    raised, propagates here); else ``(False, task)``, the task running the rest of it."""
    try:
        waiting = coro.send(None)
    except StopIteration as stop:
        return True, stop.value
    return False, asyncio.ensure_future(_rest(coro, waiting))


async def _rest(coro: Coroutine[Any, Any, T], waiting: Any) -> T:
    """Drive ``coro`` on from where it suspended, as its own task would have: resumed once
    the future it awaits is done; a cancel cancels that future, or is thrown into it."""
    while True:
        try:
            if waiting is None:  # a bare yield (``asyncio.sleep(0)``): one turn of the loop
                await asyncio.sleep(0)
            else:
                waiting._asyncio_future_blocking = False
                await asyncio.wait((waiting,))  # done, whatever its outcome: coro reads it
            step = coro.send
            arg: Any = None
        except asyncio.CancelledError as exc:
            if waiting is not None and waiting.cancel():
                continue  # coro meets the CancelledError where it awaits
            step, arg = coro.throw, exc
        try:
            waiting = step(arg)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
