"""Talking to the owner of a data dir, or to its database when no owner runs.

``connect(home)`` gives a backend with the same methods either way, so every CLI command
behaves the same with or without an owner. The socket client uses the standard library
(a hand-written HTTP/1.1 exchange over ``AF_UNIX``) because ``twolane add`` must start fast; the console's
live client (``AsyncControlClient``) uses httpx.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from console.core import paths
from console.core.errors import Conflict, NotFound, UserError

_ERRORS: dict[int, type[UserError]] = {404: NotFound, 409: Conflict}


class OwnerGone(RuntimeError):
    """The owner stopped answering mid-conversation."""


def _unix_http(
    sock_path: str, method: str, path: str, body: bytes | None, timeout: float | None
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 exchange over a unix socket (``Connection: close``).

    Written out because ``http.client`` costs ~35 ms to import (it pulls in ``email``)
    and ``twolane add`` must start fast."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(sock_path)
        head = f"{method} {path} HTTP/1.1\r\nHost: twolane\r\nConnection: close\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        sock.sendall(head.encode() + b"\r\n" + (body or b""))
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    finally:
        sock.close()
    raw = b"".join(chunks)
    header_blob, sep, payload = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ConnectionError("incomplete HTTP response")
    lines = header_blob.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        payload = _dechunk(payload)
    return status, headers, payload


def _dechunk(data: bytes) -> bytes:
    out, pos = [], 0
    while True:
        end = data.index(b"\r\n", pos)
        size = int(data[pos:end].split(b";")[0], 16)
        if size == 0:
            return b"".join(out)
        out.append(data[end + 2 : end + 2 + size])
        pos = end + 2 + size + 2


def _raise_for(status: int, body: bytes) -> None:
    try:
        message = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        message = body.decode(errors="replace").strip() or f"HTTP {status}"
    if status >= 500:
        raise OwnerGone(f"the owner failed: {message}")
    raise _ERRORS.get(status, UserError)(message)


class ControlClient:
    """Synchronous client of the control socket."""

    mode = "owner"

    def __init__(self, sock_path: Path, timeout: float | None = 60.0) -> None:
        self.sock_path = sock_path
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None, *, raw: bool = False) -> Any:
        payload = None if body is None else json.dumps(body).encode()
        if payload is None and method == "POST":
            payload = b""
        try:
            status, headers, data = _unix_http(
                str(self.sock_path), method, path, payload, self.timeout
            )
        except (OSError, ValueError, IndexError) as exc:
            raise OwnerGone(f"the owner at {self.sock_path} did not answer ({exc})") from exc
        if status >= 400:
            _raise_for(status, data)
        if raw:
            return data, headers
        return json.loads(data) if data else None

    def ping(self) -> dict[str, Any]:
        return self.request("GET", "/health")

    # ---- the backend interface (same as DirectBackend) ---------------------------------

    def add(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/jobs", payload)

    def list(self, states: list[str] | None = None, lane: str | None = None) -> list[dict[str, Any]]:
        query = {}
        if states:
            query["state"] = ",".join(states)
        if lane:
            query["lane"] = lane
        return self.request("GET", "/jobs" + (f"?{urlencode(query)}" if query else ""))

    def get(self, ref: str) -> dict[str, Any]:
        return self.request("GET", f"/jobs/{quote(ref, safe='')}")

    def cancel(self, ref: str) -> dict[str, Any]:
        return self.request("POST", f"/jobs/{quote(ref, safe='')}/cancel")

    def priority(self, ref: str, priority: int) -> dict[str, Any]:
        return self.request("POST", f"/jobs/{quote(ref, safe='')}/priority", {"priority": priority})

    def retry(self, ref: str) -> dict[str, Any]:
        return self.request("POST", f"/jobs/{quote(ref, safe='')}/retry")

    def pause(self, lanes: str) -> dict[str, Any]:
        return self.request("POST", f"/lanes/{quote(lanes, safe='')}/pause")

    def resume(self, lanes: str) -> dict[str, Any]:
        return self.request("POST", f"/lanes/{quote(lanes, safe='')}/resume")

    def status(self) -> dict[str, Any]:
        return self.request("GET", "/status")

    def violations(self, limit: int = 500) -> list[dict[str, Any]]:
        return self.request("GET", f"/violations?limit={limit}")

    def record_violation(self, violation: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/violations", violation)

    def log_chunk(self, ref: str, offset: int) -> tuple[bytes, str]:
        data, headers = self.request(
            "GET", f"/jobs/{quote(ref, safe='')}/log?offset={offset}", raw=True
        )
        return data, headers.get("x-job-state", "")

    def close(self) -> None:
        pass


class DirectBackend:
    """No owner: the same operations straight on the database (``DirectService``)."""

    mode = "direct"

    def __init__(self, home: Path) -> None:
        self.home = home
        self._runner: Any = None  # an asyncio.Runner, made on the first async call
        self._service: Any = None

    def _call(self, name: str, *args: Any) -> Any:
        if self._runner is None:
            import asyncio

            self._runner = asyncio.Runner()
        return self._runner.run(self._async_call(name, *args))

    async def _async_call(self, name: str, *args: Any) -> Any:
        if self._service is None:
            from console.core import config
            from console.core.direct import DirectService
            from console.core.store import Store

            paths.ensure_home(self.home)
            cfg = config.load()
            store = await Store.open(paths.db_path(self.home), cfg.get("store.synchronous"))
            self._service = DirectService(store)
        return await getattr(self, "_do_" + name)(*args)

    async def _do_add(self, payload: dict[str, Any]) -> dict[str, Any]:
        from console.core.jobs import job_from_payload

        job = job_from_payload(payload, self._service.clock.now())
        return (await self._service.submit(job)).to_dict()

    async def _do_list(self, states: list[str] | None, lane: str | None) -> list[dict[str, Any]]:
        from console.core.jobs import parse_lane, parse_state

        found = await self._service.store.list_jobs(
            [parse_state(s) for s in states or []] or None, parse_lane(lane) if lane else None
        )
        return [j.to_dict() for j in found]

    async def _do_get(self, ref: str) -> dict[str, Any]:
        job = await self._service.get(ref)
        data = job.to_dict()
        data["attempts_log"] = await self._service.store.attempts(job.id)
        return data

    async def _do_cancel(self, ref: str) -> dict[str, Any]:
        return (await self._service.cancel(ref)).to_dict()

    async def _do_priority(self, ref: str, priority: int) -> dict[str, Any]:
        return (await self._service.set_priority(ref, priority)).to_dict()

    async def _do_retry(self, ref: str) -> dict[str, Any]:
        return (await self._service.retry(ref)).to_dict()

    async def _do_pause(self, lanes: str) -> dict[str, Any]:
        from console.core.jobs import parse_lanes

        return await self._service.pause(parse_lanes(lanes))

    async def _do_resume(self, lanes: str) -> dict[str, Any]:
        from console.core.jobs import parse_lanes

        return await self._service.resume(parse_lanes(lanes))

    async def _do_status(self) -> dict[str, Any]:
        return await self._service.status()

    async def _do_violations(self, limit: int) -> list[dict[str, Any]]:
        return [v.to_dict() for v in await self._service.store.list_violations(limit=limit)]

    async def _do_record_violation(self, violation: dict[str, Any]) -> dict[str, Any]:
        import time

        from console.api.control import violation_from_payload

        v = violation_from_payload(violation)
        v.at = v.at or time.time()
        return (await self._service.store.add_violation(v)).to_dict()

    async def _do_log_chunk(self, ref: str, offset: int) -> tuple[bytes, str]:
        job = await self._service.get(ref)
        from console.api.control import read_log_chunk

        data, _ = read_log_chunk(job.log_path, offset, 1 << 20)
        return data, str(job.state)

    def add(self, payload: dict[str, Any]) -> dict[str, Any]:
        # One INSERT needs no event loop: scripts that enqueue with no owner running
        # skip asyncio and aiosqlite (the async path creates or migrates the database).
        if self._service is None:
            import time

            from console.core import config
            from console.core.jobs import job_from_payload
            from console.core.schema import add_job_now

            job = job_from_payload(payload, time.time())
            synchronous = config.load().get("store.synchronous")
            if add_job_now(paths.db_path(self.home), job, synchronous) is not None:
                return job.to_dict()
        return self._call("add", payload)

    def list(self, states: list[str] | None = None, lane: str | None = None) -> list[dict[str, Any]]:
        return self._call("list", states, lane)

    def get(self, ref: str) -> dict[str, Any]:
        return self._call("get", ref)

    def cancel(self, ref: str) -> dict[str, Any]:
        return self._call("cancel", ref)

    def priority(self, ref: str, priority: int) -> dict[str, Any]:
        return self._call("priority", ref, priority)

    def retry(self, ref: str) -> dict[str, Any]:
        return self._call("retry", ref)

    def pause(self, lanes: str) -> dict[str, Any]:
        return self._call("pause", lanes)

    def resume(self, lanes: str) -> dict[str, Any]:
        return self._call("resume", lanes)

    def status(self) -> dict[str, Any]:
        return self._call("status")

    def violations(self, limit: int = 500) -> list[dict[str, Any]]:
        return self._call("violations", limit)

    def log_chunk(self, ref: str, offset: int) -> tuple[bytes, str]:
        return self._call("log_chunk", ref, offset)

    def record_violation(self, violation: dict[str, Any]) -> dict[str, Any]:
        return self._call("record_violation", violation)

    def close(self) -> None:
        if self._service is not None:
            self._runner.run(self._service.store.close())
        if self._runner is not None:
            self._runner.close()


Backend = ControlClient | DirectBackend


def owner_client(home: Path, timeout: float | None = 60.0) -> ControlClient | None:
    """A client of the running owner, or None when no owner answers."""
    sock = paths.socket_path(home)
    if not sock.exists():
        return None
    client = ControlClient(sock, timeout)
    try:
        client.ping()
    except (OwnerGone, UserError):
        return None
    return client


def connect(home: Path) -> Backend:
    """The owner's socket when an owner runs, else the database directly."""
    return owner_client(home) or DirectBackend(home)


