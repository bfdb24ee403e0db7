"""One interface for the console whether it owns the scheduler or attaches to an owner.

``OwnerSession`` runs ``console.owner.Owner`` inside the app's event loop; an
``AttachedSession`` talks to another process's owner over the control socket. Widgets
only see ``Session``: ``events()`` (a snapshot first, then job/lanes/violation/sample
events) and the actions. Neither ever touches SQLite from a widget.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from console.core import events, paths
from console.core.config import Config
from console.core.models import JobState, Lane

if TYPE_CHECKING:
    from console.core.signals.sampler import Sampler

Event = tuple[str, dict[str, Any]]
KINDS = {events.JOB, events.LANES, events.VIOLATION, events.SAMPLE}
GRAPH_SECONDS = 600.0


class Session(Protocol):
    mode: str  # "owner" or "attached"
    home: Path

    async def start(self) -> None: ...
    def events(self) -> AsyncIterator[Event]: ...
    async def add(self, payload: dict[str, Any]) -> dict[str, Any]: ...
    async def cancel(self, job_id: str) -> dict[str, Any]: ...
    async def priority(self, job_id: str, priority: int) -> dict[str, Any]: ...
    async def retry(self, job_id: str) -> dict[str, Any]: ...
    async def pause(self, lanes: str) -> dict[str, Any]: ...
    async def resume(self, lanes: str) -> dict[str, Any]: ...
    async def job(self, job_id: str) -> dict[str, Any]: ...
    async def log_chunk(self, job_id: str, offset: int) -> bytes: ...
    async def samples(self, seconds: float = GRAPH_SECONDS) -> list[dict[str, Any]]: ...
    async def close(self, running: str = "stop") -> None: ...


def _ref(job_id: str) -> str:
    return quote(job_id, safe="")


def local_sampler(home: Path, config: Config, **kwargs: Any) -> Sampler:
    """The core sampler reading this machine, for the graphs when the owner samples
    nothing (an owner without the signals extension): no process scan, no gates."""
    from console.core.signals.gates import Thresholds
    from console.core.signals.sampler import Sampler
    from console.core.signals.sources import SystemSource

    class NoGates(Thresholds):
        def for_sample(self) -> dict[str, float]:
            return {}  # nothing enforces gates here: the graphs draw no limit lines

    source = SystemSource([str(home)], [], top=0)
    return Sampler(source, NoGates(), interval=float(config.get("signals.interval")), **kwargs)


class OwnerSession:
    """The console is the owner: scheduler, control socket and extensions run here."""

    mode = "owner"

    def __init__(self, home: Path, config: Config, owner: Any = None) -> None:
        from console.owner import Owner

        self.home = home
        self.config = config
        self.owner = owner or Owner(home, config)
        self._local: Sampler | None = None
        self._paused_by_us: list[Lane] = []
        self.closing = False

    async def start(self) -> None:
        await self.owner.start()
        if getattr(self.owner, "sampler", None) is None:
            # An owner without the signals extension: sample here and publish like it
            # would, so this console and attached ones still draw the graphs.
            self._local = local_sampler(self.home, self.config, clock=self.owner.clock,
                                        bus=self.owner.bus)  # fmt: skip
            self.owner.sampler = self._local
            self._local.start()

    @property
    def scheduler(self) -> Any:
        return self.owner.scheduler

    async def events(self) -> AsyncIterator[Event]:
        with self.owner.bus.subscribe(KINDS) as sub:
            yield "snapshot", await self.owner.snapshot()
            lagged = 0
            while True:
                event = await sub.get()
                if sub.lagged != lagged:  # events were dropped: start over from the truth
                    lagged = sub.lagged
                    yield "snapshot", await self.owner.snapshot()
                    continue
                yield event.kind, event.data

    async def add(self, payload: dict[str, Any]) -> dict[str, Any]:
        from console.core.jobs import job_from_payload

        job = job_from_payload(payload, self.scheduler.clock.now())
        await self.owner.prepare_job(job)
        return (await self.scheduler.submit(job)).to_dict()

    async def cancel(self, job_id: str) -> dict[str, Any]:
        return (await self.scheduler.cancel(job_id)).to_dict()

    async def priority(self, job_id: str, priority: int) -> dict[str, Any]:
        return (await self.scheduler.set_priority(job_id, priority)).to_dict()

    async def retry(self, job_id: str) -> dict[str, Any]:
        return (await self.scheduler.retry(job_id)).to_dict()

    async def pause(self, lanes: str) -> dict[str, Any]:
        from console.core.jobs import parse_lanes

        return await self.scheduler.pause(parse_lanes(lanes))

    async def resume(self, lanes: str) -> dict[str, Any]:
        from console.core.jobs import parse_lanes

        return await self.scheduler.resume(parse_lanes(lanes))

    async def job(self, job_id: str) -> dict[str, Any]:
        job = await self.scheduler.get(job_id)
        data = job.to_dict()
        data["attempts_log"] = await self.owner.store.attempts(job.id)
        return data

    async def log_chunk(self, job_id: str, offset: int) -> bytes:
        from console.api.control import MAX_LOG_CHUNK, read_log_chunk

        if self.closing:
            return b""
        job = await self.scheduler.get(job_id)
        return read_log_chunk(job.log_path, offset, MAX_LOG_CHUNK)[0]

    async def samples(self, seconds: float = GRAPH_SECONDS) -> list[dict[str, Any]]:
        sampler = getattr(self.owner, "sampler", None)
        return list(sampler.history(seconds)) if sampler is not None else []

    def running_count(self) -> int:
        return len(self.scheduler.running())

    async def drain(self) -> None:
        """Let running jobs finish while nothing new starts; queued jobs stay queued."""
        status = self.scheduler.status()
        mine = [lane for lane in Lane if not status[str(lane)]["paused"]]
        self._paused_by_us = sorted({*self._paused_by_us, *mine})
        await self.scheduler.pause(list(Lane))
        for job in list(self.scheduler.running()):
            await self.scheduler.wait_done(job.id)

    async def close(self, running: str = "stop") -> None:
        """Stop the owner. ``running``: "stop" (interrupted), "cancel" or "wait"."""
        self.closing = True
        if running == "wait":
            await self.drain()
        elif running == "cancel":
            for job in list(self.scheduler.running()):
                if job.state is JobState.RUNNING:
                    await self.scheduler.cancel(job.id)
        if self._local is not None:
            await self._local.stop()
        await self.scheduler.stop()  # nothing starts from here on
        if self._paused_by_us:  # our pause for "wait" was not the user's: undo it on disk
            await self.scheduler.resume(self._paused_by_us)
        await self.owner.stop()


class AttachedSession:
    """Another process owns the data dir; everything goes over its control socket."""

    mode = "attached"

    def __init__(self, home: Path, config: Config) -> None:
        import httpx

        from console.client import AsyncControlClient

        self.home = home
        self.config = config
        sock = paths.socket_path(home)
        self.client = AsyncControlClient(sock)
        # Logs are plain text, so they need a raw response rather than JSON.
        self._raw = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(sock)), base_url="http://twolane",
            timeout=30.0,
        )  # fmt: skip
        self._local: Sampler | None = None
        self._local_samples: asyncio.Queue[dict[str, Any]] = asyncio.Queue(100)

    async def start(self) -> None:
        await self.client.request("GET", "/health")

    async def events(self) -> AsyncIterator[Event]:
        if not await self._owner_samples():
            # The owner samples nothing (no signals feature, headless): the socket is
            # local, so this machine's own readings are the owner's readings.
            self._local = local_sampler(self.home, self.config)
            self._local.add_listener(self._local_sample)
            self._local.start()
        stream = self.client.events(sorted(KINDS), snapshot=True)
        pending: dict[str, asyncio.Task[Any]] = {}
        try:
            while True:
                if "remote" not in pending:
                    pending["remote"] = asyncio.ensure_future(anext(stream))
                if "local" not in pending:
                    pending["local"] = asyncio.ensure_future(self._local_samples.get())
                done, _ = await asyncio.wait(pending.values(), return_when=asyncio.FIRST_COMPLETED)
                for name, task in list(pending.items()):
                    if task not in done:
                        continue
                    del pending[name]
                    if name == "local":
                        yield events.SAMPLE, task.result()
                        continue
                    event = task.result()  # StopAsyncIteration / OwnerGone end the stream
                    if event["kind"] in KINDS or event["kind"] == "snapshot":
                        yield event["kind"], event["data"]
        finally:
            for task in pending.values():
                task.cancel()
            with contextlib.suppress(Exception):
                await stream.aclose()

    async def _local_sample(self, sample: dict[str, Any]) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._local_samples.put_nowait(sample)

    async def _owner_samples(self) -> bool:
        from console.core.errors import UserError

        try:
            await self.client.request("GET", f"/signals/history?seconds={int(GRAPH_SECONDS)}")
        except UserError:
            return False
        return True

    async def add(self, payload: dict[str, Any]) -> dict[str, Any]:
        return await self.client.request("POST", "/jobs", payload)

    async def cancel(self, job_id: str) -> dict[str, Any]:
        return await self.client.request("POST", f"/jobs/{_ref(job_id)}/cancel")

    async def priority(self, job_id: str, priority: int) -> dict[str, Any]:
        return await self.client.request(
            "POST", f"/jobs/{_ref(job_id)}/priority", {"priority": priority}
        )

    async def retry(self, job_id: str) -> dict[str, Any]:
        return await self.client.request("POST", f"/jobs/{_ref(job_id)}/retry")

    async def pause(self, lanes: str) -> dict[str, Any]:
        return await self.client.request("POST", f"/lanes/{_ref(lanes)}/pause")

    async def resume(self, lanes: str) -> dict[str, Any]:
        return await self.client.request("POST", f"/lanes/{_ref(lanes)}/resume")

    async def job(self, job_id: str) -> dict[str, Any]:
        return await self.client.request("GET", f"/jobs/{_ref(job_id)}")

    async def log_chunk(self, job_id: str, offset: int) -> bytes:
        import httpx

        from console.client import OwnerGone

        try:
            resp = await self._raw.get(f"/jobs/{_ref(job_id)}/log", params={"offset": offset})
        except httpx.TransportError as exc:
            raise OwnerGone(f"the owner did not answer ({exc})") from exc
        return resp.content if resp.status_code == 200 else b""

    async def samples(self, seconds: float = GRAPH_SECONDS) -> list[dict[str, Any]]:
        if self._local is not None:
            return self._local.history(seconds)
        from console.core.errors import UserError

        try:
            data = await self.client.request("GET", f"/signals/history?seconds={int(seconds)}")
        except UserError:
            return []
        return list(data.get("samples", data) if isinstance(data, dict) else data)

    async def close(self, running: str = "leave") -> None:
        """Leave the owner running; only this console's connections close."""
        if self._local is not None:
            await self._local.stop()
        await self.client.aclose()
        await self._raw.aclose()


