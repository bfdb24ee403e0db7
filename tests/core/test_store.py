"""The store's write path: writes on the loop thread, a lock held elsewhere never blocks
the loop, writes land in the order they were made, the WAL is checkpointed."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from console.core import jobs, paths
from console.core import store as store_mod
from console.core.models import JobState, Lane
from console.core.store import Store
from tests.helpers import LoopTicks, until

HOLD_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
db.execute("COMMIT")
"""


@pytest.fixture
async def store(home: Path):
    paths.ensure_home(home)
    st = await Store.open(paths.db_path(home))
    try:
        yield st
    finally:
        await st.close()


async def test_write_round_trip_keeps_every_field(store: Store):
    job = jobs.new_job(["echo", "hi"], lane="remote", name="n", priority=3, now=100.0)
    await store.add_job(job)
    job.state, job.attempts, job.started_at, job.pid, job.meta = (
        JobState.RUNNING, 1, 101.0, 4242, {"progress": 0.5}
    )
    await store.save_job(job)
    got = await store.get_job(job.id)
    assert got.to_dict() == job.to_dict()
    assert got.spec.argv == ["echo", "hi"] and got.lane is Lane.REMOTE


async def test_a_lock_held_by_another_process_never_blocks_the_loop(store: Store, home: Path):
    job = jobs.new_job(["true"], lane="local", now=1.0)
    await store.add_job(job)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(paths.db_path(home))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        # Three writes while the lock is held: they must wait, in order, off the loop.
        async with LoopTicks() as ticks:
            writes = []
            for priority in (1, 2, 3):
                job.priority = priority
                writes.append(asyncio.create_task(store.save_job(job)))
                await asyncio.sleep(0)  # each write captures its own fields
            await until(lambda: ticks.count >= 20, what="the loop ticking while the lock is held")
            assert not any(w.done() for w in writes)
            assert holder.stdin is not None
            holder.stdin.write("\n")
            holder.stdin.flush()
            await asyncio.gather(*writes)
        assert (await store.get_job(job.id)).priority == 3  # the last write won
        # Once the slow writes have landed, writes take the fast path again.
        job.priority = 9
        await store.save_job(job)
        assert store._slow_writes == 0
        assert (await store.get_job(job.id)).priority == 9
    finally:
        holder.kill()
        holder.wait()


async def test_other_processes_writes_change_data_version_ours_do_not(store: Store, home: Path):
    first = await store.data_version()
    job = jobs.new_job(["true"], lane="local", now=1.0)
    await store.add_job(job)
    await store.save_job(job)
    assert await store.data_version() == first
    other = sqlite3.connect(paths.db_path(home), isolation_level=None)
    other.execute("UPDATE lanes SET paused = 1 WHERE lane = 'local'")
    other.close()
    assert await store.data_version() != first


async def test_wal_is_checkpointed_by_the_store(store: Store, home: Path, monkeypatch):
    monkeypatch.setattr(store_mod, "CHECKPOINT_EVERY", 50)
    wal = Path(str(paths.db_path(home)) + "-wal")
    job = jobs.new_job(["true"], lane="local", now=1.0, name="x" * 100)
    await store.add_job(job)
    for i in range(400):
        job.meta = {"pad": "y" * 3000, "i": i}
        await store.save_job(job)
        await asyncio.sleep(0)  # as between a scheduler's writes
    await until(lambda: store._checkpointing is None, what="checkpoint done")
    # A passive checkpoint lets the next writes reuse the WAL from its start, so the
    # file stays near one checkpoint interval instead of 400 writes' worth of pages.
    for i in range(10):
        job.meta = {"i": i}
        await store.save_job(job)
    assert wal.stat().st_size < 400 * 4096, wal.stat().st_size
    assert await store.integrity_check() == "ok"


