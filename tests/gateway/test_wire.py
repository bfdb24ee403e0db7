"""The lean upstream client (``console/core/runners/wire.py``) against real loopback
servers that answer however a test scripts them: lengths, chunks, no length, bad bytes,
connections dropped at each point."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from console.core.runners import wire
from console.core.runners.wire import WireSession
from tests.helpers import until

JSON = {"Content-Type": "application/json"}
Answer = Callable[[bytes, asyncio.StreamWriter], Awaitable[bool]]  # False: close after


class Upstream:
    """A loopback server: reads each request (head and Content-Length body) and lets
    ``answer`` write the reply; records the requests and how connections ended."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.connections = 0
        self.ended: list[str] = []  # per connection: "eof" when the client went away
        self.url = ""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                if not await self.answer(request, writer):
                    writer.close()
                    return
        except asyncio.IncompleteReadError:
            self.ended.append("eof")
            writer.close()
        except ConnectionError:
            self.ended.append("reset")
            writer.close()

    @contextlib.asynccontextmanager
    async def running(self, host: str = "127.0.0.1") -> AsyncIterator[Upstream]:
        server = await asyncio.start_server(self._serve, host, 0)
        port = server.sockets[0].getsockname()[1]
        where = f"[{host}]" if ":" in host else host
        self.url = f"http://{where}:{port}/v1/chat/completions"
        try:
            yield self
        finally:
            server.close()


def whole(body: bytes, status: int = 200, keep: bool = True) -> Answer:
    async def answer(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (status, len(body), body))  # fmt: skip
        await writer.drain()
        return keep

    return answer


