"""The owner's scheduler: asks the policy what may start, starts runners, records every
transition in the store before its effect, and publishes it on the event bus.

In-memory state (queued lists per lane, running tasks) mirrors the database; the
database is the truth after a crash, and ``start()`` recovers from it.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from console.core import events, jobs, paths
from console.core.clock import Clock, SystemClock
from console.core.eager import run_eagerly, start_task
from console.core.errors import Conflict, UserError
from console.core.models import Job, JobState, Lane, Severity, Violation
from console.core.policy import LaneView, PolicyState, Turn, decide
from console.core.runners.base import Outcome, RunContext, Runner
from console.core.runners.shell import (
    ShellRunner,
    find_job_group,
    group_alive,
    pid_matches,
    prepare_log,
)
from console.core.store import Store

log = logging.getLogger(__name__)

# A gate check answers None when the job may start, else the held reason.
GateCheck = Callable[[Job], Awaitable[str | None]]
# The same check answered from readings already at hand: True only when the job may
# start now without the asynchronous check (False: ask ``GateCheck``).
GateNow = Callable[[Job], bool]
# Picks which queued job of a lane starts next (default: the head). Gets the sorted list.
Picker = Callable[[Lane, list[Job]], Job]

HOUSEKEEPING_INTERVAL = 0.5
LOGS_AHEAD = 16  # queued shell jobs per lane whose logs are created ahead
# A started job's pid is written this long after the start, or with its end if that
# comes first (most short jobs: one commit saved). An owner that dies in between leaves
# the pid unwritten; recovery then finds the group by the job id in its environment.
PID_WRITE_DELAY = 0.05
GATE_BACKOFF_MIN = 0.5
GATE_BACKOFF_MAX = 10.0


def _create_logs(folder: str, job_ids: list[str]) -> list[str]:
    """Create empty logs (in a worker thread); the ids whose log now exists."""
    made = []
    for job_id in job_ids:
        try:
            prepare_log(Path(f"{folder}/{job_id}.log"))
        except OSError:
            break  # the disk is full or the folder is gone: each start will say why
        made.append(job_id)
    return made


def _remove_empty(path: Path) -> None:
    with contextlib.suppress(OSError):
        if path.stat().st_size == 0:
            path.unlink()


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("writing a started job's pid failed: %s", task.exception())


STOPPING = (JobState.INTERRUPTED, "interrupted: owner stopping")


def _defers(job: Job, runner: Runner | None) -> bool:
    """Whether ``job``'s row may wait (``Store.add_job_soon``): a gateway request's, whose
    client holds it, and only one that cannot start over. A retry writes its ended
    attempt's row (the attempts history) before it begins again, so that row must be on
    disk first."""
    return runner is not None and not job.retries and not job.retry_on_interrupt


class Scheduler:
    def __init__(
        self,
        store: Store,
        home: Path,
        *,
        concurrency: int = 5,
        cross_mix: bool = False,
        kill_grace: float = 10.0,
        bus: events.EventBus | None = None,
        clock: Clock | None = None,
        runners: dict[str, Runner] | None = None,
        gate: GateCheck | None = None,
    ) -> None:
        self.store = store
        self.home = home
        self.bus = bus or events.EventBus()
        self.clock = clock or SystemClock()
        self.concurrency = concurrency
        self.cross_mix = cross_mix
        self.kill_grace = kill_grace
        self.runners: dict[str, Runner] = {"shell": ShellRunner(), **(runners or {})}
        self.gate = gate
        self.gate_now: GateNow | None = None
        self.picker: Picker | None = None
        self._queued: dict[Lane, list[Job]] = {lane: [] for lane in Lane}
        # A job's task, or the future holding its lane slot while submit() inserts it.
        self._running: dict[str, tuple[Job, asyncio.Future[None]]] = {}
        self._ephemeral: dict[str, Runner] = {}  # in-process runners (gateway requests)
        # Why a running job's task was cancelled: its end state and error.
        self._end_reason: dict[str, tuple[JobState, str]] = {}
        self._paused: dict[Lane, bool] = {lane: False for lane in Lane}
        self._held: dict[Lane, str | None] = {lane: None for lane in Lane}
        self._gate_retry_at = 0.0
        self._gate_backoff = GATE_BACKOFF_MIN
        self._turn = Turn()
        # Process groups a dead owner left running: job id -> (pid, start time, lane).
        self._orphans: dict[str, tuple[int, float | None, Lane]] = {}
        self._kick = asyncio.Event()
        self._accepting = False
        self._tasks: list[asyncio.Task[None]] = []
        self._data_version = 0
        self._done_waiters: dict[str, list[asyncio.Future[Job]]] = {}
        self._dispatching = False  # _dispatch may be suspended in a gate check
        self._logs_dir = str(paths.logs_dir(home))
        self._prepared_logs: set[str] = set()  # queued jobs whose empty log exists already
        self._preparing: dict[Lane, set[str]] = {}  # logs being created, per lane
        self._dropped_logs: set[str] = set()  # of those, jobs cancelled meanwhile
        # Jobs whose runner has returned and whose end is being recorded: never cancelled
        # (a cancel there would cut the recording short), so no task hop shields them.
        self._finishing: set[str] = set()
        self._eager = False  # a job task's first step is running in start_task
        self._pid_writes: dict[str, asyncio.TimerHandle] = {}  # started, pid not written yet
        store.on_renamed = self._renamed
        store.on_lost = self._unstored

    # ---- life cycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Recover from the database, then begin dispatching."""
        await self._recover()
        self._paused = await self.store.paused_lanes()
        await self._load_queued()
        self._data_version = await self.store.data_version()
        self._accepting = True
        self._tasks = [
            asyncio.create_task(self._dispatch_loop(), name="twolane-dispatch"),
            asyncio.create_task(self._housekeeping_loop(), name="twolane-housekeeping"),
        ]
        self._publish_lanes()
        self._kick.set()

    async def stop(self) -> list[Job]:
        """Start nothing new; terminate running jobs' groups and record them interrupted."""
        self._accepting = False
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        stopped = [job for job, _ in self._running.values()]
        for job, task in list(self._running.values()):
            if job.id not in self._finishing:  # past its runner: it ends as it ended
                self._end_reason[job.id] = STOPPING
                task.cancel()
        for job, task in list(self._running.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self._end_if_never_started(job, task)
        for job_id in self._prepared_logs:  # queued jobs' logs made ahead: made at start
            _remove_empty(Path(f"{self._logs_dir}/{job_id}.log"))
        self._prepared_logs.clear()
        self._publish_lanes()
        return stopped

    @property
    def accepting(self) -> bool:
        return self._accepting

    # ---- recovery ----------------------------------------------------------------------

    async def _recover(self) -> None:
        now = self.clock.now()
        for job in await self.store.list_jobs([JobState.RUNNING]):
            if not job.pid and job.kind == "shell":  # died before the pid was written
                found = await asyncio.to_thread(find_job_group, job.id)
                if found is not None:
                    job.pid, job.pid_start = found
            orphan = bool(job.pid and pid_matches(job.pid, job.pid_start) and group_alive(job.pid))
            job.state = JobState.INTERRUPTED
            job.finished_at = now
            job.error = "interrupted: the owner stopped while it ran"
            if orphan:
                # Still running on its own: it keeps its lane slot until it exits, so the
                # lane rules hold across the crash and the job never runs beside itself.
                job.error += f"; its process group {job.pid} is still alive and was not re-run"
                self._orphans[job.id] = (job.pid or 0, job.pid_start, job.lane)
                await self.record_violation(
                    Violation(
                        rule="orphan_process",
                        message=(
                            f"job {job.id} ({job.name}) left process group {job.pid} running "
                            "after its owner died; it was not started a second time"
                        ),
                        severity=Severity.WARNING,
                        job_ids=[job.id],
                        at=now,
                    )
                )
            await self.store.save_job(job)  # ends the attempt (the store records it)
            if job.retry_on_interrupt:
                pid = job.pid
                await self._requeue_at_head(job)
                if orphan:
                    job.held_reason = (
                        f"waiting for process group {pid} left running by the previous owner"
                    )
            await self.store.save_job(job)
        # Queued in-process jobs (gateway requests) lost their caller with the old owner.
        for job in await self.store.list_jobs([JobState.QUEUED]):
            if job.kind not in self.runners:
                job.state = JobState.INTERRUPTED
                job.finished_at = now
                job.error = f"interrupted: its client went away with the previous owner ({job.kind})"
                await self.store.save_job(job)

    async def _requeue_at_head(self, job: Job) -> None:
        jobs.reset_for_retry(job, await self.store.min_seq(job.lane) - 1)

    async def _load_queued(self) -> None:
        queued = await self.store.list_jobs([JobState.QUEUED])
        for lane in Lane:
            self._queued[lane] = sorted(
                (j for j in queued if j.lane is lane and j.id not in self._running
                 and j.id not in self._orphans),
                key=Job.sort_key,
            )
        self._held = {lane: None for lane in Lane}

    # ---- public operations (the control API calls these) -------------------------------

    async def submit(self, job: Job, runner: Runner | None = None) -> Job:
        """Persist a new job (committed before this returns), then queue it. A job its
        lane would start right away is inserted already ``running`` and started: one
        write instead of two, and no trip through the dispatch loop. A gateway request
        (``runner`` given) is the exception: its row lands whole, with the commit that
        ends it or in a batch soon after it came (``Store.add_job_soon``); its client's
        connection keeps it meanwhile."""
        if runner is None and job.kind not in self.runners:
            raise UserError(f"no runner for job kind '{job.kind}'")
        job.created_at = job.created_at or self.clock.now()
        turn = self._starts_now(job)
        gated = turn is not None and job.lane is Lane.LOCAL and not job.force and self.gate is not None
        if gated and not (self.gate_now is not None and self.gate_now(job)):
            # The gate reads the machine (an await): the lane may be taken meanwhile.
            turn = self._starts_now(job) if await self.gate(job) is None else None
        if turn is not None:
            return await self._start_new(job, runner, turn)
        if _defers(job, runner):
            self._add_soon(job)
        else:
            await self._add(job)
        if runner is not None:
            self._ephemeral[job.id] = runner
        self._insert(job)
        self._publish_job(job)
        self._kick_if_startable()
        if job.kind == "shell" and self._running_in(job.lane):  # it may be next in a busy lane
            asyncio.get_running_loop().call_soon(self._prepare_logs, job.lane)
        return job

    async def get(self, ref: str) -> Job:
        """A job by id or unique prefix; the live object while it is queued or running."""
        job = self._live(ref)
        if job is not None:
            return job
        stored = await self.store.get_job(ref)
        return self._live(stored.id) or stored

    async def attempts(self, ref: str) -> list[dict[str, Any]]:
        return await self.store.attempts((await self.get(ref)).id)

    async def cancel(self, ref: str, reason: str = "cancelled") -> Job:
        job = await self.get(ref)
        running = self._running.get(job.id)
        if running is not None:
            if job.id not in self._finishing:  # past its runner: too late to cancel
                self._end_reason[job.id] = (JobState.CANCELLED, reason)
                running[1].cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running[1]
            await self._end_if_never_started(job, running[1])
            return job
        jobs.mark_cancelled(job, self.clock.now(), reason)
        self._remove_queued(job)
        await self.store.save_job(job)
        self._drop_prepared_log(job)
        self._finished(job)
        return job

    async def set_priority(self, ref: str, priority: int) -> Job:
        priority = jobs.check_priority(priority)
        job = await self.get(ref)
        jobs.check_reprioritize(job)
        self._remove_queued(job)
        job.priority = priority
        await self.store.save_job(job)
        self._insert(job)
        self._publish_job(job)
        self._kick.set()
        return job

    async def retry(self, ref: str) -> Job:
        job = await self.get(ref)
        if job.kind not in self.runners:
            raise Conflict(f"job {job.id} is a {job.kind} request; its client must send it again")
        if job.id in self._orphans:
            raise Conflict(
                f"job {job.id} still runs as process group {self._orphans[job.id][0]} left by "
                "the previous owner; wait for it to exit or kill it, then retry"
            )
        jobs.reset_for_retry(job, await self.store.next_seq())
        await self.store.save_job(job)
        self._insert(job)
        self._publish_job(job)
        self._kick.set()
        return job

    async def pause(self, lanes: list[Lane]) -> dict[str, Any]:
        return await self._set_paused(lanes, True)

    async def resume(self, lanes: list[Lane]) -> dict[str, Any]:
        return await self._set_paused(lanes, False)

    async def _set_paused(self, lanes: list[Lane], paused: bool) -> dict[str, Any]:
        await self.store.set_paused(lanes, paused)
        for lane in lanes:
            self._paused[lane] = paused
        self._publish_lanes()
        self._kick.set()
        return self.status()

    def set_concurrency(self, n: int) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 256:
            raise UserError(f"remote concurrency must be 1..256, got {n!r}")
        self.concurrency = n
        self._publish_lanes()
        self._kick.set()

    async def wait_done(self, job_id: str) -> Job:
        """Resolve when the job reaches a finished state."""
        job = await self.get(job_id)
        if job.finished:
            return job
        fut: asyncio.Future[Job] = asyncio.get_running_loop().create_future()
        self._done_waiters.setdefault(job.id, []).append(fut)
        return await fut

    async def record_violation(self, violation: Violation) -> Violation:
        violation.at = violation.at or self.clock.now()
        await self.store.add_violation(violation)
        self.bus.publish(events.VIOLATION, violation.to_dict())
        return violation

    def queued(self, lane: Lane | None = None) -> list[Job]:
        if lane is not None:
            return list(self._queued[lane])
        return [*self._queued[Lane.LOCAL], *self._queued[Lane.REMOTE]]

    def running(self) -> list[Job]:
        return [job for job, _ in self._running.values()]

    def status(self) -> dict[str, Any]:
        """The lane bar: what runs, what waits, what holds, whose turn it is."""
        out: dict[str, Any] = {}
        for lane in Lane:
            out[str(lane)] = {
                "running": self._running_in(lane),
                "queued": len(self._queued[lane]),
                "cap": 1 if lane is Lane.LOCAL else self.concurrency,
                "paused": self._paused[lane],
                "held": self._held[lane],
            }
        out["turn"] = str(self._turn.lane) if self._turn.lane else None
        out["cross_mix"] = self.cross_mix
        out["accepting"] = self._accepting
        out["orphans"] = [
            {"job_id": k, "pid": v[0], "lane": str(v[2])} for k, v in self._orphans.items()
        ]
        return out

    # ---- dispatch ----------------------------------------------------------------------

    def _running_in(self, lane: Lane) -> int:
        """Jobs running in a lane, counting process groups a dead owner left running."""
        mine = sum(1 for j, _ in self._running.values() if j.lane is lane)
        return mine + sum(1 for o in self._orphans.values() if o[2] is lane)

    def _policy_state(self, bump: Lane | None = None) -> PolicyState:
        """What the policy decides on; ``bump``: as if that lane had one more job queued."""
        local = remote = 0
        for job, _ in self._running.values():
            if job.lane is Lane.LOCAL:
                local += 1
            else:
                remote += 1
        for orphan in self._orphans.values():
            if orphan[2] is Lane.LOCAL:
                local += 1
            else:
                remote += 1
        queued, paused, held = self._queued, self._paused, self._held
        return PolicyState(
            local=LaneView(len(queued[Lane.LOCAL]) + (bump is Lane.LOCAL), local,
                           paused[Lane.LOCAL], held[Lane.LOCAL] is not None),
            remote=LaneView(len(queued[Lane.REMOTE]) + (bump is Lane.REMOTE), remote,
                            paused[Lane.REMOTE], held[Lane.REMOTE] is not None),
            concurrency=self.concurrency,
            cross_mix=self.cross_mix,
            turn=self._turn,
        )  # fmt: skip

    async def _dispatch_loop(self) -> None:
        while True:
            await self._kick.wait()
            self._kick.clear()
            self._dispatching = True
            try:
                await self._dispatch()
            except Exception:  # never let one bad job stop the lanes
                log.exception("dispatch failed")
            finally:
                self._dispatching = False

    async def _dispatch(self) -> None:
        while self._accepting:
            state = self._policy_state()
            decision = decide(state)
            if decision.start is None:
                self._set_turn(decision.turn)
                return
            lane = decision.start
            job = self._pick(lane)
            if lane is Lane.LOCAL and not job.force and self.gate is not None:
                reason = await self.gate(job)
                if not self._accepting:
                    return
                if reason is not None:
                    await self._hold(lane, job, reason)
                    continue
                await self._unhold(lane)
                if self._live(job.id) is not job or job.state is not JobState.QUEUED:
                    continue  # changed while the gates were read: decide again
            self._set_turn(decision.turn)
            self._launch(job)

    def _kick_if_startable(self) -> None:
        """Wake the dispatch loop if the policy would start a job now. Otherwise a round
        would only update the turn: done here, without waking the loop (a request queued
        behind a busy lane)."""
        if self._dispatching:  # suspended in a gate check: it decides again afterwards
            self._kick.set()
            return
        decision = decide(self._policy_state())
        if decision.start is not None:
            self._kick.set()
        else:
            self._set_turn(decision.turn)

    def _pick(self, lane: Lane) -> Job:
        queue = self._queued[lane]
        return self.picker(lane, queue) if self.picker else queue[0]

    def _set_turn(self, turn: Turn) -> None:
        if turn != self._turn:
            changed = turn.lane != self._turn.lane
            self._turn = turn
            if changed:
                self._publish_lanes()

    async def _hold(self, lane: Lane, job: Job, reason: str) -> None:
        first = self._held[lane] is None
        self._held[lane] = reason
        if job.held_reason != reason:
            job.held_reason = reason
            await self.store.save_job(job)
            self._publish_job(job)
        self._gate_backoff = GATE_BACKOFF_MIN if first else min(
            self._gate_backoff * 2, GATE_BACKOFF_MAX
        )
        self._gate_retry_at = self.clock.monotonic() + self._gate_backoff
        self._publish_lanes()

    async def _unhold(self, lane: Lane) -> None:
        if self._held[lane] is None:
            return
        self._held[lane] = None
        for job in self._queued[lane]:
            if job.held_reason:
                job.held_reason = None
                await self.store.save_job(job)
                self._publish_job(job)
        self._publish_lanes()

    def _starts_now(self, job: Job) -> Turn | None:
        """The turn that follows if the dispatch loop would start ``job`` at once were it
        queued, else None. Only when its lane has nothing else waiting (so it is the one
        picked) and the loop is idle (not suspended in a gate check of its own)."""
        lane = job.lane
        if not self._accepting or self._dispatching or self._queued[lane] or self._held[lane]:
            return None
        state = self._policy_state(bump=lane)
        decision = decide(state)
        return decision.turn if decision.start is lane else None

    async def _start_new(self, job: Job, runner: Runner | None, turn: Turn) -> Job:
        """Take the lane slot now (nothing awaits between the check and this), insert the
        job as ``running``, and run it once the row is committed; a gateway request's
        row waits (``Store.add_job_soon``)."""
        self._set_turn(turn)
        self._begin_attempt(job)
        # Holds the lane while the row is written; cancel() and stop() cancel it.
        slot: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if runner is not None:
            self._ephemeral[job.id] = runner
        if _defers(job, runner):
            self._add_soon(job)
            self._running[job.id] = (job, slot)
            await self._after_reserved(job, slot)
            return job
        self._running[job.id] = (job, slot)
        try:
            # Written in this step unless the write must wait for another process's lock;
            # only then does it get a task, shielded: the row lands whatever happens here.
            done, insert = run_eagerly(self._add(job))
            if not done:
                await asyncio.shield(insert)
        except asyncio.CancelledError:
            # The submitter went away: the row still lands, then the job ends cancelled.
            with contextlib.suppress(Exception):
                await insert
            self._end_reason.setdefault(job.id, (JobState.CANCELLED, "cancelled"))
            slot.cancel()
            await asyncio.shield(self._after_reserved(job, slot))
            raise
        except Exception:
            self._running.pop(job.id, None)  # not stored: nothing ran, the caller hears why
            self._ephemeral.pop(job.id, None)
            self._kick.set()
            raise
        await self._after_reserved(job, slot)
        return job

    async def _add(self, job: Job) -> None:
        """Store a new job. If its random id was taken the store gave it a new one: what
        is kept under the old id follows, and subscribers are told (the gateway waits
        for the job's end under its id)."""
        old = job.id
        try:
            await self.store.add_job(job)
        finally:
            if job.id != old:
                self._renamed(job, old)

    def _add_soon(self, job: Job) -> None:
        """Defer a gateway request's row (``Store.add_job_soon``), which may draw it a new
        id: what is kept under the old one follows."""
        old = job.id
        self.store.add_job_soon(job)
        if job.id != old:
            self._renamed(job, old)

    def _renamed(self, job: Job, old: str) -> None:
        """``job``'s id was taken when it was stored; it has a new one: what is kept
        under the old id follows, and subscribers are told."""
        for held in (self._running, self._ephemeral, self._end_reason, self._done_waiters):
            if old in held:
                held[job.id] = held.pop(old)  # type: ignore[index]
        self.bus.publish(events.RENAMED, {"old": old, "id": job.id})

    def _unstored(self, job: Job, exc: BaseException) -> None:
        """A gateway request's deferred insert failed: it must not run unrecorded. It
        ends failed (its client hears why); if it had started, it is stopped; if it was
        ending, its end is told as failed."""
        why = f"could not be stored: {exc}"
        if job.state.finished:  # lost with the commit that ends it: told failed, not as it ran
            job.state, job.error = JobState.FAILED, why
            self._end_reason.pop(job.id, None)
            return
        running = self._running.get(job.id)
        if running is not None:
            self._end_reason.setdefault(job.id, (JobState.FAILED, why))
            running[1].cancel()
            return
        if job.state is not JobState.QUEUED:
            return
        self._remove_queued(job)
        job.state, job.finished_at, job.error = JobState.FAILED, self.clock.now(), why
        self._finished(job)
        self._publish_lanes()

    async def _after_reserved(self, job: Job, slot: asyncio.Future[None]) -> None:
        """``job`` holds its lane slot and its ``running`` row is committed: run it, or,
        when cancel() or stop() took the slot while the row was written, record how it
        ended (it never started)."""
        if slot.cancelled() and self._running.get(job.id, (job, None))[1] is slot:
            await asyncio.shield(self._finish(job, self._cancelled_outcome(job)))
        elif job.id in self._running:
            run, name = self._run(job, stored=True), f"twolane-job-{job.id}"
            if self._eager:  # a job started by one that ended in its first step
                self._running[job.id] = (job, asyncio.create_task(run, name=name))
                return
            # Its first step (the upstream request, the spawn) runs now, ahead of what
            # else the loop has ready; a job that ends in it has left ``_running``.
            self._eager = True
            try:
                task = start_task(run, name)
            finally:
                self._eager = False
            if self._running.get(job.id, (None, None))[1] is slot:
                self._running[job.id] = (job, task)

    def _hand_off(self) -> Job | None:
        """While an ending job's row is being written: the job the policy starts next, if
        it needs no asynchronous gate check. It takes its lane slot now and its
        ``running`` row joins the end's transaction (one commit for both, and no trip
        through the dispatch loop). None leaves the next start to the dispatch loop."""
        if not self._accepting or self._dispatching:
            return None
        if not (self._queued[Lane.LOCAL] or self._queued[Lane.REMOTE]):
            return None  # nothing to start: no policy round
        decision = decide(self._policy_state())
        lane = decision.start
        if lane is None:
            return None
        job = self._pick(lane)
        gated = lane is Lane.LOCAL and not job.force and self.gate is not None
        if gated and (self.gate_now is None or not self.gate_now(job)):
            return None
        self._set_turn(decision.turn)
        self._remove_queued(job)
        self._begin_attempt(job)
        self._running[job.id] = (job, asyncio.get_running_loop().create_future())
        return job

    def _undo_hand_off(self, job: Job) -> None:
        """The transaction that was to start ``job`` failed: it is queued again."""
        self._running.pop(job.id, None)
        job.state = JobState.QUEUED
        job.attempts -= 1
        job.started_at = None
        self._insert(job)

    def _launch(self, job: Job) -> None:
        self._remove_queued(job)
        self._begin_attempt(job)
        task = asyncio.create_task(self._run(job), name=f"twolane-job-{job.id}")
        self._running[job.id] = (job, task)
        # Runs after the task's first step (its spawn), while the job runs.
        asyncio.get_running_loop().call_soon(self._prepare_logs, job.lane)

    def _prepare_logs(self, lane: Lane) -> None:
        """Have the logs of the shell jobs next in ``lane`` created ahead, in a worker
        thread: creating a file is the slowest step of a start on a busy disk (0.03 to
        1.3 ms of kernel time here), so no start waits for one. Refilled in batches: when fewer than half
        of the next ``LOGS_AHEAD`` have theirs."""
        if lane in self._preparing:
            return
        ahead = [j for j in self._queued[lane][:LOGS_AHEAD] if j.kind == "shell" and not j.attempts]
        want = [j.id for j in ahead if j.id not in self._prepared_logs]
        if not want or len(ahead) - len(want) >= LOGS_AHEAD // 2:
            return
        self._preparing[lane] = set(want)
        logs = self._logs_dir
        done = asyncio.get_running_loop().run_in_executor(None, _create_logs, logs, want)
        done.add_done_callback(lambda fut: self._logs_prepared(lane, fut))

    def _logs_prepared(self, lane: Lane, fut: asyncio.Future[list[str]]) -> None:
        batch = self._preparing.pop(lane, set())
        if fut.cancelled():
            return
        if fut.exception() is not None:  # each start creates its log, or says why it cannot
            log.debug("could not create logs ahead: %s", fut.exception())
            return
        for job_id in fut.result():
            job = self._live(job_id)
            if job is None or job.state is not JobState.QUEUED:
                continue  # started meanwhile (its log is in use), or dropped below
            if self._accepting:
                self._prepared_logs.add(job_id)
            else:
                batch.discard(job_id)
                _remove_empty(Path(f"{self._logs_dir}/{job_id}.log"))
        for job_id in batch & self._dropped_logs:  # cancelled while its log was being made
            _remove_empty(Path(f"{self._logs_dir}/{job_id}.log"))
        self._dropped_logs -= batch
        if self._accepting:
            self._prepare_logs(lane)

    def _drop_prepared_log(self, job: Job) -> None:
        """A job that never started leaves no empty log behind."""
        if job.id in self._prepared_logs:
            self._prepared_logs.discard(job.id)
            _remove_empty(Path(f"{self._logs_dir}/{job.id}.log"))
        elif job.id in self._preparing.get(job.lane, ()):
            self._dropped_logs.add(job.id)

    def _begin_attempt(self, job: Job) -> None:
        job.state = JobState.RUNNING
        job.attempts += 1
        job.started_at = self.clock.now()
        job.finished_at = None
        job.exit_code = None
        job.error = None
        job.held_reason = None
        job.pid = job.pid_start = None
        job.log_path = f"{self._logs_dir}/{job.id}.log"
        self._prepared_logs.discard(job.id)

    async def _run(self, job: Job, stored: bool = False) -> None:
        outcome: Outcome
        try:
            if stored:  # told after its first step (the spawn), behind the end before it
                asyncio.get_running_loop().call_soon(self._announce_start, job)
            else:  # `running` is on disk before anything starts
                await self.store.commit(self.store.starting(job))
                self._announce_start(job)
            runner = self._ephemeral.get(job.id) or self.runners[job.kind]
            ctx = RunContext(
                log_path=job.log_path or "",
                kill_grace=self.kill_grace,
                on_started=lambda pid, start: self._started(job, pid, start),
                on_progress=lambda facts: self._progress(job, facts),
            )
            outcome = await runner.run(job, ctx)
        except asyncio.CancelledError:
            outcome = self._cancelled_outcome(job)
        except Exception as exc:  # a runner bug fails the job, never the scheduler
            log.exception("runner failed for job %s", job.id)
            outcome = Outcome(JobState.FAILED, error=f"runner error: {exc}")
        self._finishing.add(job.id)
        try:
            await self._finish(job, outcome)
        finally:
            self._finishing.discard(job.id)

    def _cancelled_outcome(self, job: Job) -> Outcome:
        state, error = self._end_reason.pop(job.id, STOPPING)
        return Outcome(state, error=error)

    def _announce_start(self, job: Job) -> None:
        if job.state is JobState.RUNNING:
            self._publish_job(job)
            self._publish_lanes()

    async def _end_if_never_started(self, job: Job, task: asyncio.Future[None]) -> None:
        """After cancelling ``task``: a task cancelled before its first step never runs
        its body (nor its end), so record the end here, or the job would hold its lane
        for ever; a lane slot held during submit() is ended by submit() once its row is in."""
        if self._running.get(job.id, (job, None))[1] is not task or job.finished_at is not None:
            return
        if isinstance(task, asyncio.Task):
            await asyncio.shield(self._finish(job, self._cancelled_outcome(job)))
        else:
            await self.wait_done(job.id)

    async def _started(self, job: Job, pid: int, start: float | None) -> None:
        job.pid, job.pid_start = pid, start
        loop = asyncio.get_running_loop()
        self._pid_writes[job.id] = loop.call_later(PID_WRITE_DELAY, self._write_pid, job)

    def _write_pid(self, job: Job) -> None:
        self._pid_writes.pop(job.id, None)
        if job.state is JobState.RUNNING and job.pid:
            task = asyncio.ensure_future(self.store.commit(self.store.started(job)))
            task.add_done_callback(_log_failure)

    def _progress(self, job: Job, facts: dict[str, Any]) -> None:
        job.meta.update(facts)
        self._publish_job(job)

    async def _finish(self, job: Job, outcome: Outcome) -> None:
        job.finished_at = self.clock.now()
        job.state = outcome.state
        job.exit_code = outcome.exit_code
        job.error = outcome.error
        job.meta.update(outcome.meta)
        pid_write = self._pid_writes.pop(job.id, None)
        if pid_write is not None:
            pid_write.cancel()  # the end writes the pid too
        writes = [self.store.ending(job)]
        retry = outcome.state is JobState.FAILED and job.attempts <= job.retries
        requeue_interrupted = (
            outcome.state is JobState.INTERRUPTED and job.retry_on_interrupt
        )
        if retry:
            jobs.reset_for_retry(job, job.seq)  # its old place: the front of its level
        elif requeue_interrupted:
            await self._requeue_at_head(job)
        if retry or requeue_interrupted:
            writes.append(self.store.saving(job))
        requeue = retry and self._accepting
        if requeue:
            self._insert(job)
        # The next job may take this one's slot in the same commit; otherwise this job
        # holds its slot until its end is on disk.
        entry = self._running.pop(job.id, None)
        nxt = self._hand_off()
        if nxt is not None:
            slot = self._running[nxt.id][1]
            writes.append(self.store.starting(nxt))
        elif entry is not None:
            self._running[job.id] = entry
        try:
            await self.store.commit(*writes)
        except BaseException:
            if nxt is not None:
                self._undo_hand_off(nxt)
            raise
        finally:
            if entry is not None and self._running.get(job.id) is entry:
                del self._running[job.id]
        if nxt is not None and not slot.cancelled():
            await self._after_reserved(nxt, slot)
            # Told once the next job's process has started (its task's first step).
            loop = asyncio.get_running_loop()
            # A local job handed the lane on: nothing else can start beside it.
            kick = nxt.lane is not Lane.LOCAL or self.cross_mix
            loop.call_soon(self._announce_end, job, requeue, kick)
            loop.call_soon(self._prepare_logs, nxt.lane)
            return
        self._announce_end(job, requeue)
        if nxt is not None:
            await self._after_reserved(nxt, slot)  # records how it ended

    def _announce_end(self, job: Job, requeue: bool, kick: bool = True) -> None:
        if not requeue:
            self._finished(job)
        elif job.state is JobState.QUEUED:  # not already started again by a hand-off
            self._publish_job(job)
        self._publish_lanes()
        if not kick:
            return
        if self._queued[Lane.LOCAL] or self._queued[Lane.REMOTE]:
            self._kick.set()
        else:  # nothing waits: the turn is all a dispatch round would change
            self._set_turn(decide(self._policy_state()).turn)

    def _finished(self, job: Job) -> None:
        self._ephemeral.pop(job.id, None)
        self._publish_job(job)
        for fut in self._done_waiters.pop(job.id, []):
            if not fut.done():
                fut.set_result(job)

    # ---- housekeeping: direct writes, gate re-checks, orphans --------------------------

    async def _housekeeping_loop(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_INTERVAL)
            try:
                await self._housekeeping()
            except Exception:
                log.exception("housekeeping failed")

    async def _housekeeping(self) -> None:
        version = await self.store.data_version()
        if version != self._data_version:
            self._data_version = version
            await self._sync_from_store()
        if self._held[Lane.LOCAL] is not None and self.clock.monotonic() >= self._gate_retry_at:
            await self._recheck_gate()
        for job_id, (pid, start, _lane) in list(self._orphans.items()):
            if pid_matches(pid, start) and group_alive(pid):
                continue
            del self._orphans[job_id]
            job = await self.store.get_job(job_id)
            if job.state is JobState.QUEUED:  # retry-on-interrupt: its turn may come now
                job.held_reason = None
                await self.store.save_job(job)
                self._insert(job)
                self._publish_job(job)
            self._publish_lanes()
            self._kick.set()

    async def _recheck_gate(self) -> None:
        queue = self._queued[Lane.LOCAL]
        if not queue or self.gate is None:
            await self._unhold(Lane.LOCAL)
            self._kick.set()
            return
        job = self._pick(Lane.LOCAL)
        reason = None if job.force else await self.gate(job)
        if reason is None:
            await self._unhold(Lane.LOCAL)
            self._kick.set()
        else:
            await self._hold(Lane.LOCAL, job, reason)

    async def _sync_from_store(self) -> None:
        """Another process wrote to the database (the CLI with no owner running, at the
        moment this owner started): adopt its queued jobs and lane pauses."""
        in_db = {j.id: j for j in await self.store.list_jobs([JobState.QUEUED])}
        changed = False
        for lane in Lane:
            keep = []
            for job in self._queued[lane]:
                fresh = in_db.pop(job.id, None)
                if fresh is None:
                    changed = True  # finished or cancelled elsewhere
                    continue
                if fresh.priority != job.priority:
                    job.priority = fresh.priority
                    changed = True
                keep.append(job)
            self._queued[lane] = sorted(keep, key=Job.sort_key)
        for job in in_db.values():
            if job.id not in self._running and job.id not in self._orphans and job.kind in self.runners:
                self._insert(job)
                self._publish_job(job)
                changed = True
        paused = await self.store.paused_lanes()
        if paused != self._paused:
            self._paused = paused
            changed = True
        if changed:
            self._publish_lanes()
            self._kick.set()

    # ---- in-memory helpers -------------------------------------------------------------

    def _live(self, ref: str) -> Job | None:
        running = self._running.get(ref)
        if running:
            return running[0]
        for queue in self._queued.values():
            for job in queue:
                if job.id == ref:
                    return job
        return None

    def _insert(self, job: Job) -> None:
        queue = self._queued[job.lane]
        if any(j.id == job.id for j in queue):
            return
        bisect.insort(queue, job, key=Job.sort_key)

    def _remove_queued(self, job: Job) -> None:
        queue = self._queued[job.lane]
        for i, queued in enumerate(queue):
            if queued.id == job.id:
                del queue[i]
                return

    def _publish_job(self, job: Job) -> None:
        self.bus.publish(events.JOB, job.to_dict())

    def _publish_lanes(self) -> None:
        if self.bus.wanted(events.LANES):  # twice a job: skip building it for nobody
            self.bus.publish(events.LANES, self.status())
