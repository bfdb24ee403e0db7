"""A job submitted to an idle lane is inserted already ``running`` and started from
``submit`` (one write, no dispatch round): the durability rule, the gates and cancelling
must hold on that path too. In-process runners, no processes."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from console.core import jobs as jobmod
from console.core import paths
from console.core.models import Job, JobState, Lane
from console.core.runners.base import Outcome, RunContext
from console.owner import Owner
from tests.helpers import until


class Probe:
    """A runner that records the job's row as another process would see it at start, then
    waits until released."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.seen: list[tuple[str, int] | None] = []
        self.release = asyncio.Event()

    async def run(self, job: Job, ctx: RunContext) -> Outcome:
        with sqlite3.connect(self.db) as conn:
            row = conn.execute("SELECT state, attempts FROM jobs WHERE id = ?", (job.id,)).fetchone()
        self.seen.append(None if row is None else (row[0], row[1]))
        await self.release.wait()
        return Outcome(JobState.SUCCEEDED, exit_code=0)


def request_job(lane: Lane = Lane.REMOTE) -> Job:
    return jobmod.new_job([], lane=lane, kind="chat", name="chat m", extra={"model": "m"})


def probe_job(owner: Owner, probe: Probe, lane: Lane = Lane.REMOTE) -> Job:
    """A job of a kind the scheduler runs itself (as it does shell jobs), run by ``probe``."""
    owner.scheduler.runners["probe"] = probe
    return jobmod.new_job([], lane=lane, kind="probe", name="probe")


async def test_a_job_for_an_idle_lane_is_on_disk_running_before_it_starts(owner: Owner) -> None:
    probe = Probe(paths.db_path(owner.home))
    job = await owner.scheduler.submit(probe_job(owner, probe))
    await until(lambda: probe.seen, what="the runner to start")
    assert probe.seen == [("running", 1)]  # committed, by another connection's view
    probe.release.set()
    done = await owner.scheduler.wait_done(job.id)
    assert done.state is JobState.SUCCEEDED
    attempts = await owner.scheduler.attempts(job.id)
    assert [a["state"] for a in attempts] == ["succeeded"]


async def test_a_request_for_an_idle_lane_is_stored_once_whole_when_it_ends(
    owner: Owner, monkeypatch: Any
) -> None:  # fmt: skip
    from console.core import store as store_mod

    monkeypatch.setattr(store_mod, "SOON_DELAY", 60.0)  # only its end lands it
    probe = Probe(paths.db_path(owner.home))
    job = await owner.scheduler.submit(request_job(), runner=probe)
    await until(lambda: probe.seen, what="the runner to start")
    assert probe.seen == [None]  # no commit at its start: its client holds it
    probe.release.set()
    done = await owner.scheduler.wait_done(job.id)
    assert done.state is JobState.SUCCEEDED
    with sqlite3.connect(paths.db_path(owner.home)) as conn:  # on disk before its end was told
        row = conn.execute("SELECT state, attempts, started_at IS NOT NULL, finished_at IS NOT NULL "
                           "FROM jobs WHERE id = ?", (job.id,)).fetchone()  # fmt: skip
    assert row == ("succeeded", 1, 1, 1)
    attempts = await owner.scheduler.attempts(job.id)
    assert [a["state"] for a in attempts] == ["succeeded"]


async def test_an_idle_local_lane_still_asks_the_gate(owner: Owner) -> None:
    asked: list[str] = []

    async def gate(job: Job) -> str | None:
        asked.append(job.id)
        return "gate test: held"

    owner.scheduler.gate = gate
    probe = Probe(paths.db_path(owner.home))
    job = await owner.scheduler.submit(request_job(Lane.LOCAL), runner=probe)
    assert asked and asked[0] == job.id
    await until(lambda: owner.scheduler.status()["local"]["held"] is not None, what="the hold")
    assert (await owner.scheduler.get(job.id)).state is JobState.QUEUED
    assert probe.seen == []
    owner.scheduler.gate = None
    await owner.scheduler.cancel(job.id)


