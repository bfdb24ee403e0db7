"""The store's write path: writes on the loop thread, a lock held elsewhere never blocks
the loop, writes land in the order they were made, the WAL is checkpointed."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from console.core import jobs, paths, schema
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


@contextlib.contextmanager
def lock_held_elsewhere(home: Path) -> Iterator[Callable[[], None]]:
    """Another process holds the database's write lock until the function it yields is
    called (or the block ends)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(paths.db_path(home))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"

        def release() -> None:
            assert holder.stdin is not None
            holder.stdin.write("\n")
            holder.stdin.flush()

        yield release
    finally:
        holder.kill()
        holder.wait()


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
    with lock_held_elsewhere(home) as release:
        # Three writes while the lock is held: they must wait, in order, off the loop.
        async with LoopTicks() as ticks:
            writes = []
            for priority in (1, 2, 3):
                job.priority = priority
                writes.append(asyncio.create_task(store.save_job(job)))
                await asyncio.sleep(0)  # each write captures its own fields
            await until(lambda: ticks.count >= 20, what="the loop ticking while the lock is held")
            assert not any(w.done() for w in writes)
            release()
            await asyncio.gather(*writes)
        assert (await store.get_job(job.id)).priority == 3  # the last write won
        # Once the slow writes have landed, writes take the fast path again.
        job.priority = 9
        await store.save_job(job)
        assert store._slow_writes == 0
        assert (await store.get_job(job.id)).priority == 9


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


class BlockedCheckpoints:
    """Holds the store's next ``n`` checkpoints in their worker thread, each until its
    own release."""

    def __init__(self, store: Store, n: int) -> None:
        self.entered = [threading.Event() for _ in range(n)]
        self.release = [threading.Event() for _ in range(n)]
        self.calls = 0
        real = store._checkpoint_now

        def blocked() -> tuple[int, int, int]:
            i, self.calls = self.calls, self.calls + 1
            if i < n:
                self.entered[i].set()
                self.release[i].wait(30)
            return real()

        store._checkpoint_now = blocked  # type: ignore[method-assign]


def wal_frames(home: Path) -> int:
    """Frames in the WAL now, read from another connection."""
    db = sqlite3.connect(paths.db_path(home), isolation_level=None)
    try:
        return db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
    finally:
        db.close()


async def checkpoint_started(store: Store, monkeypatch, blocked: int):  # type: ignore[no-untyped-def]
    """A job and the writes that start a checkpoint (every 5 writes), its first
    ``blocked`` copies held in their thread; waits until the first copy runs."""
    monkeypatch.setattr(store_mod, "CHECKPOINT_EVERY", 5)
    held = BlockedCheckpoints(store, blocked)
    job = jobs.new_job(["true"], lane="local", now=1.0)
    await store.add_job(job)
    for i in range(4):
        job.priority = i
        await store.save_job(job)
    if blocked:
        await until(held.entered[0].is_set, what="the checkpoint copying")
    return job, held


async def catch_up_started(store: Store, job, held: BlockedCheckpoints) -> None:  # type: ignore[no-untyped-def]
    """A write while the first copy runs, then that copy let go: the catch-up copy runs."""
    await store.save_job(job)
    held.release[0].set()
    await until(held.entered[1].is_set, what="the catch-up copy")


async def write_now(store: Store, job) -> bool:  # type: ignore[no-untyped-def]
    """Whether a write lands at once (in its first step), not held behind anything."""
    write = asyncio.create_task(store.save_job(job))
    await asyncio.sleep(0)
    done = write.done()
    await write
    return done


