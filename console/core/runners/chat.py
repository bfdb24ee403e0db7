"""One gateway request (chat, completion, embed) as a job runner: it calls the upstream
model server and hands the answer to the waiting HTTP handler through a queue.

The runner is in-process and in-memory (``scheduler.submit(job, runner=...)``). Its
upstream call lives inside ``run``: cancelling the job closes the upstream connection
before ``run`` re-raises, so the lane is free only once the upstream call is gone.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from console.core.models import Job, JobState
from console.core.runners.base import Outcome, RunContext
from console.core.runners.wire import WireSession
from console.core.upstreams import Upstream

# Statuses worth another attempt: the server or something between us was in trouble.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_TAIL = 8192  # bytes of a stream kept to read its final usage record
_scan_once = json.JSONDecoder().scan_once  # what json.loads runs, less its Python wrappers


def loads(raw: bytes) -> Any:
    """``json.loads(raw)``, for less: UTF-8 text holding one JSON value and nothing else
    (every request body and answer line in practice) goes straight to the C scanner,
    skipping ``json.loads``'s encoding sniffing, decode and whitespace regexes (about
    half the cost of decoding a small body). Anything else (whitespace around the value,
    a BOM, UTF-16, bad JSON) takes ``json.loads`` itself: the same value or error."""
    try:
        text = raw.decode()
        value, end = _scan_once(text, 0)
        if end == len(text):
            return value
    except (ValueError, StopIteration):  # UnicodeDecodeError is a ValueError
        pass
    return json.loads(raw)


# The headers of a call to an upstream without a key, one read-only copy for all: aiohttp
# takes a multidict as it is, where it converts a dict (~5k instructions a call).
_JSON_HEADERS = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json"}))


def upstream_headers(upstream: Upstream) -> Mapping[str, str]:
    """Headers for a call to ``upstream``: JSON, plus its bearer key when configured."""
    if upstream.api_key_env:
        key = os.environ.get(upstream.api_key_env, "")
        if key:
            return CIMultiDict({"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    return _JSON_HEADERS


class UpstreamError(Exception):
    """The upstream could not be reached or timed out (after retries)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Call:
    """What to send upstream and how patiently."""

    url: str
    body: dict[str, Any]
    headers: Mapping[str, str]
    stream: bool
    # The client's own bytes, when ``body`` is what it sent unchanged: sent as they came,
    # so an unchanged request is not decoded and encoded again.
    raw: bytes | None = None
    timeout: float = 600.0
    idle_timeout: float = 60.0
    retries: int = 1
    backoff: float = 0.5


@dataclass
class Head:
    status: int
    content_type: str


class Ended:
    """The job ended (``Reply.end``); after whatever the runner handed over before."""


ENDED = Ended()

Item = Head | bytes | UpstreamError | Ended | None


class Reply:
    """What the runner hands the HTTP handler, in order: one ``Head``, bytes chunks, then
    ``None`` at the end, or an ``UpstreamError`` instead of any of them; ``ENDED`` once the
    job has ended, whoever ended it.

    One producer (the runner) and one consumer (the handler): a deque and at most one
    waiter a side, which is all this needs of ``asyncio.Queue``. ``put`` waits while
    ``maxsize`` items are waiting (a slow client slows the upstream read); ``end`` never
    waits, so the job's end always gets through.

    Once the handler has sent a stream's head and taken everything queued, it sets
    ``sink``: from then on ``put`` writes a chunk to the client itself, in the runner's
    task, while nothing is queued, instead of waking the handler for each chunk. A write
    that fails (the client went away) clears ``sink`` and queues the chunk, so the handler
    meets the failure and handles it as before."""

    def __init__(self, maxsize: int = 256) -> None:
        self._items: deque[Item] = deque()
        self._maxsize = maxsize
        self._getter: asyncio.Future[None] | None = None
        self._putter: asyncio.Future[None] | None = None
        self.sink: Callable[[bytes], Awaitable[None]] | None = None

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, item: Head | bytes | UpstreamError | None) -> None:
        if self.sink is not None and not self._items and type(item) is bytes:
            try:
                # In order: the handler writes each item it takes before it awaits
                # anything, so all it took is written by the time the queue is empty.
                await self.sink(item)
                return
            except Exception:
                self.sink = None
        while len(self._items) >= self._maxsize:
            self._putter = asyncio.get_running_loop().create_future()
            try:
                await self._putter
            finally:
                self._putter = None
        self._push(item)

    def end(self) -> None:
        self._push(ENDED)

    def _push(self, item: Item) -> None:
        self._items.append(item)
        if self._getter is not None and not self._getter.done():
            self._getter.set_result(None)

    async def get(self) -> Item:
        while not self._items:
            self._getter = asyncio.get_running_loop().create_future()
            try:
                await self._getter
            finally:
                self._getter = None
        item = self._items.popleft()
        if self._putter is not None and not self._putter.done():
            self._putter.set_result(None)
        return item


