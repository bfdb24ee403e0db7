"""A lean HTTP/1.1 client for the gateway's calls to plain-``http`` upstreams.

Every gateway request is one POST to its upstream, and the local lane runs them one at a
time, so the call's own CPU is the lane's pace. aiohttp's client spent about a fifth of
the owner's CPU per request on it (request and response objects, its connector, its
stream reader, its tracing hooks). This client does only what the runner needs: a
POST with a known body over a pooled keep-alive connection, the answer parsed by
``httptools`` (llhttp, the parser Node and uvicorn use), its body handed over whole or
chunk by chunk as it arrives. ``https`` upstreams (cloud APIs) keep aiohttp's client, with
its TLS and its certificate handling.

Its errors are aiohttp's ``ClientError`` kinds, so the runner's retry and error rules
apply unchanged. ``close()`` on a response aborts its connection: the upstream sees the
call go away at once (a timeout, a client that left). A connection goes back to the pool
only once its answer was read to the end and both sides keep it alive.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from urllib.parse import urlsplit

import aiohttp
import httptools
from multidict import CIMultiDict, CIMultiDictProxy

# Unread answer bytes past which the connection stops reading until the reader catches
# up (a client slower than its upstream); reading resumes below half of it.
HIGH_WATER = 1 << 20

_Key = tuple[str, int]


class _Target:
    """An upstream URL's address, and the head of a POST to it (headers included)."""

    __slots__ = ("key", "first", "headers", "head")

    def __init__(self, key: _Key, first: bytes) -> None:
        self.key = key
        self.first = first
        self.headers: Mapping[str, str] | None = None
        self.head = first


def _encode(headers: Mapping[str, str]) -> bytes:
    lines = []
    for name, value in headers.items():
        line = f"{name}: {value}"
        if "\r" in line or "\n" in line:  # one header must not become two (an injected key)
            raise ValueError(f"header {name!r} holds a line break; fix the value it comes from")
        lines.append(line + "\r\n")
    try:
        return "".join(lines).encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ValueError(f"a header holds a character HTTP cannot carry: {exc}") from exc