async def test_writes_go_on_while_the_wal_is_copied_and_wait_only_for_the_rest(
    store: Store, home: Path, monkeypatch
):  # fmt: skip
    """The checkpoint copies the WAL on a connection of its own while the loop's writes
    go on (holding them for the whole copy was the gateway's p99 from 4 clients up);
    only the copy of what they committed meanwhile holds writes, so the WAL starts over."""
    job, blocked = await checkpoint_started(store, monkeypatch, 2)
    for i in range(20):
        job.priority = 10 + i
        assert await write_now(store, job), f"write {i} waited for the checkpoint"
    assert store._slow_writes == 0
    blocked.release[0].set()
    await until(blocked.entered[1].is_set, what="the copy of the writes made meanwhile")
    job.priority = 99
    held = asyncio.create_task(store.save_job(job))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not held.done() and store._held is not None and len(store._held) == 1
    blocked.release[1].set()
    await held
    await until(lambda: store._checkpointing is None, what="checkpoint done")
    assert wal_frames(home) < 5  # the held write started the WAL over
    assert store._slow_writes == 0
    assert await write_now(store, job)  # and writes take the fast path again
    assert (await store.get_job(job.id)).priority == 99
    assert await store.integrity_check() == "ok"


async def test_writes_held_behind_the_catch_up_land_in_order_and_fail_alone(
    store: Store, monkeypatch
):  # fmt: skip
    """The writes made during the catch-up copy land together once it is done, in the
    order they were made; one that fails fails alone."""
    job, blocked = await checkpoint_started(store, monkeypatch, 2)
    await catch_up_started(store, job, blocked)
    other = jobs.new_job(["true"], lane="remote", now=2.0)
    made = []
    for priority in (40, 41):
        job.priority = priority
        made.append(asyncio.create_task(store.save_job(job)))
        await asyncio.sleep(0)
    made.append(asyncio.create_task(store.commit(
        ("UPDATE jobs SET priority = 7 WHERE id = ?", (job.id,)),
        ("INSERT INTO no_such_table VALUES (1)", ()))))  # fmt: skip
    made.append(asyncio.create_task(store.add_job(other)))
    await asyncio.sleep(0)
    assert not any(m.done() for m in made)
    blocked.release[1].set()
    results = await asyncio.gather(*made, return_exceptions=True)
    assert isinstance(results[2], sqlite3.OperationalError)
    assert not any(isinstance(r, BaseException) for r in results[:2] + results[3:])
    assert (await store.get_job(job.id)).priority == 41  # the later write won, the bad one undone
    assert (await store.get_job(other.id)).seq > job.seq  # its insert landed, numbered
    assert await store.integrity_check() == "ok"


async def test_held_writes_wait_in_order_for_a_lock_another_process_took(
    store: Store, home: Path, monkeypatch
):  # fmt: skip
    """If another process holds the write lock when the catch-up copy ends, the held
    writes wait for it off the loop, in order, and writes made after them queue behind."""
    job, blocked = await checkpoint_started(store, monkeypatch, 2)
    await catch_up_started(store, job, blocked)
    job.priority = 50
    first = asyncio.create_task(store.save_job(job))
    await asyncio.sleep(0)
    with lock_held_elsewhere(home) as release:
        async with LoopTicks() as ticks:
            blocked.release[1].set()
            await until(lambda: store._held is None and store._slow_writes >= 1,
                        what="the held writes waiting for the lock")  # fmt: skip
            job.priority = 51
            second = asyncio.create_task(store.save_job(job))
            await until(lambda: ticks.count >= 20, what="the loop ticking while the lock is held")
            assert not first.done() and not second.done()
            release()
            await asyncio.gather(first, second)
        assert (await store.get_job(job.id)).priority == 51
        assert store._slow_writes == 0


async def test_a_checkpoint_with_no_writes_meanwhile_holds_none(store: Store, home: Path, monkeypatch):
    job, blocked = await checkpoint_started(store, monkeypatch, 0)
    await until(lambda: store._checkpointing is None, what="checkpoint done")
    assert blocked.calls == 1
    assert await write_now(store, job)
    assert wal_frames(home) < 5


