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