def iter_events(sock_path: Path, kinds: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Blocking NDJSON event stream from the owner (for scripts)."""
    import http.client

    class _Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(str(sock_path))

    conn = _Conn("localhost")
    query = f"?kinds={','.join(kinds)}" if kinds else ""
    conn.request("GET", "/events" + query)
    resp = conn.getresponse()
    try:
        for line in resp:
            if line.strip():
                yield json.loads(line)
    finally:
        conn.close()


class AsyncControlClient:
    """httpx client of the control socket for the console's attached mode."""

    def __init__(self, sock_path: Path) -> None:
        import httpx

        self.sock_path = sock_path
        self._http = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(sock_path)),
            base_url="http://twolane",
            timeout=httpx.Timeout(60.0, read=None),
        )

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        import httpx

        try:
            resp = await self._http.request(method, path, json=body)
        except httpx.TransportError as exc:
            raise OwnerGone(f"the owner at {self.sock_path} did not answer ({exc})") from exc
        if resp.status_code >= 400:
            _raise_for(resp.status_code, resp.content)
        return resp.json() if resp.content else None

    async def events(self, kinds: list[str] | None = None, snapshot: bool = True):  # type: ignore[no-untyped-def]
        """Yield events (dicts); the first is the snapshot when asked for."""
        params = {"snapshot": "1"} if snapshot else {}
        if kinds:
            params["kinds"] = ",".join(kinds)
        async with self._http.stream("GET", "/events", params=params) as resp:
            async for line in resp.aiter_lines():
                if line.strip():
                    yield json.loads(line)

    async def aclose(self) -> None:
        await self._http.aclose()