def wal_restarts(home: Path) -> int:
    """How many times the WAL has started over: its header's checkpoint sequence number."""
    with open(str(paths.db_path(home)) + "-wal", "rb") as f:
        return int.from_bytes(f.read(16)[12:16], "big")


async def test_the_wal_starts_over_after_each_checkpoint_under_writes_that_never_pause(
    home: Path, monkeypatch
):  # fmt: skip
    """Writes one after the other, a checkpoint every 50: each checkpoint lets the WAL
    start over, so its file is overwritten in place instead of growing."""
    monkeypatch.setattr(store_mod, "CHECKPOINT_EVERY", 50)
    paths.ensure_home(home)
    store = await Store.open(paths.db_path(home))
    try:
        job = jobs.new_job(["true"], lane="local", now=1.0, name="x" * 100)
        await store.add_job(job)
        first = wal_restarts(home)
        checkpoints = 0
        for i in range(400):
            job.meta = {"pad": "y" * 3000, "i": i}
            await store.save_job(job)
            checkpoints += store._since_checkpoint == 0  # this write started one
            await asyncio.sleep(0)  # as between a scheduler's writes
        await until(lambda: store._checkpointing is None, what="checkpoint done")
        await store.save_job(job)
        assert checkpoints >= 4
        assert wal_restarts(home) - first >= checkpoints  # each one let it start over
        assert (await store.get_job(job.id)).meta["i"] == 399
        assert await store.integrity_check() == "ok"
    finally:
        await store.close()


