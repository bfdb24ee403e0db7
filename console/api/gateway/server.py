"""The gateway's HTTP routes: OpenAI-compatible ``/v1/*``, Ollama-compatible ``/api/*`` and
``/health``. Every model request becomes a job on its upstream's lane; the handler waits
for the job's runner to hand it the upstream's answer and streams it to the client."""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import functools
import hmac
import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from console import __version__
from console.api.gateway.errors import GatewayError, error_response, is_openai_path
from console.api.gateway.translate import OllamaReply, error_message, openai_path, to_openai
from console.core import jobs
from console.core.errors import UserError
from console.core.models import Job, JobState, Lane
from console.core.runners.chat import (
    Call,
    Ended,
    Head,
    Reply,
    UpstreamError,
    UpstreamRunner,
    loads,
    upstream_headers,
)
from console.core.upstreams import Upstream, requested_ctx, route, served_patterns

if TYPE_CHECKING:
    from console.api.gateway import Gateway

GATEWAY_KEY: web.AppKey[Gateway] = web.AppKey("gateway")
HIGH_PRIORITY = 10  # what `"priority": true` means
PRIORITY_HEADER = "X-Twolane-Priority"
_EXTENSIONS = frozenset({"priority", "num_ctx", "numCtx"})  # body fields the gateway consumes
_CORS_HEADERS = "Authorization, Content-Type, X-Twolane-Priority, OpenAI-Organization, OpenAI-Project"
_LIST_TIMEOUT = 5.0

# (API path) -> (job kind, path on an OpenAI-compatible server, path on Ollama's native API)
_OPENAI_ROUTES = {
    "/v1/chat/completions": ("chat", "/chat/completions"),
    "/v1/completions": ("completion", "/completions"),
    "/v1/embeddings": ("embed", "/embeddings"),
}
_OLLAMA_ROUTES = {
    "/api/chat": "chat",
    "/api/generate": "completion",
    "/api/embed": "embed",
    "/api/embeddings": "embed",
}


def _gw(request: web.Request) -> Gateway:
    return request.app[GATEWAY_KEY]


# ---- middlewares --------------------------------------------------------------------


@web.middleware
async def gateway_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """The Host check, CORS (only for configured origins) and the optional bearer token,
    then every refusal in the API's own shape: nothing a client sends becomes a 500. One
    middleware rather than two: each is a layer every request goes through."""
    gw: Gateway = request.app[GATEWAY_KEY]
    try:
        origin = _guard(request, gw)
        if request.method == "OPTIONS":
            resp: web.StreamResponse = web.Response(status=204)
        else:
            resp = await handler(request)
        if origin is not None and not resp.prepared:
            _cors(resp, origin)
        return resp
    except GatewayError as exc:
        return error_response(request, exc.status, str(exc), exc.code, exc.headers)
    except UserError as exc:
        return error_response(request, exc.status, str(exc))
    except web.HTTPRequestEntityTooLarge:
        return error_response(request, 413, f"the request body is larger than {gw.max_body} bytes "
                              "(gateway.max_body_bytes)")  # fmt: skip
    except web.HTTPMethodNotAllowed as exc:
        allowed = ", ".join(sorted(exc.allowed_methods))
        return error_response(request, 405, f"{request.method} is not allowed on {request.path}; "
                              f"use {allowed}", headers={"Allow": allowed})  # fmt: skip
    except web.HTTPNotFound:
        return error_response(request, 404, f"no route {request.path}; see /v1/models or /api/tags")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(request, exc.status, exc.reason or "error")