class WireSession:
    """Pooled keep-alive connections to ``http://`` upstreams; ``post`` is the call."""

    def __init__(self) -> None:
        self._idle: dict[_Key, list[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._targets: dict[str, _Target] = {}
        self.closed = False

    def _target(self, url: str, headers: Mapping[str, str]) -> _Target:
        """``url``'s address and the head of a POST to it with ``headers``, kept per URL
        (a keyless upstream's headers are one shared object: encoded once)."""
        target = self._targets.get(url)
        if target is None:
            parts = urlsplit(url)
            if parts.scheme != "http" or not parts.hostname:
                raise ValueError(f"not a plain http URL: {url!r}")
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            host = parts.netloc.rpartition("@")[2]
            first = f"POST {path} HTTP/1.1\r\nHost: {host}\r\n".encode("latin-1")
            target = _Target((parts.hostname, parts.port or 80), first)
            if len(self._targets) < 1024:  # upstream URLs come from config: a handful
                self._targets[url] = target
        if target.headers is not headers:
            target.head = target.first + _encode(headers)
            target.headers = headers
        return target

    async def post(self, url: str, data: bytes, headers: Mapping[str, str]) -> WireResponse:
        """Send the POST; return once the answer's head is in (its body follows)."""
        if self.closed:
            raise aiohttp.ClientConnectionError("the upstream session is closed")
        target = self._target(url, headers)
        key = target.key
        request = b"%sContent-Length: %d\r\n\r\n%s" % (target.head, len(data), data)
        idle = self._idle.get(key)
        while idle:  # a pooled connection the upstream closed meanwhile is not used
            conn = idle.pop()
            if conn.usable():
                try:
                    return await conn.send(request)
                except _Stale as exc:
                    # It closed before any answer (an idle close racing the request): one
                    # fresh connection, never a second pooled one, never after close().
                    if self.closed:
                        raise aiohttp.ServerDisconnectedError() from exc
                    break
        conn = await self._connect(key)
        try:
            return await conn.send(request)
        except _Stale as exc:
            raise aiohttp.ServerDisconnectedError() from exc

    async def _connect(self, key: _Key) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(lambda: _Connection(self, key), *key)
        except OSError as exc:
            raise aiohttp.ClientConnectionError(f"cannot connect to {key[0]}:{key[1]}: {exc}") from exc
        return conn

    def _reuse(self, conn: _Connection) -> None:
        if self.closed:
            conn.abort()
        else:
            self._idle.setdefault(conn.key, []).append(conn)

    def _forget(self, conn: _Connection) -> None:
        self._open.discard(conn)
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)

    async def close(self) -> None:
        self.closed = True
        for conn in list(self._open):
            conn.abort()
        self._idle.clear()


class _Stale(Exception):
    """A connection closed before any of the answer came (a pooled one the upstream had
    just let go): the request can go again on a new connection."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its answer parsed as it comes."""

    def __init__(self, session: WireSession, key: _Key) -> None:
        self.session = session
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self.in_flight = False  # a request was sent and its answer not yet finished with
        self._answer()

    def _answer(self) -> None:
        """Ready for the next answer."""
        self.status = 0
        self._fields: list[tuple[str, str]] = []
        self.headers: CIMultiDictProxy[str] | None = None
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.complete = False
        self.started = False  # any byte of this answer came
        self.error: BaseException | None = None
        self.keep_alive = False
        self.until_close = False  # no length and not chunked: the body ends with the connection

    # ---- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.session._open.add(self)

    def data_received(self, data: bytes) -> None:
        if not self.in_flight or self.complete:  # an answer nobody asked for: out of step
            self._fail(aiohttp.ClientPayloadError("the upstream sent bytes no request asked for"))
            self.abort()
            return
        self.started = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(aiohttp.ClientPayloadError("the upstream switched protocols"))
            self.abort()
        except httptools.HttpParserError as exc:
            self._fail(aiohttp.ClientPayloadError(f"the upstream's answer is not valid HTTP: {exc}"))
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.session._forget(self)
        self.keep_alive = False
        if self.complete:
            return
        if self.until_close:
            self.complete = True
            self._wake()
        elif not self.started:
            self._fail(_Stale())
        else:
            self._fail(aiohttp.ServerDisconnectedError())

    # ---- httptools callbacks ------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        if self.complete:  # a second answer in the same bytes: out of step, never pooled
            self.keep_alive = False
            return
        self.status = self.parser.get_status_code()
        if self.status < 200:  # 100 Continue and the like: the real answer follows
            self._fields = []
            return
        self.headers = CIMultiDictProxy(CIMultiDict(self._fields))
        self.keep_alive = self.parser.should_keep_alive()
        self.until_close = "Content-Length" not in self.headers and "chunked" not in self.headers.get(
            "Transfer-Encoding", "").lower()  # fmt: skip
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.complete:  # a second answer in the same bytes: out of step, never pooled
            self.keep_alive = False
            return
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.complete:  # a second answer in the same bytes: out of step, never pooled
            self.keep_alive = False
            return
        if self.headers is None:  # the end of an informational answer
            return
        self.complete = True
        self.until_close = False
        self._wake()

    # ---- the caller's side ----------------------------------------------------------------

    def usable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    async def send(self, request: bytes) -> WireResponse:
        assert self.transport is not None
        self.in_flight = True
        self.transport.write(request)
        try:
            while self.headers is None:
                await self._wait()
        except BaseException:
            self.abort()
            raise
        return WireResponse(self)

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        self.error = exc
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    async def _wait(self) -> None:
        if self.error is not None:
            raise self.error
        self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter

    async def next_chunk(self) -> bytes:
        while not self.chunks:
            if self.complete:
                return b""
            await self._wait()
        chunk = self.chunks.popleft()
        self.buffered -= len(chunk)
        if self._paused and self.buffered < HIGH_WATER // 2 and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return chunk

    async def read_all(self) -> bytes:
        while not self.complete:
            self._resume()  # reading it all: no limit
            await self._wait()
        body = b"".join(self.chunks)
        self.chunks.clear()
        self.buffered = 0
        return body

    def _resume(self) -> None:
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()

    def abort(self) -> None:
        self.keep_alive = False
        if self.transport is not None:
            self.transport.abort()

    def finish(self) -> None:
        """The caller is done with the answer: pooled again if it was read to its end and
        both sides keep it alive, else closed."""
        if self.complete and self.keep_alive and self.usable() and not self.chunks:
            self._resume()  # the last chunks may have paused it: an idle connection reads
            self.in_flight = False
            self._answer()
            self.session._reuse(self)
        else:
            self.abort()


class _Content:
    """``response.content``, as the runner reads a stream: ``readany()`` until ``b""``."""

    __slots__ = ("_conn",)

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn

    async def readany(self) -> bytes:
        return await self._conn.next_chunk()


class WireResponse:
    """The part of ``aiohttp.ClientResponse`` the runner uses."""

    __slots__ = ("_conn", "status", "headers", "content", "_done")

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn
        self.status = conn.status
        self.headers: CIMultiDictProxy[str] = conn.headers  # type: ignore[assignment]
        self.content = _Content(conn)
        self._done = False

    async def read(self) -> bytes:
        return await self._conn.read_all()

    def close(self) -> None:
        """Abort: the connection is dropped, so the upstream sees the call go away."""
        if not self._done:
            self._done = True
            self._conn.abort()

    def release(self) -> None:
        if not self._done:
            self._done = True
            self._conn.finish()

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"<WireResponse {self.status}>"