async def test_at_a_steady_pace_the_wal_file_is_overwritten_never_cut_back(home: Path):
    """Jobs added, started and ended back to back at the shipped checkpoint pace: the WAL
    starts over after each checkpoint and its file keeps its size. Cutting it back (an
    ftruncate on the loop thread) held the loop 3-4 ms at every checkpoint."""
    paths.ensure_home(home)
    store = await Store.open(paths.db_path(home))
    try:
        wal = Path(str(paths.db_path(home)) + "-wal")
        first = wal_restarts(home)
        prev = jobs.new_job([], lane="local", kind="chat", now=1.0, meta={"model": "m"})
        await store.add_job(prev)
        sizes = []
        for i in range(3 * store_mod.CHECKPOINT_EVERY // 2):  # a gateway request's writes
            job = jobs.new_job([], lane="local", kind="chat", now=2.0 + i, meta={"model": "m"})
            await store.add_job(job)
            prev.state, prev.finished_at = JobState.SUCCEEDED, 2.5 + i
            job.state, job.attempts, job.started_at = JobState.RUNNING, 1, 2.5 + i
            await store.commit(store.ending(prev), store.starting(job))
            sizes.append(wal.stat().st_size)
            prev = job
            await asyncio.sleep(0)
        await until(lambda: store._checkpointing is None, what="checkpoint done")
        assert wal_restarts(home) - first >= 2  # it did start over
        assert sizes == sorted(sizes)  # and was never cut back
        assert await store.integrity_check() == "ok"
    finally:
        await store.close()


async def test_the_wal_file_is_cut_back_when_it_starts_over(home: Path, monkeypatch):
    """A reader that keeps the WAL from starting over lets it grow; once it is gone the
    WAL starts over and its file is cut back to WAL_SIZE_LIMIT."""
    monkeypatch.setattr(store_mod, "CHECKPOINT_EVERY", 10**9)
    monkeypatch.setattr(store_mod, "WAL_SIZE_LIMIT", 64 << 10)
    paths.ensure_home(home)
    store = await Store.open(paths.db_path(home))
    try:
        wal = Path(str(paths.db_path(home)) + "-wal")
        job = jobs.new_job(["true"], lane="local", now=1.0)
        await store.add_job(job)
        for i in range(100):
            job.meta = {"pad": "y" * 3000, "i": i}
            await store.save_job(job)
        assert wal.stat().st_size > 64 << 10
        store._start_checkpoint()
        await until(lambda: store._checkpointing is None, what="checkpoint done")
        await store.save_job(job)
        assert wal.stat().st_size <= 64 << 10
        assert await store.integrity_check() == "ok"
    finally:
        await store.close()


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
    paths.ensure_home(home)
    db = sqlite3.connect(paths.db_path(home), isolation_level=None)
    for step in schema.MIGRATIONS[:2]:
        db.executescript(f"BEGIN; {step}; COMMIT;")
    db.execute("PRAGMA user_version=2")
    job = jobs.new_job(["true"])
    job.state, job.attempts, job.started_at, job.seq = JobState.RUNNING, 1, 1.0, 1
    db.execute(schema.ADD_SQL, (job.id, 1, *schema.job_params(job)[2:]))
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


async def test_a_new_job_whose_id_is_taken_is_stored_under_a_new_one(store: Store, home: Path):
    """Ids are 6 random characters; one that is taken gets a new one (its log path
    follows) instead of failing the insert, through the owner and through `twolane add`
    with no owner alike."""
    from console.core import schema

    first = jobs.new_job(["true"], now=1.0)
    await store.add_job(first)
    twin = jobs.new_job(["echo", "twin"], now=2.0)
    twin.id, twin.log_path = first.id, f"/logs/{first.id}.log"
    await store.add_job(twin)
    assert twin.id != first.id and twin.log_path == f"/logs/{twin.id}.log"
    assert (await store.get_job(twin.id)).spec.argv == ["echo", "twin"]
    assert (await store.get_job(first.id)).spec.argv == ["true"]
    direct = jobs.new_job(["echo", "direct"], now=3.0)
    direct.id = first.id
    assert schema.add_job_now(paths.db_path(home), direct) is direct
    assert direct.id not in (first.id, twin.id)
    assert (await store.get_job(direct.id)).spec.argv == ["echo", "direct"]
    assert direct.seq > twin.seq > first.seq


async def test_a_write_whose_caller_is_cancelled_keeps_the_writer_until_it_lands(store: Store, home: Path):
    """A write waiting for another process's lock runs in a worker thread on the writer
    connection. Its caller cancelled, it still lands, and no later write starts on that
    connection before it has (two threads on one connection)."""
    job = jobs.new_job(["true"], lane="local", now=1.0)
    await store.add_job(job)
    with lock_held_elsewhere(home) as release:
        job.priority = 1
        first = asyncio.create_task(store.save_job(job))
        await until(lambda: store._slow_writes == 1, what="the write waiting for the lock")
        await asyncio.sleep(0.05)  # in the worker thread, waiting on the connection
        first.cancel()
        for _ in range(5):
            await asyncio.sleep(0)
        assert not first.done() and store._slow_writes == 1  # the thread still has the writer
        job.priority = 2
        second = asyncio.create_task(store.save_job(job))
        await asyncio.sleep(0)
        assert not second.done()
        release()
        with pytest.raises(asyncio.CancelledError):
            await first
        await second
        assert (await store.get_job(job.id)).priority == 2  # landed in the order made
        assert store._slow_writes == 0
        assert await store.integrity_check() == "ok"


# ---- deferred inserts: a gateway request waiting in a busy lane ------------------------


def stored_ids(home: Path) -> set[str]:
    """The job ids another connection sees committed."""
    db = sqlite3.connect(paths.db_path(home), isolation_level=None)
    try:
        return {r[0] for r in db.execute("SELECT id FROM jobs")}
    finally:
        db.close()


def request(now: float = 1.0):  # type: ignore[no-untyped-def]
    return jobs.in_process_job(Lane.LOCAL, "chat", "chat m", 0, {"model": "m"}, {"client": "x"}, now)


def kinds_of(statements: list[str]) -> list[str]:
    return [s.split()[0] for s in statements if not s.startswith("--")]  # not trigger bodies


async def test_a_requests_row_lands_whole_with_the_commit_that_ends_it(store: Store, home: Path):
    running = request()
    await store.add_job(running)
    waiting = store.add_job_soon(request(2.0))
    assert waiting.seq == running.seq + 1  # its place is known before it is stored
    assert waiting.id not in stored_ids(home)
    statements: list[str] = []
    store._w.set_trace_callback(statements.append)
    running.state, running.finished_at = JobState.SUCCEEDED, 3.0
    waiting.state, waiting.attempts, waiting.started_at = JobState.RUNNING, 1, 3.0
    await store.commit(store.ending(running), store.starting(waiting))  # the hand-off
    waiting.pid, waiting.pid_start = 4321, 3.5
    await store.commit(store.started(waiting))
    assert statements and not any(waiting.id in s for s in statements)  # they wait with its insert
    assert waiting.id not in stored_ids(home)
    statements.clear()
    waiting.state, waiting.finished_at, waiting.meta["duration_ms"] = JobState.SUCCEEDED, 4.0, 12
    await store.commit(store.ending(waiting))
    store._w.set_trace_callback(None)
    # Its end is in the insert: one statement for the request's whole row.
    assert [k for k in kinds_of(statements) if k not in ("BEGIN", "COMMIT")] == ["INSERT"]
    got = await store.get_job(waiting.id)
    assert (got.state, got.seq, got.attempts, got.started_at, got.finished_at) == (
        JobState.SUCCEEDED, waiting.seq, 1, 3.0, 4.0)  # fmt: skip
    assert (got.pid, got.meta["duration_ms"]) == (4321, 12)
    assert await store.attempts(waiting.id) == [
        {"n": 1, "started_at": 3.0, "finished_at": 4.0, "state": "succeeded", "exit_code": None,
         "error": None, "pid": 4321}]  # fmt: skip


async def test_a_write_that_changes_a_waiting_row_lands_it_alone_and_the_rest_wait(
    store: Store, home: Path
):  # fmt: skip
    waiting = [store.add_job_soon(request()) for _ in range(3)]
    other = await store.add_job(request())  # changes none of them: they go on waiting
    other.priority = 5
    await store.save_job(other)
    assert stored_ids(home) == {other.id}
    statements: list[str] = []
    store._w.set_trace_callback(statements.append)
    waiting[1].priority = 7
    await store.save_job(waiting[1])
    kinds = kinds_of(statements)
    assert kinds[0] == "BEGIN" and kinds[-1] == "COMMIT" and kinds.count("COMMIT") == 1
    assert kinds[1:-1].count("INSERT") == 1 and set(kinds[2:-1]) == {"UPDATE"}  # one transaction
    assert all(waiting[1].id in s for s in statements[1:-1])
    assert stored_ids(home) == {other.id, waiting[1].id}
    statements.clear()
    assert (await store.get_job(waiting[1].id)).priority == 7  # a read lands the rest, together
    store._w.set_trace_callback(None)
    assert [k for k in kinds_of(statements) if k != "SELECT"] == ["BEGIN", "INSERT", "INSERT", "COMMIT"]
    assert stored_ids(home) == {other.id, *(j.id for j in waiting)}


async def test_a_deferred_insert_lands_on_its_own_soon_when_no_commit_comes(store: Store, home: Path):
    waiting = store.add_job_soon(request())
    assert waiting.id not in stored_ids(home)
    await until(lambda: waiting.id in stored_ids(home), what="the deferred insert landing")
    assert not store._soon


async def test_every_read_through_the_store_sees_a_deferred_insert(store: Store):
    reads = [
        lambda job: store.get_job(job.id),
        lambda job: store.list_jobs([JobState.QUEUED]),
        lambda job: store.count_jobs(),
        lambda job: store.attempts(job.id),
        lambda job: store.min_seq(Lane.LOCAL),
    ]
    for read in reads:
        job = store.add_job_soon(request())
        await read(job)
        assert not store._soon
    assert len(await store.list_jobs([JobState.QUEUED])) == len(reads)
    assert await store.min_seq(Lane.LOCAL) == 1


async def test_seqs_stay_in_order_across_deferred_immediate_and_other_processes_inserts(
    store: Store, home: Path
):  # fmt: skip
    from console.core import schema

    first = await store.add_job(request())
    deferred = store.add_job_soon(request())
    after = await store.add_job(request())  # behind it, though it has not landed
    assert deferred.id not in stored_ids(home)
    assert first.seq < deferred.seq < after.seq
    elsewhere = schema.add_job_now(paths.db_path(home), request())
    assert elsewhere is not None and elsewhere.seq > after.seq
    await store.data_version()  # how the owner notices another process's writes
    later = store.add_job_soon(request())
    assert later.seq > elsewhere.seq
    retried = await store.next_seq()
    assert retried > later.seq  # the retry goes behind the deferred one, not beside it
    assert (await store.get_job(later.id)).seq == later.seq


async def test_a_deferred_insert_whose_id_is_taken_gets_a_new_one_at_once(store: Store):
    renamed: list[tuple[str, str]] = []
    store.on_renamed = lambda job, old: renamed.append((old, job.id))
    first = await store.add_job(request())
    twin = request()
    twin.id, twin.log_path = first.id, f"/logs/{first.id}.log"
    store.add_job_soon(twin)
    assert twin.id != first.id and twin.log_path == f"/logs/{twin.id}.log"
    assert renamed == []  # before anyone saw the old id: the caller compares ids itself
    await store.list_jobs()
    assert (await store.get_job(twin.id)).log_path == twin.log_path


async def test_an_id_taken_by_another_process_meanwhile_is_found_as_the_row_lands(
    store: Store, home: Path
):  # fmt: skip
    from console.core import schema

    renamed: list[tuple[str, str]] = []
    store.on_renamed = lambda job, old: renamed.append((old, job.id))
    soon = store.add_job_soon(request())
    old = soon.id
    elsewhere = request()
    elsewhere.id = old
    assert schema.add_job_now(paths.db_path(home), elsewhere) is not None
    soon.state, soon.attempts, soon.started_at, soon.finished_at = JobState.FAILED, 1, 2.0, 3.0
    soon.error = "upstream 500"
    ending = store.ending(soon)  # built under the taken id
    soon.error = "upstream 500 (after a retry)"  # differs from the insert: kept, and follows
    await store.commit(ending)
    assert renamed == [(old, soon.id)] and soon.id != old
    got = await store.get_job(soon.id)
    assert (got.state, got.error) == (JobState.FAILED, "upstream 500")
    assert (await store.get_job(old)).state is JobState.QUEUED  # the other process's row untouched


async def test_a_deferred_insert_that_fails_alone_is_lost_and_the_rest_land(store: Store, home: Path):
    lost: list[tuple[str, str]] = []
    store.on_lost = lambda job, exc: lost.append((job.id, type(exc).__name__))

    class Nowhere:
        def __str__(self) -> str:
            return "nowhere"  # the lane column's CHECK refuses it

    bad = request()
    bad.lane = Nowhere()  # type: ignore[assignment]
    store.add_job_soon(bad)
    good = store.add_job_soon(request())
    await store.list_jobs()  # a read lands them
    assert lost == [(bad.id, "IntegrityError")]
    assert stored_ids(home) == {good.id}


async def test_deferred_inserts_outlive_a_failed_commit_and_are_lost_only_when_they_cannot_land(
    store: Store, home: Path
):  # fmt: skip
    lost: list[str] = []
    store.on_lost = lambda job, exc: lost.append(job.id)
    waiting = store.add_job_soon(request())
    with pytest.raises(sqlite3.OperationalError):  # a commit that carries it, and fails
        await store.commit(store.saving(waiting), ("INSERT INTO no_such_table VALUES (1)", ()))
    assert waiting.id not in stored_ids(home)  # rolled back with it, and kept for later
    await until(lambda: waiting.id in stored_ids(home), what="the kept insert landing")
    assert lost == []
    # When the table cannot take it at all, the timed flush gives it up, and says so.
    store._w.execute("ALTER TABLE jobs RENAME TO jobs_away")
    try:
        doomed = store.add_job_soon(request())
        await until(lambda: lost == [doomed.id], what="the insert given up")
        assert not store._soon
    finally:
        store._w.execute("ALTER TABLE jobs_away RENAME TO jobs")


async def test_a_deferred_insert_lands_ahead_of_writes_held_behind_a_checkpoint(
    store: Store, home: Path, monkeypatch
):  # fmt: skip
    job, blocked = await checkpoint_started(store, monkeypatch, 2)
    await catch_up_started(store, job, blocked)
    waiting = store.add_job_soon(request())
    waiting.state, waiting.attempts, waiting.started_at = JobState.RUNNING, 1, 5.0
    await store.commit(store.starting(waiting))  # waits with the insert: nothing to hold
    waiting.state, waiting.finished_at = JobState.SUCCEEDED, 6.0
    end = asyncio.create_task(store.commit(store.ending(waiting)))
    await asyncio.sleep(0)
    assert not end.done() and waiting.id not in stored_ids(home)
    blocked.release[1].set()
    await end
    assert (await store.get_job(waiting.id)).state is JobState.SUCCEEDED


async def test_closing_the_store_lands_deferred_inserts(home: Path):
    paths.ensure_home(home)
    st = await Store.open(paths.db_path(home))
    waiting = st.add_job_soon(request())
    await st.close()
    assert waiting.id in stored_ids(home)


async def test_an_end_made_before_a_rename_follows_the_new_id_even_behind_the_lock(store: Store, home: Path):
    # The timer's landing waits for another process's lock; that process took the
    # request's id. The request's end, made under the old id, waits behind it in a
    # transaction of its own: it must update our row, not theirs.
    renamed: list[tuple[str, str]] = []
    store.on_renamed = lambda job, old: renamed.append((old, job.id))
    soon = store.add_job_soon(request())
    old = soon.id
    other = sqlite3.connect(paths.db_path(home), isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    theirs = request()
    theirs.id, theirs.seq = old, 999
    other.execute(schema.INSERT_SQL, schema.job_params(theirs))
    await until(lambda: store._slow_writes == 1 and not store._soon, what="the landing waiting for the lock")
    soon.state, soon.attempts, soon.started_at, soon.finished_at, soon.error = JobState.SUCCEEDED, 1, 2.0, 3.0, "mine"
    end = asyncio.create_task(store.commit(store.ending(soon)))
    await until(lambda: store._slow_writes == 2, what="the end waiting behind it")
    other.execute("COMMIT")
    other.close()
    await end
    assert renamed == [(old, soon.id)] and soon.id != old
    assert (await store.get_job(soon.id)).state is JobState.SUCCEEDED
    got = await store.get_job(old)
    assert (got.state, got.error, got.finished_at) == (JobState.QUEUED, None, None)
    assert not store._new_ids  # once nothing waits, the old id means their row again


async def test_a_read_waits_for_deferred_inserts_already_on_their_way(store: Store, home: Path, monkeypatch):
    # The timer takes a deferred insert while a checkpoint's catch-up holds writes: it is
    # no longer deferred and not yet on disk. A read then waits for it.
    job, blocked = await checkpoint_started(store, monkeypatch, 2)
    await catch_up_started(store, job, blocked)
    waiting = store.add_job_soon(request())
    await until(lambda: not store._soon, what="the timer taking it into the held writes")
    read = asyncio.create_task(store.list_jobs([JobState.QUEUED]))
    await until(lambda: store._held, what="the held landing")
    try:
        assert not read.done()  # it waits for the held landing
    finally:
        blocked.release[1].set()
    assert waiting.id in {j.id for j in await read}
    await until(lambda: store._checkpointing is None, what="checkpoint done")
