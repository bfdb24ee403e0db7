"""The owner of a data dir: lease, store, scheduler, control socket and the extensions
(signals, gateway) in one event loop. ``twolane serve`` and the console both run this."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from console.core import events, paths
from console.core.clock import Clock, SystemClock
from console.core.config import Config
from console.core.lease import Lease
from console.core.models import Job, JobState
from console.core.scheduler import Scheduler
from console.core.store import Store

log = logging.getLogger(__name__)


class Extension(Protocol):
    """A feature that lives in the owner (signals sampler, gateway...)."""

    async def start(self, owner: Owner) -> None: ...

    async def stop(self) -> None: ...


# Hooks extensions use to shape a job before it is stored (e.g. predict its footprint).
JobHook = Callable[[Job], Awaitable[None]]


def default_extensions(config: Config) -> list[Extension]:
    """The extensions every owner runs. Each feature adds its own line here."""
    from console.api.gateway import gateway_extension

    exts: list[Extension] = []
    exts.append(gateway_extension(config))  # LLM gateway + pull runner (issue 5)
    from console.core.signals.extension import SignalsExtension

    exts.append(SignalsExtension(config))  # sampler, gates, footprints, rules (issue 4)
    return exts


class Owner:
    def __init__(
        self,
        home: Path,
        config: Config,
        *,
        clock: Clock | None = None,
        extensions: list[Extension] | None = None,
    ) -> None:
        self.home = home
        self.config = config
        self.clock = clock or SystemClock()
        self.bus = events.EventBus()
        self.lease = Lease(paths.lease_path(home))
        self.extensions = default_extensions(config) if extensions is None else extensions
        self.extra_routes: list[tuple[str, str, Any]] = []
        self.job_hooks: list[JobHook] = []
        self.gateway_url: str | None = None
        self.started_at: float | None = None
        self.store: Store
        self.scheduler: Scheduler
        self._control: Any = None
        self._stop = asyncio.Event()
        self._started_ext: list[Extension] = []

    async def start(self) -> None:
        """Take the lease (raises ``OwnerRunning``), recover, and serve the socket."""
        paths.ensure_home(self.home)
        self.lease.acquire()
        try:
            self.store = await Store.open(
                paths.db_path(self.home), self.config.get("store.synchronous")
            )
            self.scheduler = Scheduler(
                self.store,
                self.home,
                concurrency=self.config.get("lanes.remote.concurrency"),
                cross_mix=self.config.get("policy.cross_mix"),
                kill_grace=self.config.get("runner.kill_grace"),
                bus=self.bus,
                clock=self.clock,
            )
            for ext in self.extensions:
                await ext.start(self)
                self._started_ext.append(ext)
            await self.scheduler.start()
            from console.api.control import ControlServer

            self._control = ControlServer(self, paths.socket_path(self.home))
            await self._control.start()
            self.started_at = time.time()
            # Everything loaded so far (modules, config, the app) lives as long as the
            # owner: out of the collector's sight, a full collection no longer walks it
            # (22-24 ms a time with the gateway's libraries loaded: the gateway's p99).
            # Garbage is collected first so none of it is kept for good.
            gc.collect()
            gc.freeze()
        except BaseException:
            await self._teardown()
            raise

    async def stop(self) -> list[Job]:
        """Clean stop: nothing new starts, running jobs are terminated and recorded."""
        stopped: list[Job] = []
        if hasattr(self, "scheduler"):
            stopped = await self.scheduler.stop()
        await self._teardown()
        return stopped

    async def _teardown(self) -> None:
        if self._control is not None:
            await self._control.stop()
            self._control = None
        for ext in reversed(self._started_ext):
            try:
                await ext.stop()
            except Exception:
                log.exception("extension stop failed")
        self._started_ext = []
        if hasattr(self, "store"):
            with contextlib.suppress(Exception):
                await self.store.close()
        self.lease.release()

    def request_stop(self) -> None:
        self._stop.set()

    async def wait_for_stop_request(self) -> None:
        await self._stop.wait()

    async def prepare_job(self, job: Job) -> None:
        for hook in self.job_hooks:
            await hook(job)

    async def snapshot(self, finished: int = 200) -> dict[str, Any]:
        """Everything a freshly attached console needs to draw itself."""
        recent = await self.store.list_jobs(
            [JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.INTERRUPTED],
            limit=finished or None,
            newest_first=True,
        )
        live = [*self.scheduler.running(), *self.scheduler.queued()]
        violations = await self.store.list_violations(limit=200)
        return {
            "jobs": [j.to_dict() for j in (*reversed(recent), *live)],
            "status": self.scheduler.status(),
            "violations": [v.to_dict() for v in violations],
            "pid": os.getpid(),
            "home": str(self.home),
        }