FINISHED_STATES = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.INTERRUPTED)


def stored_snapshot(home: Path, config: Config) -> dict[str, Any] | None:
    """What the database holds, shaped like the owner's snapshot (the newest 200 finished
    jobs, the live ones, paused lanes), so the first frame shows the jobs while the session
    opens. Read-only, and only at the schema this twolane knows (migrating is the owner's
    job); None when there is no database or it cannot be read (the owner will say why)."""
    import sqlite3

    from console.core.schema import JOB_COLUMNS, SCHEMA_VERSION, row_to_job

    db = paths.db_path(home)
    if not db.exists():
        return None
    try:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=1.0)
    except sqlite3.Error:
        return None
    try:
        if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            return None
        select = f"SELECT {JOB_COLUMNS} FROM jobs WHERE state IN "
        finished = conn.execute(select + "(?, ?, ?, ?) ORDER BY seq DESC LIMIT 200",
                                [str(s) for s in FINISHED_STATES]).fetchall()  # fmt: skip
        live = conn.execute(select + "('running', 'queued') ORDER BY seq").fetchall()
        paused = {lane: bool(p) for lane, p in conn.execute("SELECT lane, paused FROM lanes")}
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    jobs = [row_to_job(r) for r in (*reversed(finished), *live)]
    status: dict[str, Any] = {"turn": None}
    for lane in Lane:
        mine = [j for j in jobs if j.lane is lane]
        status[str(lane)] = {
            "running": sum(1 for j in mine if j.state is JobState.RUNNING),
            "queued": sum(1 for j in mine if j.state is JobState.QUEUED),
            "cap": 1 if lane is Lane.LOCAL else int(config.get("lanes.remote.concurrency")),
            "paused": paused.get(str(lane), False), "held": None,
        }  # fmt: skip
    return {"jobs": [j.to_dict() for j in jobs], "status": status, "violations": []}


def _import_owner() -> None:
    """The owner's modules (aiohttp and the rest, ~0.3-0.6 s), imported off the event
    loop so the console keeps drawing and taking keys meanwhile."""
    import console.api.control
    import console.api.gateway
    import console.core.signals.extension
    import console.owner  # noqa: F401


async def open_session(home: Path, config: Config, *, attach_only: bool = False) -> Session:
    """Attach when an owner answers on the socket, else become the owner."""
    from console.client import owner_client
    from console.core.errors import OwnerRunning

    last: OwnerRunning | None = None
    for _ in range(3):
        if await asyncio.to_thread(owner_client, home, 5.0) is not None:
            session: Session = AttachedSession(home, config)
            await session.start()
            return session
        if attach_only:
            from console.core.errors import UserError

            raise UserError(f"no owner runs for {home}; start one with `twolane serve`")
        await asyncio.to_thread(_import_owner)
        owned = OwnerSession(home, config)
        try:
            await owned.start()
            return owned
        except OwnerRunning as exc:
            last = exc
            await asyncio.sleep(0.3)  # another owner is starting right now: attach to it
    assert last is not None
    raise last