def _guard(request: web.Request, gw: Gateway) -> str | None:
    """Raise ``GatewayError`` for a request the gateway must refuse; else the allowed
    ``Origin`` it came with (its answer gets the CORS headers), or None."""
    if not gw.api_key and not _loopback_host(request.host):
        # DNS rebinding: a page on evil.example that resolves to 127.0.0.1 is same-origin
        # to itself, so CORS does not stop it; the Host header it sends does.
        raise GatewayError(403, f"Host {request.host!r} is not this machine; use 127.0.0.1 "
                           "or set gateway.api_key")  # fmt: skip
    origin = request.headers.get("Origin")
    if origin is not None and not gw.origin_allowed(origin):
        # A page in the user's browser must not drive the local model, not even with a
        # "simple" request the browser sends without asking first.
        raise GatewayError(403, f"origin {origin} is not allowed; add it to gateway.cors_origins")
    if request.method == "OPTIONS":
        if origin is None:
            raise GatewayError(403, "CORS preflight refused; add the origin to gateway.cors_origins")
    elif gw.api_key and not _authorized(request, gw.api_key):
        raise GatewayError(401, "missing or wrong API key; send 'Authorization: Bearer <gateway.api_key>'")
    return origin


@functools.lru_cache(maxsize=256)  # the Host header of every request
def _loopback_host(host: str) -> bool:
    from console.api.gateway import is_loopback

    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    return is_loopback(name.strip("[]"))


def _cors(resp: web.StreamResponse, origin: str) -> None:
    resp.headers["Access-Control-Allow-Origin"] = origin
    resp.headers["Vary"] = "Origin"
    resp.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
    resp.headers["Access-Control-Allow-Headers"] = _CORS_HEADERS
    resp.headers["Access-Control-Max-Age"] = "600"


def _authorized(request: web.Request, key: str) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        token = request.headers.get("X-Api-Key", "")
    return hmac.compare_digest(token.strip().encode(), key.encode())


# ---- request parsing (pure helpers) -------------------------------------------------


def parse_priority(body: dict[str, Any], header: str | None) -> int:
    """``priority`` from the body (an integer, or true for high) or the header."""
    value: Any = body.get("priority")
    if value is None and header is not None:
        text = header.strip().lower()
        if text in ("true", "high"):
            value = True
        else:
            try:
                value = int(text)
            except ValueError:
                raise GatewayError(400, f"{PRIORITY_HEADER} must be an integer or 'true', got {header!r}") from None
    if value is None or value is False:
        return 0
    if value is True:
        return HIGH_PRIORITY
    if not isinstance(value, int):
        raise GatewayError(400, f"'priority' must be an integer or true, got {value!r}")
    try:
        return jobs.check_priority(value)
    except UserError as exc:
        raise GatewayError(400, str(exc)) from None


