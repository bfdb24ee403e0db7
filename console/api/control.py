"""The control API: JSON over the owner's unix socket (mode 0600).

Every client (the CLI, an attached console, an ssh session, a browser view) talks to the
owner through these routes; errors are ``{"error": "..."}`` with a 4xx status.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from console import __version__
from console.core import jobs
from console.core.errors import UserError
from console.core.models import Violation
from console.eventloop import loop_name

if TYPE_CHECKING:
    from console.owner import Owner

OWNER_KEY: web.AppKey[Owner] = web.AppKey("owner")
MAX_LOG_CHUNK = 1 << 20


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, default=str))


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except UserError as exc:
        return _json({"error": str(exc)}, status=exc.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _json({"error": exc.reason or "error"}, status=exc.status)


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError("the request body must be JSON") from None
    if not isinstance(data, dict):
        raise UserError("the request body must be a JSON object")
    return data


def _owner(request: web.Request) -> Owner:
    return request.app[OWNER_KEY]


async def health(request: web.Request) -> web.Response:
    owner = _owner(request)
    return _json({"ok": True, "pid": os.getpid(), "version": __version__, "home": str(owner.home),
                  "started_at": owner.started_at, "gateway": owner.gateway_url,
                  "loop": loop_name()})  # fmt: skip


async def status(request: web.Request) -> web.Response:
    return _json(_owner(request).scheduler.status())


async def add_job(request: web.Request) -> web.Response:
    owner = _owner(request)
    job = jobs.job_from_payload(await _body(request), owner.scheduler.clock.now())
    await owner.prepare_job(job)
    job = await owner.scheduler.submit(job)
    return _json(job.to_dict(), status=201)


async def list_jobs(request: web.Request) -> web.Response:
    owner = _owner(request)
    q = request.query
    states = [jobs.parse_state(s) for s in q.get("state", "").split(",") if s]
    lane = jobs.parse_lane(q["lane"]) if q.get("lane") else None
    limit = _int_query(q, "limit", 0)
    found = await owner.store.list_jobs(states or None, lane, limit or None, newest_first=bool(limit))
    live = {j.id: j for j in (*owner.scheduler.queued(), *owner.scheduler.running())}
    out = [(live.get(j.id) or j).to_dict() for j in found]
    if limit:
        out.reverse()
    return _json(out)


def _int_query(q: Any, name: str, default: int) -> int:
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise UserError(f"'{name}' must be an integer") from None
    if value < 0:
        raise UserError(f"'{name}' must not be negative")
    return value


async def get_job(request: web.Request) -> web.Response:
    owner = _owner(request)
    job = await owner.scheduler.get(request.match_info["ref"])
    data = job.to_dict()
    data["attempts_log"] = await owner.store.attempts(job.id)
    return _json(data)


async def cancel_job(request: web.Request) -> web.Response:
    job = await _owner(request).scheduler.cancel(request.match_info["ref"])
    return _json(job.to_dict())


async def set_priority(request: web.Request) -> web.Response:
    body = await _body(request)
    if "priority" not in body:
        raise UserError("send {\"priority\": N}")
    job = await _owner(request).scheduler.set_priority(request.match_info["ref"], body["priority"])
    return _json(job.to_dict())


async def retry_job(request: web.Request) -> web.Response:
    job = await _owner(request).scheduler.retry(request.match_info["ref"])
    return _json(job.to_dict())


async def job_log(request: web.Request) -> web.Response:
    owner = _owner(request)
    job = await owner.scheduler.get(request.match_info["ref"])
    offset = _int_query(request.query, "offset", 0)
    limit = min(_int_query(request.query, "limit", MAX_LOG_CHUNK), MAX_LOG_CHUNK)
    data, size = read_log_chunk(job.log_path, offset, limit)
    return web.Response(
        body=data,
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Log-Size": str(size), "X-Next-Offset": str(offset + len(data)),
                 "X-Job-State": str(job.state)},
    )  # fmt: skip


def read_log_chunk(log_path: str | None, offset: int, limit: int) -> tuple[bytes, int]:
    if not log_path:
        return b"", 0
    try:
        with open(log_path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            fh.seek(min(offset, size))
            return fh.read(limit), size
    except FileNotFoundError:
        return b"", 0


async def lanes_action(request: web.Request) -> web.Response:
    owner = _owner(request)
    lanes = jobs.parse_lanes(request.match_info["lanes"])
    action = request.match_info["action"]
    if action == "pause":
        return _json(await owner.scheduler.pause(lanes))
    if action == "resume":
        return _json(await owner.scheduler.resume(lanes))
    raise UserError(f"unknown lane action '{action}'; use pause or resume")


async def set_config(request: web.Request) -> web.Response:
    """Change what may change while running (today: ``lanes.remote.concurrency``)."""
    owner = _owner(request)
    body = await _body(request)
    for key, value in body.items():
        if key == "lanes.remote.concurrency":
            owner.scheduler.set_concurrency(value)
            owner.config.set(key, value, "runtime")
        else:
            raise UserError(f"'{key}' cannot change while running; edit the config file and restart")
    return _json(owner.scheduler.status())


async def violations(request: web.Request) -> web.Response:
    limit = _int_query(request.query, "limit", 500) or 500
    found = await _owner(request).store.list_violations(limit=limit)
    return _json([v.to_dict() for v in found])


async def add_violation(request: web.Request) -> web.Response:
    """Record a violation found outside the owner (the ladder, a script)."""
    owner = _owner(request)
    v = violation_from_payload(await _body(request))
    return _json((await owner.scheduler.record_violation(v)).to_dict(), status=201)


def violation_from_payload(body: dict[str, Any]) -> Violation:
    if not isinstance(body.get("rule"), str) or not body["rule"]:
        raise UserError("a violation needs a 'rule' name")
    try:
        return Violation.from_dict({**body, "id": None, "at": body.get("at") or 0.0})
    except (TypeError, ValueError) as exc:
        raise UserError(f"bad violation: {exc}") from None


async def event_stream(request: web.Request) -> web.StreamResponse:
    """NDJSON: one event per line; with ``?snapshot=1`` a snapshot comes first."""
    owner = _owner(request)
    kinds = {k for k in request.query.get("kinds", "").split(",") if k} or None
    sub = owner.bus.subscribe(kinds)
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    try:
        if request.query.get("snapshot"):
            snap = await owner.snapshot(_int_query(request.query, "finished", 200))
            await response.write(_line({"kind": "snapshot", "data": snap}))
        while True:
            try:
                event = await asyncio.wait_for(sub.get(), timeout=15.0)
            except TimeoutError:
                await response.write(_line({"kind": "ping", "data": {}}))
                continue
            await response.write(_line(event.to_dict()))
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        sub.close()
    return response


def _line(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, default=str) + "\n").encode()


async def shutdown(request: web.Request) -> web.Response:
    """Stop the owner (as SIGTERM would): used by the console's quit dialog and by tests."""
    _owner(request).request_stop()
    return _json({"stopping": True})