def raw(data: bytes, keep: bool) -> Answer:
    """Answer with exactly ``data``; ``keep``: leave the connection open after."""

    async def answer(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(data)
        await writer.drain()
        return keep

    return answer


@pytest.fixture
async def session() -> AsyncIterator[WireSession]:
    s = WireSession()
    try:
        yield s
    finally:
        await s.close()


async def test_a_whole_answer_and_the_connection_kept_for_the_next_call(session: WireSession) -> None:
    async with Upstream(whole(b'{"ok": 1}')).running() as up:
        for _ in range(3):
            resp = await session.post(up.url, b'{"model": "m"}', {"Content-Type": "application/json", "Authorization": "Bearer k"})
            assert resp.status == 200 and resp.headers["content-type"] == "application/json"
            assert await resp.read() == b'{"ok": 1}'
            resp.release()
        assert up.connections == 1  # one keep-alive connection for all three
        first = up.requests[0]
        assert first.startswith(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:")
        assert b"\r\nAuthorization: Bearer k\r\n" in first and b"\r\nContent-Length: 14\r\n" in first
        assert first.endswith(b'\r\n\r\n{"model": "m"}')


async def test_a_chunked_stream_is_handed_over_as_each_chunk_arrives(session: WireSession) -> None:
    go_on = asyncio.Event()

    async def stream(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(b"6\r\nfirst\n\r\n")
        await writer.drain()
        await go_on.wait()  # the second chunk only once the first was read
        writer.write(b"7\r\nsecond\n\r\n0\r\n\r\n")
        await writer.drain()
        return True

    async with Upstream(stream).running() as up:
        resp = await session.post(up.url, b"{}", JSON)
        assert await resp.content.readany() == b"first\n"
        go_on.set()
        assert await resp.content.readany() == b"second\n"
        assert await resp.content.readany() == b""
        resp.release()
        resp = await session.post(up.url, b"{}", JSON)  # the same connection again
        assert await resp.read() == b"first\nsecond\n"
        assert up.connections == 1


async def test_an_answer_without_a_length_ends_with_its_connection(session: WireSession) -> None:
    until_close = raw(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it", keep=False)
    async with Upstream(until_close).running() as up:
        resp = await session.post(up.url, b"{}", JSON)
        assert await resp.read() == b"all of it"
        resp.release()
        resp = await session.post(up.url, b"{}", JSON)  # not reused: a new connection
        assert await resp.read() == b"all of it"
        assert up.connections == 2


async def test_a_pooled_connection_the_upstream_closed_is_not_used(session: WireSession) -> None:
    async with Upstream(whole(b"{}", keep=False)).running() as up:
        resp = await session.post(up.url, b"{}", JSON)
        assert await resp.read() == b"{}"
        resp.release()  # the answer said keep-alive; the server closes right after
        await asyncio.sleep(0.05)
        resp = await session.post(up.url, b"{}", JSON)
        assert resp.status == 200 and await resp.read() == b"{}"
        assert up.connections == 2


async def test_a_connection_that_closes_as_the_request_goes_is_retried_on_a_new_one(session: WireSession) -> None:
    """The upstream lets a pooled connection go just as the next request is written:
    no byte of an answer came, so the request goes again on a fresh connection."""
    calls = 0

    async def drop_second(request: bytes, writer: asyncio.StreamWriter) -> bool:
        nonlocal calls
        calls += 1
        if calls == 2:
            writer.transport.abort()
            return False
        return await whole(b'{"n": %d}' % calls)(request, writer)

    async with Upstream(drop_second).running() as up:
        resp = await session.post(up.url, b"{}", JSON)
        assert await resp.read() == b'{"n": 1}'
        resp.release()
        resp = await session.post(up.url, b"{}", JSON)
        assert await resp.read() == b'{"n": 3}'
        assert up.connections == 2 and len(up.requests) == 3


async def test_an_answer_cut_short_is_a_client_error(session: WireSession) -> None:
    async def cut(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        await writer.drain()
        writer.transport.abort()
        return False

    async with Upstream(cut).running() as up:
        resp = await session.post(up.url, b"{}", JSON)
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await resp.read()


async def test_bytes_that_are_not_http_are_a_client_error(session: WireSession) -> None:
    async with Upstream(raw(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", keep=True)).running() as up:
        with pytest.raises(aiohttp.ClientPayloadError, match="not valid HTTP"):
            await session.post(up.url, b"{}", JSON)


async def test_nothing_listening_is_a_connection_error(session: WireSession) -> None:
    async with Upstream(whole(b"{}")).running() as up:
        url = up.url
    with pytest.raises(aiohttp.ClientConnectionError, match="cannot connect"):
        await session.post(url, b"{}", JSON)


async def test_closing_a_response_aborts_its_connection_at_once(session: WireSession) -> None:
    async def endless(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        while True:
            writer.write(b"3\r\ntok\r\n")
            await writer.drain()
            await asyncio.sleep(0.01)

    async with Upstream(endless).running() as up:
        resp = await session.post(up.url, b"{}", JSON)
        assert await resp.content.readany()
        resp.close()
        await until(lambda: up.ended == ["reset"], what="the upstream to see the call go away")


async def test_a_call_cancelled_before_the_answer_drops_its_connection(session: WireSession) -> None:
    async def never(request: bytes, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(30)
        return False

    async with Upstream(never).running() as up:
        call = asyncio.create_task(session.post(up.url, b"{}", JSON))
        await until(lambda: len(up.requests) == 1, what="the request to arrive")
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await until(lambda: not session._open, what="the connection to be dropped")
        assert not any(session._idle.values())


async def test_a_slow_reader_stops_the_connection_reading_ahead(session: WireSession, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A stream read slower than it comes is not buffered without bound: reading pauses
    past the high-water mark and resumes as the reader catches up; nothing is lost."""
    monkeypatch.setattr(wire, "HIGH_WATER", 64 << 10)
    chunk = b"x" * 4096
    count = 200  # 800 KiB, far past 64 KiB

    async def flood(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(count):
            writer.write(b"1000\r\n" + chunk + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    async with Upstream(flood).running() as up:
        resp = await session.post(up.url, b"{}", JSON)
        conn = resp._conn
        got = bytearray()
        most = 0
        while data := await resp.content.readany():
            got += data
            most = max(most, conn.buffered)
            await asyncio.sleep(0.001)
        assert len(got) == count * len(chunk)
        # Bounded: the mark, plus what one read of the socket can bring in past it.
        assert most < (64 << 10) + (256 << 10)
        resp.release()


async def test_each_call_carries_its_own_headers(session: WireSession) -> None:
    """A keyless upstream's headers are one shared object, encoded once; a keyed one's
    are new each call, and a changed key goes out with the next call."""
    shared = {"Content-Type": "application/json"}
    async with Upstream(whole(b"{}")).running() as up:
        for headers in (shared, shared, {**shared, "Authorization": "Bearer one"},
                        {**shared, "Authorization": "Bearer two"}, shared):  # fmt: skip
            resp = await session.post(up.url, b"{}", headers)
            await resp.read()
            resp.release()
        auth = [r.split(b"\r\n\r\n")[0].count(b"Authorization") for r in up.requests]
        assert auth == [0, 0, 1, 1, 0]
        assert b"Bearer one" in up.requests[2] and b"Bearer two" in up.requests[3]


async def test_a_header_with_a_line_break_is_refused_before_anything_is_sent(session: WireSession) -> None:
    async with Upstream(whole(b"{}")).running() as up:
        with pytest.raises(ValueError, match="line break"):
            await session.post(up.url, b"{}", {"Authorization": "Bearer k\r\nX-Evil: 1"})
        assert up.connections == 0


async def test_an_answer_that_ends_the_connection_closes_it(session: WireSession) -> None:
    """The upstream says ``Connection: close`` and waits for the client to hang up: once
    the answer is read the connection is closed, never pooled, and the next call opens a
    new one."""

    async def closing(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        return True  # the server waits for the client to end the connection

    async with Upstream(closing).running() as up:
        for n in (1, 2):
            resp = await session.post(up.url, b"{}", JSON)
            assert await resp.read() == b"{}"
            resp.release()
            await until(lambda: len(up.ended) == n, what="the connection to end")
        assert up.ended == ["eof", "eof"] and up.connections == 2


async def test_an_ipv6_loopback_upstream(session: WireSession) -> None:
    try:
        probe = await asyncio.start_server(lambda r, w: None, "::1", 0)
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    probe.close()
    async with Upstream(whole(b"{}")).running("::1") as up:
        resp = await session.post(up.url, b"{}", JSON)
        assert await resp.read() == b"{}"
        assert b"\r\nHost: [::1]:" in up.requests[0]


async def test_a_whole_answer_past_the_high_water_mark_leaves_its_connection_reading(session: WireSession, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A big answer read with read() paused reading on its way; the pooled connection
    reads again, so the next call's answer arrives (it hung until its deadline)."""
    monkeypatch.setattr(wire, "HIGH_WATER", 16 << 10)
    async with Upstream(whole(b"x" * (256 << 10))).running() as up:
        for _ in range(2):
            resp = await session.post(up.url, b"{}", JSON)
            assert len(await asyncio.wait_for(resp.read(), 10)) == 256 << 10
            resp.release()
        assert up.connections == 1


async def test_an_answer_nobody_asked_for_drops_the_connection(session: WireSession) -> None:
    """Bytes after a complete answer (or on an idle connection) put the connection out of
    step: it is dropped, and the next call gets its own answer on a new one."""
    n = 0

    async def extra(request: bytes, writer: asyncio.StreamWriter) -> bool:
        nonlocal n
        n += 1
        body = b'{"n": %d}' % n
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        if n == 1:
            writer.write(b"HTTP/1.1 408 X\r\nContent-Length: 0\r\n\r\n")  # a stray answer
        await writer.drain()
        return True

    async with Upstream(extra).running() as up:
        resp = await session.post(up.url, b"{}", JSON)
        assert await resp.read() == b'{"n": 1}'
        resp.release()
        await asyncio.sleep(0.05)
        resp = await session.post(up.url, b"{}", JSON)
        assert resp.status == 200 and await resp.read() == b'{"n": 2}'
        assert up.connections == 2