class UpstreamRunner:
    """Runs one request against its upstream; see the module docstring."""

    def __init__(self, session: aiohttp.ClientSession | WireSession, call: Call, reply: Reply,
                 on_start: Callable[[Job], None] | None = None) -> None:  # fmt: skip
        self.session = session
        self.call = call
        self.reply = reply
        self.on_start = on_start

    async def run(self, job: Job, ctx: RunContext) -> Outcome:
        if self.on_start is not None:
            self.on_start(job)
        call = self.call
        started = time.monotonic()
        facts: dict[str, Any] = {"upstream_attempts": 0}
        delay = call.backoff
        for attempt in range(call.retries + 1):
            facts["upstream_attempts"] = attempt + 1
            try:
                with _Deadline(call.timeout):
                    return await self._attempt(facts, started)
            except _Retryable as exc:
                error = UpstreamError(exc.status, str(exc))
            except TimeoutError:
                error = UpstreamError(504, f"the upstream did not finish within {call.timeout:g}s")
            except aiohttp.ClientError as exc:
                error = UpstreamError(502, f"the upstream failed: {exc or type(exc).__name__}")
            if facts.get("bytes_out"):
                break  # part of the answer is with the client: another attempt would repeat it
            if attempt < call.retries:
                await asyncio.sleep(delay)
                delay *= 2
        await self.reply.put(error)
        facts["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
        facts["upstream_status"] = error.status
        return Outcome(JobState.FAILED, error=str(error), meta=facts)

    async def _attempt(self, facts: dict[str, Any], started: float) -> Outcome:
        call = self.call
        data = call.raw if call.raw is not None else json.dumps(call.body).encode()
        resp = await self.session.post(call.url, data=data, headers=call.headers)
        try:
            facts["ttfb_ms"] = round((time.monotonic() - started) * 1000, 1)
            if resp.status in RETRYABLE_STATUSES:
                text = (await resp.read())[:300].decode(errors="replace")
                raise _Retryable(resp.status, f"the upstream answered {resp.status}: {text}")
            head = Head(resp.status, resp.headers.get("Content-Type", "application/json"))
            if call.stream:
                tail = await self._stream(resp, head, facts)
            else:
                # A whole answer reaches the client in one piece: one write, with a length.
                whole = await resp.read()
                await self.reply.put(head)
                if whole:
                    await self.reply.put(whole)
                    facts["bytes_out"] = len(whole)
                tail = whole[-_TAIL:]
            await self.reply.put(None)
        except TimeoutError:  # only the idle timeout is raised in here
            resp.close()
            raise _Retryable(504, f"the stream produced nothing for {call.idle_timeout:g}s") from None
        except BaseException:
            resp.close()  # abort: the upstream sees the connection go away now
            raise
        resp.release()
        facts["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
        facts["upstream_status"] = resp.status
        facts.update(usage_from(tail))
        if resp.status >= 400:
            message = tail[:300].decode(errors="replace").strip()
            return Outcome(JobState.FAILED, error=f"the upstream answered {resp.status}: {message}",
                           meta=facts)  # fmt: skip
        return Outcome(JobState.SUCCEEDED, exit_code=0, meta=facts)

    async def _stream(self, resp: aiohttp.ClientResponse, head: Head, facts: dict[str, Any]) -> bytes:
        """Hand the answer over chunk by chunk as it arrives (the head with the first);
        the tail of it comes back, for its usage record."""
        tail = bytearray()
        sent = 0
        content = resp.content
        reply = self.reply
        async with asyncio.timeout(None) as expiry:
            idle = _IdleWatch(self.call.idle_timeout, expiry)
            try:
                while True:
                    idle.reading()
                    chunk = await content.readany()
                    idle.since = None  # a slow client is not an idle upstream
                    if not chunk:
                        break
                    if not sent:
                        await reply.put(head)
                    await reply.put(chunk)
                    sent += len(chunk)
                    facts["bytes_out"] = sent
                    tail += chunk
                    if len(tail) > 2 * _TAIL:  # trimmed now and then, not copied every chunk
                        del tail[:-_TAIL]
            finally:
                idle.close()
        if not sent:
            await reply.put(head)
        return bytes(tail[-_TAIL:])


class _Deadline:
    """``asyncio.timeout(seconds)`` as a plain ``with`` block, for one upstream attempt:
    the task is cancelled when the time is up, and that cancellation leaves the block as
    TimeoutError; any other cancellation passes through. The same steps as asyncio's
    ``Timeout`` (cancel, then ``uncancel`` at the exit), without its two coroutines and
    state machine: about half its cost (13k instructions a request under callgrind)."""

    __slots__ = ("_seconds", "_task", "_handle", "_expired", "_cancelling")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds

    def __enter__(self) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("_Deadline should be used inside a task")
        self._task = task
        self._expired = False
        self._cancelling = task.cancelling()  # cancels asked before the block are not ours
        self._handle = loop.call_at(loop.time() + self._seconds, self._expire)

    def _expire(self) -> None:
        self._expired = True
        self._task.cancel()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        self._handle.cancel()
        if (self._expired and self._task.uncancel() <= self._cancelling
                and exc_type is asyncio.CancelledError):  # fmt: skip
            raise TimeoutError from exc


class _IdleWatch:
    """Ends a stream read that has waited ``seconds`` for a chunk, by expiring the
    ``asyncio.timeout`` block around the stream (TimeoutError at its end). One timer for
    the whole stream, moved on only when it fires: a timer per chunk (an
    ``asyncio.timeout`` around each read) was a quarter of a relayed chunk's CPU."""

    def __init__(self, seconds: float, expiry: asyncio.Timeout) -> None:
        self.loop = asyncio.get_running_loop()
        self.seconds = seconds
        self.expiry = expiry
        self.since: float | None = None  # when the read now waiting began; None: not reading
        self._handle = self.loop.call_at(self.loop.time() + seconds, self._fire)

    def reading(self) -> None:
        self.since = self.loop.time()

    def _fire(self) -> None:
        now = self.loop.time()
        if self.since is not None and now - self.since >= self.seconds:
            self.expiry.reschedule(now)  # cancels the read now; TimeoutError at the block's end
            return
        self._handle = self.loop.call_at((self.since if self.since is not None else now) + self.seconds,
                                         self._fire)  # fmt: skip

    def close(self) -> None:
        self._handle.cancel()


class _Retryable(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def json_object(line: bytes) -> dict[str, Any] | None:
    """The JSON object on one NDJSON line or SSE ``data:`` line, else None."""
    line = line.strip()
    if line.startswith(b"data:"):
        line = line[5:].strip()
    if not line.startswith(b"{"):
        return None  # blank, an SSE comment, or ``[DONE]``
    try:
        obj = loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def usage_from(tail: bytes) -> dict[str, int]:
    """Token counts from the end of an answer, whichever API shape it has: OpenAI's
    ``usage`` object or Ollama's ``prompt_eval_count`` / ``eval_count``."""
    for line in reversed(tail.splitlines()):
        if b'"usage"' not in line and b'eval_count"' not in line:
            continue  # a stream's content chunks: not worth decoding
        obj = json_object(line)
        if obj is None:
            continue
        usage = obj.get("usage")
        if isinstance(usage, dict):
            return {
                k: v for k in ("prompt_tokens", "completion_tokens")
                if isinstance(v := usage.get(k), int)
            }  # fmt: skip
        if "eval_count" in obj or "prompt_eval_count" in obj:
            out = {}
            if isinstance(obj.get("prompt_eval_count"), int):
                out["prompt_tokens"] = obj["prompt_eval_count"]
            if isinstance(obj.get("eval_count"), int):
                out["completion_tokens"] = obj["eval_count"]
            return out
    return {}
