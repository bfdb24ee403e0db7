"""The same job operations as the owner's scheduler, for when no owner runs: they act on
the database only, and the next owner picks the changes up."""

from __future__ import annotations

from typing import Any

from console.core import jobs
from console.core.clock import Clock, SystemClock
from console.core.errors import Conflict
from console.core.models import Job, JobState, Lane
from console.core.store import Store


class DirectService:
    def __init__(self, store: Store, clock: Clock | None = None) -> None:
        self.store = store
        self.clock = clock or SystemClock()

    async def submit(self, job: Job) -> Job:
        job.created_at = job.created_at or self.clock.now()
        return await self.store.add_job(job)

    async def get(self, ref: str) -> Job:
        return await self.store.get_job(ref)

    async def attempts(self, ref: str) -> list[dict[str, Any]]:
        return await self.store.attempts((await self.get(ref)).id)

    async def cancel(self, ref: str, reason: str = "cancelled") -> Job:
        job = await self.get(ref)
        if job.state is JobState.RUNNING:
            raise Conflict(
                f"job {job.id} is marked running but no owner is alive; start `twolane serve` "
                "(it recovers the job as interrupted)"
            )
        jobs.mark_cancelled(job, self.clock.now(), reason)
        await self.store.save_job(job)
        return job

    async def set_priority(self, ref: str, priority: int) -> Job:
        priority = jobs.check_priority(priority)
        job = await self.get(ref)
        jobs.check_reprioritize(job)
        job.priority = priority
        await self.store.save_job(job)
        return job

    async def retry(self, ref: str) -> Job:
        job = await self.get(ref)
        jobs.reset_for_retry(job, await self.store.next_seq())
        await self.store.save_job(job)
        return job

    async def pause(self, lanes: list[Lane]) -> dict[str, Any]:
        await self.store.set_paused(lanes, True)
        return await self.status()

    async def resume(self, lanes: list[Lane]) -> dict[str, Any]:
        await self.store.set_paused(lanes, False)
        return await self.status()

    async def status(self) -> dict[str, Any]:
        paused = await self.store.paused_lanes()
        out: dict[str, Any] = {}
        live = await self.store.list_jobs([JobState.QUEUED, JobState.RUNNING])
        for lane in Lane:
            mine = [j for j in live if j.lane is lane]
            held = next((j.held_reason for j in mine if j.held_reason), None)
            out[str(lane)] = {
                "running": sum(1 for j in mine if j.state is JobState.RUNNING),
                "queued": sum(1 for j in mine if j.state is JobState.QUEUED),
                "cap": 1 if lane is Lane.LOCAL else None,
                "paused": paused[lane],
                "held": held,
            }
        out["turn"] = None
        out["owner"] = None
        return out