async def test_cancel_at_once_after_submit_ends_the_job_and_frees_the_lane(owner: Owner) -> None:
    # submit() returns with the run task created but not yet started: a task cancelled
    # before its first step never runs its body, so the scheduler must end it itself.
    probe = Probe(paths.db_path(owner.home))
    job = await owner.scheduler.submit(request_job(Lane.LOCAL), runner=probe)
    await owner.scheduler.cancel(job.id)
    ended = await asyncio.wait_for(owner.scheduler.wait_done(job.id), 20)  # hangs if lost
    assert ended.state is JobState.CANCELLED
    assert owner.scheduler.status()["local"]["running"] == 0
    stored = await owner.store.get_job(job.id)
    assert stored.state is JobState.CANCELLED
    follower = Probe(paths.db_path(owner.home))
    follower.release.set()
    nxt = await owner.scheduler.submit(request_job(Lane.LOCAL), runner=follower)
    assert (await owner.scheduler.wait_done(nxt.id)).state is JobState.SUCCEEDED


async def test_the_insert_of_an_idle_lanes_job_takes_no_turn_of_the_loop(owner: Owner) -> None:
    # The store's write lands in submit's own step (no task, no shield): nothing else runs
    # between the submit and the job holding its lane with its row on disk.
    turns: list[int] = []
    asyncio.get_running_loop().call_soon(turns.append, 1)
    probe = Probe(paths.db_path(owner.home))
    job = await owner.scheduler.submit(request_job(), runner=probe)
    assert turns == []
    assert (await owner.store.get_job(job.id)).state is JobState.RUNNING
    probe.release.set()
    assert (await owner.scheduler.wait_done(job.id)).state is JobState.SUCCEEDED