def build_app(owner: Owner) -> web.Application:
    app = web.Application(middlewares=[_errors], client_max_size=4 * 1024 * 1024)
    app[OWNER_KEY] = owner
    app.router.add_get("/health", health)
    app.router.add_get("/status", status)
    app.router.add_post("/jobs", add_job)
    app.router.add_get("/jobs", list_jobs)
    app.router.add_get("/jobs/{ref}", get_job)
    app.router.add_post("/jobs/{ref}/cancel", cancel_job)
    app.router.add_post("/jobs/{ref}/priority", set_priority)
    app.router.add_post("/jobs/{ref}/retry", retry_job)
    app.router.add_get("/jobs/{ref}/log", job_log)
    app.router.add_post("/lanes/{lanes}/{action}", lanes_action)
    app.router.add_post("/config", set_config)
    app.router.add_get("/violations", violations)
    app.router.add_post("/violations", add_violation)
    app.router.add_get("/events", event_stream)
    app.router.add_post("/shutdown", shutdown)
    for method, path, handler in owner.extra_routes:
        app.router.add_route(method, path, handler)
    return app


class ControlServer:
    """Serves ``build_app(owner)`` on the unix socket inside the running event loop."""

    def __init__(self, owner: Owner, path: Path) -> None:
        self.owner = owner
        self.path = path
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a stale socket from a dead owner (we hold the lease)
        self._runner = web.AppRunner(build_app(self.owner), handle_signals=False, access_log=None)
        await self._runner.setup()
        old = os.umask(0o177)  # the socket is born 0600: no window where others can connect
        try:
            await web.UnixSite(self._runner, str(self.path)).start()
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

