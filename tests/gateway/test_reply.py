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


async def test_chunks_go_to_the_sink_while_nothing_is_queued() -> None:
    reply = Reply()
    written: list[bytes] = []

    async def sink(chunk: bytes) -> None:
        written.append(chunk)

    await reply.put(b"queued")  # before the handler took everything: queued
    reply.sink = sink
    await reply.put(b"behind")  # something is still queued: stays in order behind it
    assert written == [] and len(reply) == 2
    assert [await reply.get(), await reply.get()] == [b"queued", b"behind"]
    await reply.put(b"direct")
    await reply.put(None)  # the end always goes through the queue, to wake the handler
    assert written == [b"direct"] and await reply.get() is None


async def test_a_failing_sink_hands_the_chunk_back_to_the_handler() -> None:
    reply = Reply()

    async def gone(chunk: bytes) -> None:
        raise ConnectionResetError("Cannot write to closing transport")

    reply.sink = gone
    await reply.put(b"x")
    assert reply.sink is None and await reply.get() == b"x"  # the handler meets the failure
