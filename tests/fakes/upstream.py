"""Fake LLM servers on 127.0.0.1 for tests and benchmarks: Ollama-native and OpenAI-compatible.

Use::

    fake = await FakeUpstream(kind="ollama").start()    # ephemeral port; fake.url
    fake.delay = 0.05          # seconds before the answer (first byte)
    fake.token_delay = 0.01    # seconds between streamed chunks
    fake.tokens = ["Hel", "lo"]
    fake.fail = 500            # answer every request with this status (None: succeed)
    fake.fail_times = 1        # ...only the next N requests (None: all of them)
    fake.fail_text = "Bad Gateway"  # ...as this plain-text body (a proxy's page), not JSON
    fake.hang = True           # never answer; the request ends when the client goes away
    fake.stall_after = 2       # stream this many chunks, then stop producing (idle stream)
    fake.capacity = 2          # with more than this many in flight, each chunk waits
    fake.slowdown = 10.0       # ...token_delay times this (a knee known in advance)
    fake.modelfiles = {"m": "/x/m.gguf"}  # /api/show names this GGUF blob for model m
    fake.loaded = ["m"]        # /api/ps lists m as loaded
    ...
    assert fake.max_active == 1    # peak of requests in flight at once
    await fake.stop()

In a synchronous test or a benchmark: ``with FakeUpstream(kind="openai").in_thread() as fake:``
runs it on its own event loop in a thread.

``kind="ollama"`` serves ``/api/*`` and Ollama's OpenAI-compatible ``/v1/*`` (as Ollama
does); ``kind="openai"`` serves only ``/v1/*``. Counters: ``requests`` (inference and pull
requests seen), ``active`` (in flight now), ``max_active`` (peak), ``aborted`` (ended because
the client went away), ``calls`` (list of ``(path, json body)``), ``headers`` (the last
request's headers), ``raw`` (each request body's bytes), ``models`` (what it serves). Set ``peers = [other_fake]`` and
``overlaps`` counts requests that started while a peer had one in flight (lane mixing).
An unknown model answers 404 the way the real server does. Knobs may change at any time.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

from aiohttp import web


class FakeUpstream:
    def __init__(self, kind: str = "ollama", models: list[str] | None = None) -> None:
        if kind not in ("ollama", "openai"):
            raise ValueError("kind must be 'ollama' or 'openai'")
        self.kind = kind
        self.models = list(models or ["llama3.2:1b", "qwen2.5:0.5b", "nomic-embed-text"])
        self.delay = 0.0
        self.token_delay = 0.0
        self.tokens = ["Hello", ",", " world", "!"]
        self.fail: int | None = None
        self.fail_times: int | None = None
        self.fail_text: str | None = None
        self.hang = False
        self.stall_after: int | None = None
        self.capacity: int | None = None
        self.slowdown = 1.0
        self.pull_steps = 4
        self.pull_total = 4_000_000
        self.requests = 0
        self.active = 0
        self.max_active = 0
        self.aborted = 0
        self.calls: list[tuple[str, Any]] = []
        self.raw: list[bytes] = []
        self.modelfiles: dict[str, str] = {}  # model -> GGUF path /api/show names (FROM ...)
        self.loaded: list[str] = []  # what /api/ps lists as held in memory
        self.headers: dict[str, str] = {}
        self.peers: list[FakeUpstream] = []
        self.overlaps = 0
        self.url = ""
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ---- life cycle ----------------------------------------------------------------

    async def start(self, port: int = 0) -> FakeUpstream:
        app = web.Application()
        if self.kind == "ollama":
            app.router.add_post("/api/chat", functools.partial(self._ollama_text, chat=True))
            app.router.add_post("/api/generate", functools.partial(self._ollama_text, chat=False))
            app.router.add_post("/api/embed", functools.partial(self._embed, openai=False))
            app.router.add_post("/api/pull", self._ollama_pull)
            app.router.add_get("/api/tags", self._ollama_tags)
            app.router.add_post("/api/show", self._ollama_show)
            app.router.add_get("/api/ps", self._ollama_ps)
            app.router.add_get("/api/version", self._ollama_version)
        app.router.add_post("/v1/chat/completions", functools.partial(self._openai_text, chat=True))
        app.router.add_post("/v1/completions", functools.partial(self._openai_text, chat=False))
        app.router.add_post("/v1/embeddings", functools.partial(self._embed, openai=True))
        app.router.add_get("/v1/models", self._openai_models)
        # Handler cancellation: a client that goes away ends the request here, as it does on
        # a real server, so `active` drops when the gateway aborts.
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @contextlib.contextmanager
    def in_thread(self) -> Iterator[FakeUpstream]:
        """Run on a private event loop in a daemon thread (for sync callers)."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        asyncio.run_coroutine_threadsafe(self.start(), loop).result(10)
        try:
            yield self
        finally:
            asyncio.run_coroutine_threadsafe(self.stop(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
            loop.close()

    # ---- shared behaviour ----------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _track(self, request: web.Request) -> Any:
        self.raw.append(await request.read())
        try:
            body = await request.json()
        except ValueError:
            body = None
        self.requests += 1
        if any(p.active for p in self.peers):
            self.overlaps += 1
        self.active += 1
        self.headers = dict(request.headers)
        self.max_active = max(self.max_active, self.active)
        self.calls.append((request.path, body))
        try:
            yield body if isinstance(body, dict) else {}
        except (asyncio.CancelledError, ConnectionResetError):
            self.aborted += 1
            raise
        finally:
            self.active -= 1

    async def _preamble(self, body: dict[str, Any], openai: bool) -> web.Response | None:
        """Delay, hang, injected failure, unknown model: a response to send instead, or None."""
        if self.hang:
            await asyncio.Event().wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail is not None and (self.fail_times is None or self.fail_times > 0):
            if self.fail_times is not None:
                self.fail_times -= 1
            if self.fail_text is not None:
                return web.Response(status=self.fail, text=self.fail_text)
            return self._error(self.fail, "injected failure", openai)
        model = body.get("model")
        if model not in self.models:
            return self._error(404, f"model '{model}' not found", openai)
        return None

    @staticmethod
    def _error(status: int, message: str, openai: bool) -> web.Response:
        if openai:
            body: dict[str, Any] = {"error": {"message": message, "type": "invalid_request_error",
                                              "code": None}}  # fmt: skip
        else:
            body = {"error": message}
        return web.json_response(body, status=status)

    async def _stream(self, request: web.Request, chunks: list[bytes], sse: bool) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream" if sse else "application/x-ndjson"}
        )
        await resp.prepare(request)
        for i, chunk in enumerate(chunks):
            if self.stall_after is not None and i >= self.stall_after:
                await asyncio.Event().wait()
            if i and self.token_delay:
                overloaded = self.capacity is not None and self.active > self.capacity
                await asyncio.sleep(self.token_delay * (self.slowdown if overloaded else 1.0))
            await resp.write(chunk)
        await resp.write_eof()
        return resp

    @staticmethod
    def _ndjson(obj: dict[str, Any]) -> bytes:
        return json.dumps(obj).encode() + b"\n"

    @staticmethod
    def _sse(obj: Any) -> bytes:
        return b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n"

    def _usage(self, body: dict[str, Any]) -> tuple[int, int]:
        return len(json.dumps(body.get("messages") or body.get("prompt") or "")) // 4, len(self.tokens)

    # ---- Ollama native -------------------------------------------------------------

    async def _ollama_text(self, request: web.Request, chat: bool) -> web.StreamResponse:
        async with self._track(request) as body:
            early = await self._preamble(body, openai=False)
            if early is not None:
                return early
            model = body["model"]
            prompt_n, eval_n = self._usage(body)
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

            def piece(text: str, done: bool) -> dict[str, Any]:
                out: dict[str, Any] = {"model": model, "created_at": now, "done": done}
                if chat:
                    out["message"] = {"role": "assistant", "content": text}
                else:
                    out["response"] = text
                if done:
                    out.update(done_reason="stop", total_duration=1000, prompt_eval_count=prompt_n,
                               eval_count=eval_n)  # fmt: skip
                return out

            if body.get("stream", True):
                chunks = [self._ndjson(piece(t, False)) for t in self.tokens]
                chunks.append(self._ndjson(piece("", True)))
                return await self._stream(request, chunks, sse=False)
            return web.json_response(piece("".join(self.tokens), True))

    async def _embed(self, request: web.Request, openai: bool) -> web.StreamResponse:
        async with self._track(request) as body:
            early = await self._preamble(body, openai=openai)
            if early is not None:
                return early
            inputs = body.get("input")
            n = len(inputs) if isinstance(inputs, list) else 1
            vectors = [[0.1, 0.2, 0.3] for _ in range(n)]
            if not openai:
                return web.json_response({"model": body["model"], "embeddings": vectors,
                                          "prompt_eval_count": n})  # fmt: skip
            return web.json_response({
                "object": "list", "model": body["model"],
                "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
                "usage": {"prompt_tokens": n, "total_tokens": n},
            })  # fmt: skip

    async def _ollama_pull(self, request: web.Request) -> web.StreamResponse:
        async with self._track(request) as body:
            if self.hang:
                await asyncio.Event().wait()
            if self.fail is not None:
                return self._error(self.fail, "pull failed", openai=False)
            total, steps = self.pull_total, max(1, self.pull_steps)
            chunks = [self._ndjson({"status": "pulling manifest"})]
            for i in range(1, steps + 1):
                chunks.append(self._ndjson({"status": "pulling abc123", "digest": "sha256:abc123",
                                            "total": total, "completed": total * i // steps}))  # fmt: skip
            chunks.append(self._ndjson({"status": "success"}))
            name = body.get("model") or body.get("name")
            if name and name not in self.models:
                self.models.append(name)
            if not body.get("stream", True):
                return web.json_response({"status": "success"})
            return await self._stream(request, chunks, sse=False)

    async def _ollama_tags(self, request: web.Request) -> web.Response:
        return web.json_response({"models": [
            {"name": m, "model": m, "size": 1000, "digest": "0" * 12, "modified_at": "2024-01-01T00:00:00Z",
             "details": {"family": "fake"}} for m in self.models]})  # fmt: skip

    async def _ollama_show(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = {}
        name = body.get("model") or body.get("name") if isinstance(body, dict) else None
        if name not in self.models:
            return self._error(404, f"model '{name}' not found", openai=False)
        modelfile = f"FROM {self.modelfiles[name]}" if name in self.modelfiles else ""
        return web.json_response({"modelfile": modelfile, "parameters": "", "template": "{{ .Prompt }}",
                                  "details": {"family": "fake"}, "model_info": {}})  # fmt: skip

    async def _ollama_ps(self, request: web.Request) -> web.Response:
        return web.json_response({"models": [{"name": m, "model": m} for m in self.loaded]})

    async def _ollama_version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": "0.0.0-fake"})

    # ---- OpenAI-compatible ---------------------------------------------------------

    async def _openai_text(self, request: web.Request, chat: bool) -> web.StreamResponse:
        async with self._track(request) as body:
            early = await self._preamble(body, openai=True)
            if early is not None:
                return early
            model = body["model"]
            created = int(time.time())
            obj = "chat.completion" if chat else "text_completion"
            prompt_n, eval_n = self._usage(body)
            usage = {"prompt_tokens": prompt_n, "completion_tokens": eval_n,
                     "total_tokens": prompt_n + eval_n}  # fmt: skip

            def choice(text: str, delta: bool, finish: str | None) -> dict[str, Any]:
                if not chat:
                    return {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
                key = "delta" if delta else "message"
                return {"index": 0, key: {"role": "assistant", "content": text}, "finish_reason": finish}

            if body.get("stream"):
                chunk_obj = obj + ".chunk" if chat else obj
                chunks = [
                    self._sse({"id": "c1", "object": chunk_obj, "created": created, "model": model,
                               "choices": [choice(t, True, None)]})
                    for t in self.tokens
                ]  # fmt: skip
                last: dict[str, Any] = {"id": "c1", "object": chunk_obj, "created": created,
                                        "model": model, "choices": [choice("", True, "stop")]}  # fmt: skip
                if (body.get("stream_options") or {}).get("include_usage"):
                    last["usage"] = usage
                chunks += [self._sse(last), self._sse(b"[DONE]")]
                return await self._stream(request, chunks, sse=True)
            return web.json_response({"id": "c1", "object": obj, "created": created, "model": model,
                                      "choices": [choice("".join(self.tokens), False, "stop")],
                                      "usage": usage})  # fmt: skip

    async def _openai_models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]})  # fmt: skip