async def test_a_submitter_that_goes_away_mid_insert_leaves_a_cancelled_job(owner: Owner) -> None:
    # Another connection holds the write lock: the insert waits for it in a worker thread.
    other = sqlite3.connect(paths.db_path(owner.home), isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    probe = Probe(paths.db_path(owner.home))
    job = probe_job(owner, probe, Lane.LOCAL)
    submit = asyncio.create_task(owner.scheduler.submit(job))
    try:
        await until(lambda: owner.store._slow_writes > 0, what="the insert to wait for the lock")
        submit.cancel()
        await asyncio.sleep(0.05)
        assert not submit.done()  # it waits for its row: the row lands whatever happens
    finally:
        other.execute("COMMIT")
        other.close()
    await asyncio.gather(submit, return_exceptions=True)
    assert submit.cancelled()
    ended = await asyncio.wait_for(owner.scheduler.wait_done(job.id), 20)
    assert ended.state is JobState.CANCELLED
    assert probe.seen == []  # it never ran
    assert (await owner.store.get_job(job.id)).state is JobState.CANCELLED
    assert owner.scheduler.status()["local"]["running"] == 0


async def test_a_busy_lane_queues_and_the_order_holds(owner: Owner) -> None:
    first = Probe(paths.db_path(owner.home))
    await owner.scheduler.submit(request_job(Lane.LOCAL), runner=first)
    await until(lambda: first.seen, what="the first to start")
    later = [Probe(paths.db_path(owner.home)) for _ in range(3)]
    started: list[Any] = []
    submitted = []
    for p in later:
        p.release.set()
        job = await owner.scheduler.submit(request_job(Lane.LOCAL), runner=p)
        submitted.append(job.id)
        assert (await owner.scheduler.get(job.id)).state is JobState.QUEUED
    first.release.set()
    for job_id in submitted:
        started.append(await owner.scheduler.wait_done(job_id))
    assert [j.started_at for j in started] == sorted(j.started_at for j in started)


async def test_a_job_queued_behind_a_busy_lane_wakes_no_dispatch_round(owner: Owner) -> None:
    # The policy would start nothing: submit updates the turn itself. A job the policy
    # would start (the other lane, cross-mix on) still gets its round.
    sched = owner.scheduler
    rounds = 0
    dispatch = sched._dispatch

    async def counted() -> None:
        nonlocal rounds
        rounds += 1
        await dispatch()

    sched._dispatch = counted  # type: ignore[method-assign]
    first = Probe(paths.db_path(owner.home))
    await sched.submit(request_job(Lane.LOCAL), runner=first)
    await until(lambda: first.seen, what="the first to start")
    await asyncio.sleep(0.05)
    before = rounds
    later = []
    for _ in range(3):
        probe = Probe(paths.db_path(owner.home))
        probe.release.set()
        later.append(await sched.submit(request_job(Lane.LOCAL), runner=probe))
    remote = Probe(paths.db_path(owner.home))
    remote.release.set()
    blocked = await sched.submit(request_job(Lane.REMOTE), runner=remote)  # no cross-mix
    await asyncio.sleep(0.05)
    assert rounds == before
    assert all(j.state is JobState.QUEUED for j in [*later, blocked])
    sched.cross_mix = True
    other = Probe(paths.db_path(owner.home))
    other.release.set()
    mixed = await sched.submit(request_job(Lane.REMOTE), runner=other)  # queued: one waits
    await until(lambda: other.seen, what="the remote job to start beside the local one")
    assert rounds > before
    first.release.set()
    for job in [*later, blocked, mixed]:
        assert (await sched.wait_done(job.id)).state is JobState.SUCCEEDED


class Held:
    """A runner that waits until released, then leaves a callback ready on the loop as
    it returns."""

    def __init__(self, order: list[str]) -> None:
        self.order = order
        self.release = asyncio.Event()

    async def run(self, job: Job, ctx: RunContext) -> Outcome:
        await self.release.wait()
        asyncio.get_running_loop().call_soon(self.order.append, "what the loop had ready")
        return Outcome(JobState.SUCCEEDED, exit_code=0)


class Instant:
    """A runner that ends in its first step, never waiting."""

    def __init__(self, order: list[str], name: str) -> None:
        self.order, self.name = order, name

    async def run(self, job: Job, ctx: RunContext) -> Outcome:
        self.order.append(self.name)
        return Outcome(JobState.SUCCEEDED, exit_code=0)


async def test_a_job_handed_the_lane_starts_ahead_of_what_else_the_loop_has_ready(owner: Owner) -> None:
    # The next request goes upstream in the step that ended the one before, not after
    # the replies, new requests and events queued meanwhile.
    order: list[str] = []
    first = Held(order)
    await owner.scheduler.submit(request_job(Lane.LOCAL), runner=first)
    nxt = await owner.scheduler.submit(request_job(Lane.LOCAL), runner=Instant(order, "next job"))
    assert nxt.state is JobState.QUEUED
    first.release.set()
    assert (await owner.scheduler.wait_done(nxt.id)).state is JobState.SUCCEEDED
    await asyncio.sleep(0)
    assert order == ["next job", "what the loop had ready"]


async def test_jobs_that_end_in_their_first_step_hand_the_lane_on_without_nesting(owner: Owner) -> None:
    # Each one ends while it is being started: started eagerly in turn, 2,000 would nest
    # 2,000 deep.
    order: list[str] = []
    first = Held(order)
    await owner.scheduler.submit(request_job(Lane.LOCAL), runner=first)
    queued = [
        await owner.scheduler.submit(request_job(Lane.LOCAL), runner=Instant(order, str(i)))
        for i in range(2000)
    ]
    first.release.set()
    waits = [owner.scheduler.wait_done(job.id) for job in queued]
    ended = await asyncio.wait_for(asyncio.gather(*waits), 120)  # a lost hand-off hangs
    assert {job.state for job in ended} == {JobState.SUCCEEDED}
    assert [o for o in order if o.isdigit()] == [str(i) for i in range(2000)]
    assert owner.scheduler.status()["local"]["running"] == 0


# ---- a request that waits in a busy lane: its insert waits too (Store.add_job_soon) ----


def stored(owner: Owner) -> set[str]:
    with sqlite3.connect(paths.db_path(owner.home)) as conn:
        return {r[0] for r in conn.execute("SELECT id FROM jobs")}


async def test_waiting_requests_are_stored_each_once_whole_as_they_end(
    owner: Owner, monkeypatch: Any
) -> None:  # fmt: skip
    from console.core import store as store_mod

    monkeypatch.setattr(store_mod, "SOON_DELAY", 60.0)  # only their ends land them
    first = Probe(paths.db_path(owner.home))
    head = await owner.scheduler.submit(request_job(Lane.LOCAL), runner=first)
    await until(lambda: first.seen, what="the first to start")
    probes = [Probe(paths.db_path(owner.home)) for _ in range(3)]
    waiting = [await owner.scheduler.submit(request_job(Lane.LOCAL), runner=p) for p in probes]
    assert not {head.id, *(j.id for j in waiting)} & stored(owner)  # no commit of their own
    assert [j.seq for j in waiting] == sorted(j.seq for j in waiting)
    first.release.set()
    await until(lambda: probes[0].seen, what="the next to start")
    assert stored(owner) == {head.id}  # the end that handed the lane on stored the first
    assert probes[0].seen == [None]
    for i, (probe, job) in enumerate(zip(probes, waiting, strict=True)):
        probe.release.set()
        assert (await owner.scheduler.wait_done(job.id)).state is JobState.SUCCEEDED
        assert stored(owner) == {head.id, *(j.id for j in waiting[: i + 1])}
    rows = await owner.store.list_jobs()
    assert sorted(j.seq for j in rows) == [head.seq, *(j.seq for j in waiting)]
    assert {(str(j.state), j.attempts) for j in rows} == {("succeeded", 1)}


async def test_a_waiting_request_that_cannot_be_stored_ends_failed_and_the_lane_goes_on(
    owner: Owner,
) -> None:
    sched = owner.scheduler
    first = Probe(paths.db_path(owner.home))
    await sched.submit(request_job(Lane.LOCAL), runner=first)
    await until(lambda: first.seen, what="the first to start")
    owner.store._w.execute("ALTER TABLE jobs RENAME TO jobs_away")  # no table to insert into
    try:
        probe = Probe(paths.db_path(owner.home))
        job = await sched.submit(request_job(Lane.LOCAL), runner=probe)
        ended = await asyncio.wait_for(sched.wait_done(job.id), 20)
    finally:
        owner.store._w.execute("ALTER TABLE jobs_away RENAME TO jobs")
    assert ended.state is JobState.FAILED and "could not be stored" in (ended.error or "")
    assert not sched.queued(Lane.LOCAL) and not probe.seen  # it never runs unrecorded
    first.release.set()
    nxt = Probe(paths.db_path(owner.home))
    nxt.release.set()
    later = await sched.submit(request_job(Lane.LOCAL), runner=nxt)
    assert (await sched.wait_done(later.id)).state is JobState.SUCCEEDED


async def test_a_waiting_request_survives_the_owner_adopting_another_process_writes(
    owner: Owner, monkeypatch: Any
) -> None:  # fmt: skip
    """The owner re-reads the queue when another process wrote; a request whose insert
    had not landed must not look finished elsewhere and be dropped."""
    from console.core import schema
    from console.core import store as store_mod

    monkeypatch.setattr(store_mod, "SOON_DELAY", 60.0)
    sched = owner.scheduler
    first = Probe(paths.db_path(owner.home))
    await sched.submit(request_job(Lane.LOCAL), runner=first)
    await until(lambda: first.seen, what="the first to start")
    probe = Probe(paths.db_path(owner.home))
    probe.release.set()
    job = await sched.submit(request_job(Lane.LOCAL), runner=probe)
    assert job.id not in stored(owner)
    assert schema.add_job_now(paths.db_path(owner.home), jobmod.new_job(["true"], lane="remote"))
    await sched._housekeeping()
    assert [j.id for j in sched.queued(Lane.LOCAL)] == [job.id]
    first.release.set()
    assert (await sched.wait_done(job.id)).state is JobState.SUCCEEDED


class FailOnce:
    """Fails its first run, succeeds the next."""

    def __init__(self) -> None:
        self.runs = 0

    async def run(self, job: Job, ctx: RunContext) -> Outcome:
        self.runs += 1
        await asyncio.sleep(0)
        if self.runs == 1:
            return Outcome(JobState.FAILED, error="first fails")
        return Outcome(JobState.SUCCEEDED, exit_code=0)


async def test_a_request_that_may_start_over_keeps_every_attempt(owner: Owner, monkeypatch: Any) -> None:
    # A retry writes its ended attempt's row before it begins again, so such a request's
    # row does not wait: both attempts are listed, each as it ended.
    from console.core import store as store_mod

    monkeypatch.setattr(store_mod, "SOON_DELAY", 60.0)
    runner = FailOnce()
    job = jobmod.new_job([], lane=Lane.REMOTE, kind="chat", name="chat m", extra={"model": "m"}, retries=1)
    job = await owner.scheduler.submit(job, runner=runner)
    assert job.id not in owner.store._soon  # inserted at submit, not deferred
    done = await asyncio.wait_for(owner.scheduler.wait_done(job.id), 20)
    assert done.state is JobState.SUCCEEDED and runner.runs == 2
    attempts = await owner.scheduler.attempts(job.id)
    assert [(a["n"], a["state"], a["error"]) for a in attempts] == [(1, "failed", "first fails"), (2, "succeeded", None)]


async def test_an_ended_request_is_found_while_its_row_waits_for_the_lock(owner: Owner, monkeypatch: Any) -> None:
    # The request ends and hands the lane on while another process holds the write lock:
    # it is no longer running nor deferred, and its row is not on disk yet. Asking for it
    # waits for the row instead of answering "no job".
    from console.core import store as store_mod

    monkeypatch.setattr(store_mod, "SOON_DELAY", 60.0)
    scheduler = owner.scheduler
    probe = Probe(paths.db_path(owner.home))
    request = await scheduler.submit(request_job(Lane.LOCAL), runner=probe)
    await until(lambda: probe.seen, what="the request to start")
    after = Probe(paths.db_path(owner.home))
    queued = await scheduler.submit(probe_job(owner, after, Lane.LOCAL))
    other = sqlite3.connect(paths.db_path(owner.home), isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    try:
        probe.release.set()
        await until(lambda: owner.store._slow_writes >= 1, what="the end waiting for the lock")
        assert request.id not in {j.id for j in scheduler.running()}
        got = asyncio.create_task(scheduler.get(request.id))
        await until(lambda: owner.store._carried, what="the read waiting")
        assert not got.done()
    finally:
        other.execute("COMMIT")
        other.close()
    assert (await got).state is JobState.SUCCEEDED
    after.release.set()
    await asyncio.wait_for(scheduler.wait_done(queued.id), 20)


async def test_a_request_whose_row_is_lost_with_its_end_is_told_failed(owner: Owner, monkeypatch: Any) -> None:
    from console.core import store as store_mod

    monkeypatch.setattr(store_mod, "SOON_DELAY", 60.0)
    scheduler = owner.scheduler
    probe = Probe(paths.db_path(owner.home))
    job = await scheduler.submit(request_job(), runner=probe)
    await until(lambda: probe.seen, what="the request to start")
    real = store_mod.job_params

    def refusing(j: Job) -> tuple[Any, ...]:
        if j is job:
            raise sqlite3.IntegrityError("CHECK constraint failed: lane")
        return real(j)

    monkeypatch.setattr(store_mod, "job_params", refusing)
    told: list[str] = []
    owner.bus.listen({"job"}, lambda ev: told.append(ev.data["state"]), where=lambda ev: ev.data["id"] == job.id)
    probe.release.set()
    ended = await asyncio.wait_for(scheduler.wait_done(job.id), 20)
    assert ended.state is JobState.FAILED
    assert told[-1] == "failed" and "succeeded" not in told
    assert "could not be stored" in (ended.error or "")
    with sqlite3.connect(paths.db_path(owner.home)) as conn:
        assert conn.execute("SELECT 1 FROM jobs WHERE id = ?", (job.id,)).fetchone() is None
    assert job.id not in scheduler._end_reason