async def test_closing_waits_for_a_write_that_waits_for_a_lock(home: Path):
    paths.ensure_home(home)
    st = await Store.open(paths.db_path(home))
    job = jobs.new_job(["true"], lane="local", now=1.0)
    await st.add_job(job)
    other = sqlite3.connect(paths.db_path(home), isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    job.priority = 7
    write = asyncio.create_task(st.save_job(job))
    await until(lambda: st._slow_writes == 1, what="the write to wait")
    closing = asyncio.create_task(st.close())
    await asyncio.sleep(0.05)
    assert not closing.done()
    other.execute("COMMIT")
    other.close()
    await write
    await closing
    reopened = await Store.open(paths.db_path(home))
    try:
        assert (await reopened.get_job(job.id)).priority == 7
    finally:
        await reopened.close()



async def test_attempts_list_every_attempt_once_across_retries_and_cancels(store: Store):
    """The job's row holds its latest attempt; a row in `attempts` is written when it
    starts over. A cancel while queued is not an attempt and never overwrites one."""

    async def run(job, state: JobState, code: int) -> None:  # type: ignore[no-untyped-def]
        job.state, job.attempts = JobState.RUNNING, job.attempts + 1
        job.started_at, job.pid = 10.0 * job.attempts, 100 + job.attempts
        await store.commit(store.starting(job))
        job.state, job.finished_at, job.exit_code = state, job.started_at + 1, code
        await store.commit(store.ending(job))

    job = jobs.new_job(["true"])
    await store.add_job(job)
    assert await store.attempts(job.id) == []
    await run(job, JobState.FAILED, 1)
    jobs.reset_for_retry(job, job.seq)
    await store.save_job(job)  # starts over: attempt 1 gets its row
    jobs.mark_cancelled(job, 50.0)
    await store.save_job(job)  # cancelled while queued: no attempt
    jobs.reset_for_retry(job, job.seq)
    await store.save_job(job)
    job.state, job.attempts, job.started_at = JobState.RUNNING, 2, 60.0
    await store.commit(store.starting(job))
    assert [(a["n"], a["state"]) for a in await store.attempts(job.id)] == [(1, "failed"), (2, "running")]
    job.state, job.finished_at, job.exit_code, job.pid = JobState.SUCCEEDED, 61.0, 0, 7
    await store.commit(store.ending(job))
    attempts = await store.attempts(job.id)
    assert [(a["n"], a["state"], a["exit_code"], a["pid"]) for a in attempts] == [
        (1, "failed", 1, 101), (2, "succeeded", 0, 7)]  # fmt: skip


async def test_a_version_2_database_keeps_its_attempt_rows(home: Path):
    """v2 wrote a row at every end; after the v3 migration each attempt is still listed
    once, and the next retry records the last one without a duplicate."""
    from console.core import schema

    paths.ensure_home(home)
    db = sqlite3.connect(paths.db_path(home), isolation_level=None)
    for step in schema.MIGRATIONS[:2]:
        db.executescript(f"BEGIN; {step}; COMMIT;")
    db.execute("PRAGMA user_version=2")
    job = jobs.new_job(["true"])
    job.state, job.attempts, job.started_at, job.seq = JobState.RUNNING, 1, 1.0, 1
    db.execute(schema.ADD_SQL, (job.id, *schema.job_params(job)[2:]))
    job.state, job.finished_at, job.exit_code = JobState.FAILED, 2.0, 3
    db.execute(schema.SAVE_SQL, schema.save_params(job))  # the v2 trigger writes attempt 1
    assert db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0] == 1
    db.close()
    store = await Store.open(paths.db_path(home))
    try:
        assert await store.schema_version() == schema.SCHEMA_VERSION
        assert [(a["n"], a["state"]) for a in await store.attempts(job.id)] == [(1, "failed")]
        jobs.reset_for_retry(job, job.seq)
        await store.save_job(job)
        job.state, job.attempts, job.started_at = JobState.RUNNING, 2, 5.0
        await store.commit(store.starting(job))
        job.state, job.finished_at, job.exit_code = JobState.SUCCEEDED, 6.0, 0
        await store.commit(store.ending(job))
        assert [(a["n"], a["state"]) for a in await store.attempts(job.id)] == [(1, "failed"), (2, "succeeded")]
    finally:
        await store.close()