async def read_json(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        data = loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise GatewayError(400, "the request body must be JSON") from None
    if not isinstance(data, dict):
        raise GatewayError(400, "the request body must be a JSON object")
    return data


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise GatewayError(400, "the request needs a 'model' (see /v1/models or /api/tags)")
    return model


def _route(gw: Gateway, model: str) -> Upstream:
    upstream = gw.route(model)
    if upstream is None:
        served = ", ".join(served_patterns(gw.upstreams)) or "nothing"
        raise GatewayError(404, f"model '{model}' is not served here; served: {served}",
                           code="model_not_found")  # fmt: skip
    return upstream


def _client(request: web.Request) -> str:
    # aiohttp keeps the connection's peer (uvloop's transport asks the kernel each time).
    peer = getattr(request.protocol, "peername", None)
    if peer is None and request.transport is not None:
        peer = request.transport.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return request.remote or "?"


# ---- model requests -----------------------------------------------------------------


async def openai_request(request: web.Request) -> web.StreamResponse:
    kind, sub_path = _OPENAI_ROUTES[request.path]
    body = await read_json(request)
    gw = _gw(request)
    upstream = _route(gw, _model(body))
    if upstream.kind == "openai":
        url = upstream.openai_base() + sub_path
    else:
        url = upstream.root() + "/v1" + sub_path  # Ollama's own OpenAI-compatible routes
    return await _run_request(request, gw, kind, body, upstream, url, stream=body.get("stream") is True)


async def ollama_request(request: web.Request) -> web.StreamResponse:
    kind = _OLLAMA_ROUTES[request.path]
    body = await read_json(request)
    model = _model(body)
    gw = _gw(request)
    upstream = _route(gw, model)
    stream = body.get("stream", True) is not False if kind != "embed" else False
    if upstream.kind != "ollama":
        # An OpenAI-compatible server: ask in its terms, answer in Ollama's.
        reply_as = OllamaReply(kind, model, stream, legacy_embed=request.path == "/api/embeddings")
        url = upstream.openai_base() + openai_path(kind)
        return await _run_request(request, gw, kind, body, upstream, url, stream, reply_as)
    return await _run_request(request, gw, kind, body, upstream, upstream.root() + request.path, stream)


async def _run_request(request: web.Request, gw: Gateway, kind: str, body: dict[str, Any],
                       upstream: Upstream, url: str, stream: bool,
                       reply_as: OllamaReply | None = None) -> web.StreamResponse:  # fmt: skip
    priority = parse_priority(body, request.headers.get(PRIORITY_HEADER))
    model = body["model"]
    asked = requested_ctx(body)
    # The extensions are the gateway's, not the upstream's; a body without any (most)
    # goes on as it is, not copied (and is copied before anything in it changes).
    changed = not _EXTENSIONS.isdisjoint(body)
    forward = {k: v for k, v in body.items() if k not in _EXTENSIONS} if changed else body
    meta: dict[str, Any] = {
        "model": model, "upstream": upstream.name, "client": _client(request),
        "api": "openai" if is_openai_path(request.path) else "ollama", "path": request.path,
        "stream": stream, "bytes_in": request.content_length or 0,
    }  # fmt: skip
    if upstream.lane is Lane.LOCAL and kind != "embed":
        fit_cap = None
        if asked is not None and gw.context.would_grow(model, asked):
            upper = min(asked, gw.context.max_ctx) if gw.context.max_ctx else asked
            fit_cap = await gw.fit_cap(upstream, model, upper)
            if fit_cap is not None and fit_cap < upper:
                meta["ctx_fit_cap"] = fit_cap  # what the memory allowed, below the ask
        ctx = gw.context.context_for(model, asked, fit_cap)
        if ctx is not None and upstream.kind == "ollama" and url.startswith(upstream.root() + "/api/"):
            # Identical options on every call: Ollama reloads a model when num_ctx changes.
            options = forward.get("options")
            options = {**(options if isinstance(options, dict) else {}), "num_ctx": ctx}
            forward = {**forward, "options": options}
            changed = True
        if ctx is not None:
            meta["num_ctx"] = ctx
    if not gw.owner.scheduler.accepting:
        raise GatewayError(503, "twolane is stopping; try again shortly", headers={"Retry-After": "5"})
    waiting = len(gw.owner.scheduler.queued(upstream.lane))
    if waiting >= gw.max_waiting:
        raise GatewayError(503, f"the {upstream.lane} lane has {waiting} requests waiting "
                           f"(gateway.max_waiting); retry later",
                           headers={"Retry-After": str(gw.retry_after(upstream.lane, waiting))})  # fmt: skip
    if reply_as is not None:
        forward = to_openai(kind, forward, stream)
        changed = True
    extra: dict[str, Any] = {"model": model, "upstream": upstream.name}
    if meta.get("num_ctx"):
        extra["ctx"] = meta["num_ctx"]  # the memory gate predicts the footprint at this size
    if gw.store_prompts:
        extra["body"] = forward
    job = jobs.in_process_job(upstream.lane, kind, f"{kind} {model}", priority, extra, meta,
                              gw.owner.scheduler.clock.now())  # fmt: skip
    reply = Reply()
    # Unchanged bodies go upstream as the client's bytes (already read: no second read).
    raw = None if changed else await request.read()
    call = Call(url=url, body=forward, headers=upstream_headers(upstream), stream=stream,
                timeout=gw.timeout, idle_timeout=gw.idle_timeout, retries=gw.retries,
                backoff=gw.backoff, raw=raw)  # fmt: skip
    runner = UpstreamRunner(gw.call_session(url), call, reply, on_start=gw.note_started)
    return await _serve_job(request, gw, job, runner, reply, reply_as, stream)


async def _serve_job(request: web.Request, gw: Gateway, job: Job, runner: Any, reply: Reply,
                     reply_as: OllamaReply | None, stream: bool) -> web.StreamResponse:  # fmt: skip
    scheduler = gw.owner.scheduler
    response: web.StreamResponse | None = None
    answered = False  # the runner delivered its last word: nothing left to cancel
    foreign: tuple[int, bytearray] | None = None  # an error answer to re-shape
    whole = bytearray()  # an answer that is not streamed: sent in one piece at the end
    head: Head | None = None
    # Before submit: the job may end inside it (a cancel while its row is written).
    gw.expect_end(job.id, reply)
    try:
        # Inside the try: a client gone while its job is being stored still cancels it.
        await scheduler.submit(job, runner=runner)
        while True:
            item = await reply.get()
            answered = item is None or isinstance(item, UpstreamError | Ended)
            if isinstance(item, Head):
                if item.status >= 400 and (reply_as is not None or "json" not in item.content_type):
                    foreign = (item.status, bytearray())  # re-shaped below, in the API's shape
                    continue
                content_type = item.content_type
                if reply_as is not None:
                    content_type = "application/x-ndjson" if reply_as.stream else "application/json"
                headers = {"Content-Type": content_type, "X-Twolane-Job": job.id}
                if not stream:
                    head = Head(item.status, content_type)  # answered whole at the end
                    continue
                response = web.StreamResponse(status=item.status, headers=headers)
                if gw.cors_origin(request):
                    _cors(response, request.headers["Origin"])
                await response.prepare(request)
                # The chunks that follow go to the client from the runner's task (see
                # Reply): no wake-up of this handler per chunk.
                reply.sink = _relay(response, reply_as)
            elif isinstance(item, bytes):
                if foreign is not None:
                    foreign[1].extend(item[: 4096 - len(foreign[1])])
                elif not stream:
                    whole.extend(item)
                elif reply_as is not None and response is not None:
                    if out := reply_as.feed(item):
                        await response.write(out)
                elif response is not None:
                    await response.write(item)
            elif item is None:
                if foreign is not None:
                    text = error_message(bytes(foreign[1]))
                    raise GatewayError(foreign[0], f"the upstream answered {foreign[0]}: {text}",
                                       headers=_job_header(job))  # fmt: skip
                if head is not None:
                    data = reply_as.whole(bytes(whole)) if reply_as is not None else bytes(whole)
                    # The CORS middleware adds its headers to a response not yet sent.
                    return web.Response(status=head.status, body=data, headers={
                        "Content-Type": head.content_type, "X-Twolane-Job": job.id})  # fmt: skip
                if response is None:
                    raise GatewayError(502, "the upstream sent an empty answer", headers=_job_header(job))
                if reply_as is not None:
                    await response.write(reply_as.end())
                await response.write_eof()
                return response
            elif isinstance(item, UpstreamError):
                if response is None:
                    raise GatewayError(item.status, str(item), headers=_job_header(job))
                return response  # mid-stream: the client sees the stream end early
            else:  # the job ended without an answer: cancelled, or the owner is stopping
                if response is not None:
                    return response
                why = "cancelled" if job.state is JobState.CANCELLED else (job.error or str(job.state))
                raise GatewayError(503, f"job {job.id} ended before answering: {why}",
                                   headers={"Retry-After": "1", **_job_header(job)})  # fmt: skip
    except ConnectionResetError:
        # The client went away mid-answer; the finally below cancels its job.
        return response or web.Response(status=499)
    finally:
        gw.forget(job.id)
        if not answered and not job.finished:
            # The client went away (or we are failing): its job must not keep a lane busy.
            with contextlib.suppress(Exception):
                await asyncio.shield(scheduler.cancel(job.id, "client disconnected"))


def _job_header(job: Job) -> dict[str, str]:
    # Read when the answer goes out: a request's id changes if another process took it
    # before its row landed (with a commit after submit() returned).
    return {"X-Twolane-Job": job.id}


def _relay(response: web.StreamResponse, reply_as: OllamaReply | None) -> Callable[[bytes], Awaitable[None]]:
    """Write one chunk of a stream to the client (translated when the API differs)."""
    if reply_as is None:
        return response.write

    async def translated(chunk: bytes) -> None:
        if out := reply_as.feed(chunk):
            await response.write(out)

    return translated


# ---- pulls --------------------------------------------------------------------------


async def ollama_pull(request: web.Request) -> web.StreamResponse:
    """A local-lane pull job; its progress lines stream back as Ollama's do."""
    gw = _gw(request)
    body = await read_json(request)
    model = body.get("model") or body.get("name")
    if not isinstance(model, str) or not model.strip():
        raise GatewayError(400, "the request needs a 'model' to pull")
    gw.check_pullable(model)
    stream = body.get("stream", True) is not False
    priority = parse_priority(body, request.headers.get(PRIORITY_HEADER))
    job = gw.pull_job(model, priority, insecure=body.get("insecure") is True,
                      client=_client(request))  # fmt: skip
    lines: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    stop_listening = gw.pull_runner.listen(job.id, lines.put_nowait)
    scheduler = gw.owner.scheduler
    response: web.StreamResponse | None = None
    last: dict[str, Any] | None = None
    try:
        await scheduler.submit(job)
        done = asyncio.create_task(scheduler.wait_done(job.id))
        try:
            while True:
                getter = asyncio.create_task(lines.get())
                await asyncio.wait({getter, done}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    break
                line = getter.result()
                if line is None:
                    break
                last = line
                if stream:
                    if response is None:
                        response = web.StreamResponse(headers={
                            "Content-Type": "application/x-ndjson", "X-Twolane-Job": job.id})  # fmt: skip
                        await response.prepare(request)
                    await response.write(json.dumps(line).encode() + b"\n")
            ended = await done
        finally:
            done.cancel()
    finally:
        stop_listening()
        if not job.finished:
            with contextlib.suppress(Exception):
                await asyncio.shield(scheduler.cancel(job.id, "client disconnected"))
    if ended.state is not JobState.SUCCEEDED:
        message = ended.error or str(ended.state)
        if response is not None:
            await response.write(json.dumps({"error": message}).encode() + b"\n")
            await response.write_eof()
            return response
        raise GatewayError(502 if ended.state is JobState.FAILED else 503, message)
    if response is not None:
        await response.write_eof()
        return response
    return web.json_response(last or {"status": "success"}, headers={"X-Twolane-Job": job.id})


# ---- listings and metadata (not queued: they do not touch the model) ----------------


async def _fetch_json(gw: Gateway, url: str, upstream: Upstream) -> Any:
    async with asyncio.timeout(_LIST_TIMEOUT):
        async with gw.session().get(url, headers=upstream_headers(upstream)) as resp:
            if resp.status >= 400:
                return None
            return await resp.json(content_type=None)


async def _upstream_models(gw: Gateway) -> list[tuple[Upstream, list[dict[str, Any]]]]:
    """Each upstream's models in Ollama tag shape, filtered by what the config routes to it.
    An upstream that does not answer contributes its literal (non-glob) names."""

    async def one(up: Upstream) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] | None = None
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
            if up.kind == "ollama":
                data = await _fetch_json(gw, up.root() + "/api/tags", up)
                if isinstance(data, dict) and isinstance(data.get("models"), list):
                    listed = [m for m in data["models"] if isinstance(m, dict)]
            else:
                data = await _fetch_json(gw, up.openai_base() + "/models", up)
                if isinstance(data, dict) and isinstance(data.get("data"), list):
                    listed = [{"name": m.get("id"), "model": m.get("id")} for m in data["data"]
                              if isinstance(m, dict)]  # fmt: skip
        if listed is None:
            listed = [{"name": p, "model": p} for p in up.models if not _is_glob(p)]
        return [m for m in listed if isinstance(m.get("name"), str) and route(gw.upstreams, m["name"]) is up]

    results = await asyncio.gather(*(one(up) for up in gw.upstreams))
    return list(zip(gw.upstreams, results, strict=True))


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


async def openai_models(request: web.Request) -> web.Response:
    data = []
    for up, models in await _upstream_models(_gw(request)):
        for m in models:
            data.append({"id": m["name"], "object": "model", "created": 0, "owned_by": up.name})
    return web.json_response({"object": "list", "data": data})


async def ollama_tags(request: web.Request) -> web.Response:
    models = [m for _, ms in await _upstream_models(_gw(request)) for m in ms]
    return web.json_response({"models": models})


async def _ollama_answers(gw: Gateway, path: str) -> AsyncIterator[dict[str, Any]]:
    """``GET path`` of each Ollama upstream that answers with a JSON object."""
    for up in gw.upstreams:
        if up.kind != "ollama":
            continue
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
            data = await _fetch_json(gw, up.root() + path, up)
            if isinstance(data, dict):
                yield data


async def ollama_ps(request: web.Request) -> web.Response:
    running: list[Any] = []
    async for data in _ollama_answers(_gw(request), "/api/ps"):
        if isinstance(data.get("models"), list):
            running.extend(data["models"])
    return web.json_response({"models": running})


async def ollama_version(request: web.Request) -> web.Response:
    async for data in _ollama_answers(_gw(request), "/api/version"):
        if isinstance(data.get("version"), str):
            return web.json_response({"version": data["version"]})
    return web.json_response({"version": "0.0.0"})


async def ollama_show(request: web.Request) -> web.StreamResponse:
    """Model details straight from the upstream (metadata: no lane needed)."""
    gw = _gw(request)
    body = await read_json(request)
    model = body.get("model") or body.get("name")
    if not isinstance(model, str) or not model:
        raise GatewayError(400, "the request needs a 'model'")
    upstream = _route(gw, model)
    if upstream.kind != "ollama":
        raise GatewayError(400, f"model '{model}' is served by the OpenAI-compatible upstream "
                           f"'{upstream.name}', which has no /api/show")  # fmt: skip
    try:
        async with asyncio.timeout(_LIST_TIMEOUT):
            async with gw.session().post(upstream.root() + "/api/show", json=body,
                                         headers=upstream_headers(upstream)) as resp:  # fmt: skip
                data = await resp.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise GatewayError(502, f"upstream '{upstream.name}' did not answer: {exc or type(exc).__name__}") from None
    if resp.status >= 400:
        raise GatewayError(resp.status, f"the upstream answered {resp.status}: {error_message(data)}")
    return web.Response(status=resp.status, body=data, content_type="application/json")


async def health(request: web.Request) -> web.Response:
    gw = _gw(request)
    return web.json_response({"ok": True, "version": __version__, "lanes": gw.owner.scheduler.status(),
                              **gw.status()})  # fmt: skip


async def root(request: web.Request) -> web.Response:
    # Ollama answers "Ollama is running" here; tools probe it to find a server.
    return web.Response(text="Ollama is running (twolane gateway)")


def build_app(gw: Gateway) -> web.Application:
    app = web.Application(middlewares=[gateway_middleware],
                          client_max_size=gw.max_body)  # fmt: skip
    app[GATEWAY_KEY] = gw
    app.router.add_get("/", root)
    app.router.add_get("/health", health)
    for path in _OPENAI_ROUTES:
        app.router.add_post(path, openai_request)
    app.router.add_get("/v1/models", openai_models)
    for path in _OLLAMA_ROUTES:
        app.router.add_post(path, ollama_request)
    app.router.add_post("/api/pull", ollama_pull)
    app.router.add_post("/api/show", ollama_show)
    app.router.add_get("/api/tags", ollama_tags)
    app.router.add_get("/api/ps", ollama_ps)
    app.router.add_get("/api/version", ollama_version)
    return app


def retry_after(average_seconds: float, waiting: int, cap: int) -> int:
    """Seconds a refused client should wait: the time to drain the queue, 1..120."""
    return max(1, min(120, math.ceil(average_seconds * waiting / max(1, cap))))


def origin_matches(origin: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(origin, p) for p in patterns)
