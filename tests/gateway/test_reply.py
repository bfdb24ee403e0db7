"""The runner -> handler channel: order, back-pressure, and a job end that always gets through."""

from __future__ import annotations

import asyncio

from console.core.runners.chat import ENDED, Head, Reply


async def test_items_arrive_in_order_and_the_end_after_them() -> None:
    reply = Reply()
    getter = asyncio.create_task(reply.get())
    await asyncio.sleep(0)
    await reply.put(Head(200, "application/json"))
    await reply.put(b"x")
    await reply.put(None)
    reply.end()
    assert await getter == Head(200, "application/json")
    assert [await reply.get() for _ in range(3)] == [b"x", None, ENDED]


async def test_put_waits_for_a_slow_reader_but_end_never_waits() -> None:
    reply = Reply(maxsize=2)
    await reply.put(b"1")
    await reply.put(b"2")
    third = asyncio.create_task(reply.put(b"3"))
    await asyncio.sleep(0.01)
    assert not third.done() and len(reply) == 2  # the upstream read waits for the client
    assert await reply.get() == b"1"
    await asyncio.wait_for(third, 5)  # room again
    reply.end()  # a job's end is never held up by a full channel
    assert len(reply) == 3
    assert [await reply.get() for _ in range(3)] == [b"2", b"3", ENDED]


async def test_a_cancelled_put_leaves_the_channel_usable() -> None:
    reply = Reply(maxsize=1)
    await reply.put(b"1")
    blocked = asyncio.create_task(reply.put(b"2"))
    await asyncio.sleep(0.01)
    blocked.cancel()  # the job was cancelled while its runner waited for the client
    await asyncio.gather(blocked, return_exceptions=True)
    reply.end()
    assert [await reply.get(), await reply.get()] == [b"1", ENDED]
