"""Durable job store: aiosqlite, WAL, schema migrations through ``PRAGMA user_version``.

Every write is committed before the call returns, so a caller that reports a job as
accepted (or a process as started) has it on disk first. WAL with ``synchronous=NORMAL``
survives ``kill -9`` of any writer; ``store.synchronous = "full"`` adds power-loss safety.

Writes are small single-row statements. They run on a second connection in the event
loop's own thread, with no busy wait: a committed WAL append costs tens of
microseconds, less than one hand-over to aiosqlite's thread (the scheduler writes two
or three times per job). When another process holds the write lock the write, and
every write after it until it lands, goes through a worker thread that waits for the
lock, so the loop never blocks on a lock and writes land in the order they were made.
That connection never checkpoints on commit (a checkpoint syncs the disk). Every
``CHECKPOINT_EVERY`` writes a third connection checkpoints from a worker thread while the
loop goes on writing: a passive checkpoint copies what was committed when it began and
never takes the write lock. The few writes committed meanwhile are then copied by a
second checkpoint with writes held behind it (they wait in order, off the loop: about
two fsyncs, ~1-2 ms here, where holding them for the whole copy cost 20+ ms), so the
next write starts the WAL over from its head and the file is overwritten in place
instead of growing. Reads, some of them large, stay on aiosqlite's thread.

One kind of write is the exception to "committed before the call returns": a gateway
request's row (``add_job_soon``). Its client holds the connection open; if the owner
dies the client sees it, and a restarted owner could not run the request anyway (it
marks such rows interrupted). So the row waits while the request waits and runs, and
lands whole, once: with the commit that ends it (or cancels it, or changes it otherwise),
or ``SOON_DELAY`` after it came at the latest, together with the others then waiting.
Its start and pid writes are dropped meanwhile: the insert is built from the live job
when it lands, so it carries them. An ended request is on disk before its end is told,
as every job's is. Written as an insert, an update at its start and another at its end,
a request's row was the largest part of the store's cost per request; now it is one
insert, on the commit that ends it, or in a batch (about a third the cost a row). Every
read through the store lands them first, and waits for those already on their way (a
commit waiting for the lock or held behind a checkpoint), so the store never answers
without them. Only a request that cannot start over is deferred: a retry writes its
ended attempt's row before it begins again. Their seqs are drawn in Python, above every
seq this store has seen (``data_version`` notices inserts by other processes), so a
waiting job's place in the queue is known before it is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from console.core.errors import NotFound, UserError
from console.core.models import Job, JobState, Lane, Severity, Violation
from console.core.schema import (
    ADD_SQL,
    ATTEMPTS_SQL,
    BUSY_TIMEOUT_MS,
    END_SQL,
    ID_TRIES,
    INSERT_SQL,
    JOB_COLUMNS,
    MIGRATIONS,
    PID_SQL,
    SAVE_SQL,
    SCHEMA_VERSION,
    START_SQL,
    TAKEN_SQL,
    end_params,
    id_taken,
    is_busy,
    job_params,
    pid_params,
    renew_id,
    row_to_job,
    save_params,
    start_params,
)

log = logging.getLogger(__name__)

# One statement and its parameters, as ``Store.commit`` takes them.
Write = tuple[str, Any]

CHECKPOINT_EVERY = 500  # writes between passive checkpoints (~1,500 WAL pages of gateway requests)
# The WAL file is cut back to this size when it starts over after a burst of writes (a
# reader that kept checkpoints from finishing). Well above what CHECKPOINT_EVERY writes
# fill (~6 MiB of gateway requests): cutting the file back is an ftruncate on the loop
# thread, 3-4 ms, which at 4 MiB happened at every checkpoint.
WAL_SIZE_LIMIT = 32 << 20
# At most this long between ``add_job_soon`` and the insert's commit when nothing lands
# it first (most requests end sooner: the commit that ends one lands its row).
SOON_DELAY = 0.05
# Writes that name their job by id in their last parameter: after a deferred insert drew a
# new id (its old one was taken), the same transaction's later writes follow it.
_BY_ID = frozenset({SAVE_SQL, START_SQL, PID_SQL, END_SQL})


async def _migrate(db: aiosqlite.Connection, path: Path) -> None:
    async with db.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    version = int(row[0]) if row else 0
    if version > SCHEMA_VERSION:
        raise UserError(
            f"{path} has schema v{version}, newer than this twolane (v{SCHEMA_VERSION}); "
            "upgrade twolane"
        )
    for target in range(version, SCHEMA_VERSION):
        # executescript commits first; the whole step runs in one transaction.
        await db.executescript(
            f"BEGIN IMMEDIATE; {MIGRATIONS[target]}; PRAGMA user_version={target + 1}; COMMIT;"
        )


async def _until_done(fn: Any, *args: Any) -> Any:
    """``fn(*args)`` in a worker thread, on the writer connection. A cancelled caller
    still waits for the thread to finish (the write lands; the writer is the thread's
    until then, so no other write may start on it), then hears of the cancel."""
    running = asyncio.get_running_loop().run_in_executor(None, fn, *args)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(running)
            break
        except asyncio.CancelledError:
            if running.done():
                raise
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return result


class Store:
    """One connection to the database. Methods commit before returning."""

    def __init__(
        self, conn: aiosqlite.Connection, writer: sqlite3.Connection, path: Path,
        synchronous: str = "normal",
    ) -> None:  # fmt: skip
        self._db = conn
        self._w = writer
        self.path = path
        self._slow_writes = 0  # writes waiting for another process's lock
        self._slow_lock = asyncio.Lock()
        self._since_checkpoint = 0
        self._checkpointing: asyncio.Task[None] | None = None
        self._checkpointer: sqlite3.Connection | None = None  # used in worker threads only
        self.wal_left = 0  # frames the last checkpoint could not copy (a reader needs them)
        # Writes made during a checkpoint's catch-up copy, with their callers' futures.
        self._held: list[tuple[Sequence[Write], asyncio.Future[Any]]] | None = None
        self._closing = False
        self._synchronous = synchronous
        self._soon: dict[str, Job] = {}  # jobs whose insert waits, by id, in order
        self._soon_timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self._flushes: set[asyncio.Task[None]] = set()  # timed flushes under way
        self._carried: set[asyncio.Future[None]] = set()  # commits carrying deferred inserts
        # What a transaction did to deferred inserts, told once it is over (on the loop
        # thread): a new id drawn (the old one with it), or an insert that failed alone.
        self._news: list[tuple[Job, str | BaseException]] = []
        # Old id -> new, for the writes made before a rename was known: those after it in
        # its transaction, and those already waiting for the lock behind it.
        self._new_ids: dict[str, str] = {}
        self.on_renamed: Callable[[Job, str], None] | None = None
        self.on_lost: Callable[[Job, BaseException], None] | None = None
        self._seq = 0  # the highest seq this store has seen or drawn
        self._version: int | None = None

    @classmethod
    async def open(cls, path: Path, synchronous: str = "normal") -> Store:
        if synchronous not in ("normal", "full"):
            raise UserError(f"store.synchronous must be 'normal' or 'full', got {synchronous!r}")
        conn = await aiosqlite.connect(path, timeout=30.0, isolation_level=None)
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
        await conn.execute("PRAGMA foreign_keys=ON")
        await conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        try:
            await _migrate(conn, path)
            writer = sqlite3.connect(
                path, timeout=0, isolation_level=None, check_same_thread=False
            )
        except BaseException:
            await conn.close()
            raise
        writer.execute(f"PRAGMA synchronous={synchronous.upper()}")
        writer.execute("PRAGMA foreign_keys=ON")
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        store = cls(conn, writer, path, synchronous)
        store._seq = store._max_seq()
        return store

    def _max_seq(self) -> int:
        return int(self._w.execute("SELECT COALESCE(MAX(seq), 0) FROM jobs").fetchone()[0])

    async def close(self) -> None:
        await self._flush()
        if self._flushes:
            await asyncio.wait(self._flushes)
        self._closing = True
        if self._checkpointing is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointing
        async with self._slow_lock:  # let a write waiting for a lock land first
            pass
        if self._checkpointer is not None:
            self._checkpointer.close()
        self._w.close()
        await self._db.close()

    # ---- the write path ----------------------------------------------------------------

    def _run(self, writes: Sequence[Write]) -> Any:
        row = self._execute(writes)
        self._since_checkpoint += 1
        if self._since_checkpoint >= CHECKPOINT_EVERY and self._checkpointing is None:
            self._start_checkpoint()
        return row

    def _execute(self, writes: Sequence[Write]) -> Any:
        """One commit: a lone statement on its own, several inside one transaction."""
        w = self._w
        if len(writes) == 1 and writes[0][0] is not INSERT_SQL and not self._new_ids:
            return w.execute(*writes[0]).fetchone()
        w.execute("BEGIN IMMEDIATE")  # the write lock up front: BUSY here or not at all
        try:
            row = self._statements(writes)
            w.execute("COMMIT")
        except BaseException:
            if w.in_transaction:
                w.execute("ROLLBACK")
            raise
        return row

    def _statements(self, writes: Sequence[Write]) -> Any:
        """Run ``writes`` inside the open transaction; the first row the last returns. A
        deferred insert (``INSERT_SQL`` with its job as parameters) draws a new id while
        its id is taken, and the writes after it follow the new one."""
        w = self._w
        row = None
        for sql, params in writes:
            if sql is INSERT_SQL:
                self._insert(params)
                row = None
                continue
            if self._new_ids and sql in _BY_ID and params[-1] in self._new_ids:
                params = (*params[:-1], self._new_ids[params[-1]])
            row = w.execute(sql, params).fetchone()
        return row

    def _insert(self, job: Job) -> None:
        old = job.id
        for attempt in range(ID_TRIES):
            try:
                self._w.execute(INSERT_SQL, job_params(job))
                break
            except sqlite3.IntegrityError as exc:  # only this statement is undone
                if attempt < ID_TRIES - 1 and id_taken(exc, job):
                    continue
                self._news.append((job, exc))  # the others in the transaction still land
                break
        if job.id != old:
            self._news.append((job, old))
            self._new_ids[old] = job.id  # for the writes made before this was known

    def _slow_done(self) -> None:
        """A write that waited for the lock has landed (or failed); once none waits, no
        write made before a rename is left, so the old ids mean other rows again."""
        self._slow_writes -= 1
        if not self._slow_writes:
            self._new_ids.clear()

    def _tell(self) -> None:
        """Tell the hooks what the last transaction did to deferred inserts."""
        news, self._news = self._news, []
        if not self._slow_writes:  # else writes made earlier still wait: see _slow_done
            self._new_ids.clear()
        for job, what in news:
            hook = self.on_renamed if isinstance(what, str) else self.on_lost
            if hook is None:
                continue
            try:
                hook(job, what)  # type: ignore[arg-type]
            except Exception:  # the write landed: a hook's bug must not undo that for its caller
                log.exception("store hook failed for job %s", job.id)

    async def _write(self, sql: str, params: Any = ()) -> Any:
        """Run one write statement, committed on return; the first row it returns."""
        return await self.commit((sql, params))

    async def commit(self, *writes: Write) -> Any:
        """Run ``writes`` (statement, parameters) in one transaction, committed on return;
        the first row the last statement returns. A job whose insert waits: its start
        and pid writes are dropped (its insert will carry them), any other write of it
        lands its insert first, in the same transaction."""
        soon: tuple[Write, ...] = ()
        if self._soon:
            writes, soon = self._sift(writes)
            writes = (*soon, *writes)
        if not writes:
            return None
        if soon:
            return await self._carrying(self._commit(writes, soon))
        return await self._commit(writes, soon)

    async def _carrying(self, landing: Awaitable[Any]) -> Any:
        """Await ``landing``, a commit that carries deferred inserts. Reads wait for it
        (``_landed``): until it lands, those rows are neither deferred nor on disk."""
        carried: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._carried.add(carried)
        try:
            return await landing
        finally:
            self._carried.discard(carried)
            carried.set_result(None)

    async def _commit(self, writes: Sequence[Write], soon: Sequence[Write]) -> Any:
        """``commit`` once sifted; ``soon`` (deferred inserts among ``writes``) wait again
        if the transaction is rolled back."""
        if self._held is not None:  # a checkpoint's catch-up: they land together after it
            landed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._held.append((writes, landed))
            try:
                return await landed
            except sqlite3.Error:
                if soon:  # rolled back: they wait again
                    self._defer(job for _, job in soon)
                raise
        try:
            if not self._slow_writes:
                try:
                    return self._run(writes)
                except sqlite3.OperationalError as exc:
                    if not is_busy(exc):
                        raise
            self._slow_writes += 1
            try:
                async with self._slow_lock:
                    return await _until_done(self._run_waiting, writes)
            finally:
                self._slow_done()
        except sqlite3.Error:
            if soon:  # rolled back: they go with the next commit (or fail with its flush)
                self._defer(job for _, job in soon)
            raise
        finally:
            if self._news:
                self._tell()

    # ---- deferred inserts (see the module's docstring) --------------------------------

    def add_job_soon(self, job: Job) -> Job:
        """Defer ``job``'s insert: it lands with the commit that ends or changes it, or
        ``SOON_DELAY`` from now with the others then waiting, built from the job as it is
        then; its seq is drawn now, and a new id if its id is taken already. For a gateway
        request only: not on disk when this returns. ``on_renamed`` hears if its id was
        found taken as it landed (another process took it meanwhile), ``on_lost`` if it
        could not be stored."""
        for _ in range(ID_TRIES - 1):
            if not self._id_taken(job.id):
                break
            renew_id(job)
        self._seq += 1
        job.seq = self._seq
        self._defer((job,))
        return job

    def _id_taken(self, job_id: str) -> bool:
        if job_id in self._soon:
            return True
        if self._slow_writes:  # the writer is a worker thread's: found as it lands instead
            return False
        try:
            return self._w.execute(TAKEN_SQL, (job_id,)).fetchone() is not None
        except sqlite3.Error:  # the insert finds it, or fails, as it lands
            return False

    def _defer(self, jobs: Iterable[Job]) -> None:
        for job in jobs:
            self._soon[job.id] = job
        if self._soon_timer is None and self._soon:
            self._soon_timer = asyncio.get_running_loop().call_later(SOON_DELAY, self._flush_later)

    def _sift(self, writes: Sequence[Write]) -> tuple[tuple[Write, ...], tuple[Write, ...]]:
        """``writes`` without those a waiting insert will carry, and the inserts that
        must land with them: a job's start or pid write is dropped while its insert
        waits; any other write of it lands its insert, and is dropped too when the
        insert (built from the job now) says the same (its end, most often)."""
        soon = self._soon
        kept: list[Write] = []
        landing: list[Write] = []
        for sql, params in writes:
            job = soon.get(params[-1]) if sql in _BY_ID else None
            if job is not None:
                if sql is START_SQL or sql is PID_SQL:
                    continue
                del soon[job.id]
                landing.append((INSERT_SQL, job))
                if sql is END_SQL and params == end_params(job):
                    continue
            kept.append((sql, params))
        return tuple(kept), tuple(landing)

    def _take_soon(self) -> tuple[Write, ...]:
        soon, self._soon = self._soon.values(), {}
        if self._soon_timer is not None:
            self._soon_timer.cancel()
            self._soon_timer = None
        return tuple((INSERT_SQL, job) for job in soon)

    def _lose(self, soon: Sequence[Write], exc: BaseException | None) -> None:
        """Deferred inserts that could not land: each job's ``on_lost`` hears why."""
        if exc is None:
            return
        log.error("could not store %d waiting gateway requests: %s", len(soon), exc)
        self._news.extend((job, exc) for _, job in soon)
        self._tell()

    def _flush_later(self) -> None:
        self._soon_timer = None
        if self._soon:
            task = asyncio.get_running_loop().create_task(self._flush())
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    async def _flush(self) -> None:
        """Land the deferred inserts now; those that cannot land are lost."""
        soon = self._take_soon()
        if not soon:
            return
        try:
            await self._carrying(self._commit(soon, ()))
        except sqlite3.Error as exc:
            self._lose(soon, exc)

    def _run_waiting(self, writes: Sequence[Write], execute: Any = None) -> Any:
        # The loop thread leaves the writer alone while a slow write is pending.
        execute = execute or self._execute
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        self._w.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        try:
            while True:
                try:
                    return execute(writes)
                except sqlite3.OperationalError as exc:
                    # A stale WAL snapshot is answered BUSY without waiting: try again.
                    if not is_busy(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)
        finally:
            self._w.execute("PRAGMA busy_timeout=0")

    def _start_checkpoint(self) -> None:
        self._since_checkpoint = 0
        if not self._closing:
            self._checkpointing = asyncio.get_running_loop().create_task(self._checkpoint())

    async def _checkpoint(self) -> None:
        """Copy the WAL into the database off the loop thread, on a connection of its
        own, while writes go on; then copy what they committed meanwhile with writes
        held, so the next write starts the WAL over."""
        try:
            await self._copy_wal()
            if (self.wal_left or self._since_checkpoint) and not self._closing:
                await self._copy_rest()
        except sqlite3.Error as exc:  # a reader kept it from finishing: next time
            log.warning("WAL checkpoint of %s: %s", self.path, exc)
        finally:
            self._checkpointing = None

    async def _copy_rest(self) -> None:
        """The catch-up copy. Writes made meanwhile are held in memory and land in one
        transaction once it is done (no thread hop each); writes already waiting for
        another process's lock are waited for in order instead."""
        if self._slow_writes:
            self._slow_writes += 1
            try:
                async with self._slow_lock:
                    await self._copy_wal()
            finally:
                self._slow_done()
            return
        self._held = []
        try:
            await self._copy_wal()
        finally:
            held, self._held = self._held, None
            if held:
                await self._land(held)

    async def _land(self, held: list[tuple[Sequence[Write], asyncio.Future[Any]]]) -> None:
        """Commit writes held behind a checkpoint, in the order they were made, in one
        transaction; each caller hears its own result or error."""
        writes = [w for w, _ in held]
        try:
            results = self._execute_each(writes)
        except Exception as exc:
            if not (isinstance(exc, sqlite3.OperationalError) and is_busy(exc)):
                results = [exc] * len(held)
            else:  # another process has the lock now: wait for it off the loop, in order
                self._slow_writes += 1
                try:
                    async with self._slow_lock:
                        results = await _until_done(self._run_waiting, writes, self._execute_each)
                except Exception as exc:
                    results = [exc] * len(held)
                finally:
                    self._slow_done()
        self._tell()
        for (_, landed), result in zip(held, results, strict=True):
            if landed.done():  # its caller went away; the write landed all the same
                continue
            if isinstance(result, BaseException):
                landed.set_exception(result)
            else:
                landed.set_result(result)

    def _execute_each(self, batch: Sequence[Sequence[Write]]) -> list[Any]:
        """Several commits' writes in one transaction, each inside a savepoint of its
        own: one that fails is rolled back alone. Each one's row, or its error."""
        w = self._w
        results: list[Any] = []
        w.execute("BEGIN IMMEDIATE")
        try:
            for writes in batch:
                w.execute("SAVEPOINT held")
                try:
                    row = self._statements(writes)
                except sqlite3.Error as exc:
                    w.execute("ROLLBACK TO held")
                    row = exc
                w.execute("RELEASE held")
                results.append(row)
            w.execute("COMMIT")
        except BaseException:
            if w.in_transaction:
                w.execute("ROLLBACK")
            raise
        return results

    async def _copy_wal(self) -> None:
        _busy, frames, copied = await asyncio.to_thread(self._checkpoint_now)
        self.wal_left = max(frames - copied, 0)

    def _checkpoint_now(self) -> tuple[int, int, int]:
        if self._checkpointer is None:
            db = sqlite3.connect(self.path, timeout=0, isolation_level=None, check_same_thread=False)
            db.execute(f"PRAGMA synchronous={self._synchronous.upper()}")  # syncs as writes do
            self._checkpointer = db
        return self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()

    async def schema_version(self) -> int:
        async with self._db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def integrity_check(self) -> str:
        async with self._db.execute("PRAGMA integrity_check") as cur:
            row = await cur.fetchone()
        return str(row[0]) if row else "no answer"

    async def data_version(self) -> int:
        """Changes whenever another connection commits (used to notice direct CLI writes).

        Read on the writing connection, so the store's own writes do not count. When it
        changed, jobs another process added may hold seqs above those this store drew."""
        async with self._slow_lock:  # the writer is the worker thread's while it waits
            row = self._w.execute("PRAGMA data_version").fetchone()
            version = int(row[0]) if row else 0
            if version != self._version:
                self._version = version
                self._seq = max(self._seq, self._max_seq())
        return version

    # ---- jobs -------------------------------------------------------------------------

    async def add_job(self, job: Job) -> Job:
        """Insert a new job at the tail of the FIFO order; committed on return."""
        for attempt in range(ID_TRIES):
            params = job_params(job)
            try:
                row = await self._write(ADD_SQL, (params[0], self._seq + 1, *params[2:]))
                break
            except sqlite3.IntegrityError as exc:  # its random id is taken: a new one
                if attempt == ID_TRIES - 1 or not id_taken(exc, job):
                    raise
        job.seq = int(row[0])
        self._seq = max(self._seq, job.seq)
        return job

    async def _landed(self) -> None:
        """Before a read: the deferred inserts land, and those already on their way (a
        commit waiting for the lock, or held behind a checkpoint) have landed, so no read
        answers without them."""
        if self._carried:
            await asyncio.wait(tuple(self._carried))
        if self._soon:
            await self._flush()

    async def save_job(self, job: Job) -> None:
        """Write every field a job's life changes (its spec and identity never change)."""
        await self._write(SAVE_SQL, save_params(job))

    # The writes of an attempt, for ``commit``: each names only the columns it changes,
    # so the end of one job and the start of the next can share a transaction.

    @staticmethod
    def saving(job: Job) -> Write:
        return (SAVE_SQL, save_params(job))

    @staticmethod
    def starting(job: Job) -> Write:
        """``running``: the attempt number, start time and log (pid not known yet)."""
        return (START_SQL, start_params(job))

    @staticmethod
    def started(job: Job) -> Write:
        """The started process: pid and start time."""
        return (PID_SQL, pid_params(job))

    @staticmethod
    def ending(job: Job) -> Write:
        """The end of the attempt (its row in ``attempts`` is written if the job starts
        over)."""
        return (END_SQL, end_params(job))

    async def get_job(self, ref: str) -> Job:
        """A job by id, or by a unique id prefix (at least 2 characters)."""
        await self._landed()
        ref = ref.strip().lower()
        async with self._db.execute(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (ref,)
        ) as cur:
            row = await cur.fetchone()
        if row:
            return row_to_job(row)
        if len(ref) >= 2:
            async with self._db.execute(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE id LIKE ? ESCAPE '\\' LIMIT 2",
                (ref.replace("%", "\\%").replace("_", "\\_") + "%",),
            ) as cur:
                rows = list(await cur.fetchall())
            if len(rows) == 1:
                return row_to_job(rows[0])
            if len(rows) > 1:
                raise UserError(f"job id '{ref}' is ambiguous; type more of it (see `twolane ls`)")
        raise NotFound(f"no job '{ref}'; list the jobs with `twolane ls`")

    async def list_jobs(
        self,
        states: Iterable[JobState] | None = None,
        lane: Lane | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[Job]:
        await self._landed()
        where, params = [], []
        if states:
            states = list(states)
            where.append(f"state IN ({', '.join('?' for _ in states)})")
            params.extend(str(s) for s in states)
        if lane:
            where.append("lane = ?")
            params.append(str(lane))
        sql = f"SELECT {JOB_COLUMNS} FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC" if newest_first else " ORDER BY seq"
        if limit:
            sql += f" LIMIT {int(limit)}"
        async with self._db.execute(sql, params) as cur:
            rows = await cur.fetchall()
        return [row_to_job(r) for r in rows]

    async def count_jobs(self) -> dict[str, int]:
        await self._landed()
        async with self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state") as cur:
            return {str(s): int(n) for s, n in await cur.fetchall()}

    async def min_seq(self, lane: Lane) -> int:
        await self._landed()
        async with self._db.execute(
            "SELECT COALESCE(MIN(seq), 1) FROM jobs WHERE lane = ? AND state = 'queued'",
            (str(lane),),
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 1

    async def next_seq(self) -> int:
        """A seq above every job's, for a job that goes to the back of the queue."""
        await self._landed()
        async with self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs") as cur:
            row = await cur.fetchone()
        self._seq = max(self._seq + 1, int(row[0]) if row else 1)
        return self._seq

    # ---- attempts ---------------------------------------------------------------------

    async def attempts(self, job_id: str) -> list[dict[str, Any]]:
        await self._landed()
        async with self._db.execute(ATTEMPTS_SQL, {"id": job_id}) as cur:
            rows = await cur.fetchall()
        keys = ("n", "started_at", "finished_at", "state", "exit_code", "error", "pid")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    # ---- lanes ------------------------------------------------------------------------

    async def paused_lanes(self) -> dict[Lane, bool]:
        async with self._db.execute("SELECT lane, paused FROM lanes") as cur:
            rows = await cur.fetchall()
        out = {lane: False for lane in Lane}
        out.update({Lane(lane): bool(p) for lane, p in rows})
        return out

    async def set_paused(self, lanes: Iterable[Lane], paused: bool) -> None:
        lanes = [str(x) for x in lanes]
        await self._write(
            f"UPDATE lanes SET paused = ? WHERE lane IN ({', '.join('?' for _ in lanes)})",
            (int(paused), *lanes),
        )

    # ---- violations -------------------------------------------------------------------

    async def add_violation(self, v: Violation) -> Violation:
        row = await self._write(
            "INSERT INTO violations (at, rule, severity, message, reading, threshold, job_ids)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (v.at, v.rule, str(v.severity), v.message, v.reading, v.threshold,
             json.dumps(v.job_ids)),
        )  # fmt: skip
        v.id = int(row[0]) if row else None
        return v

    async def list_violations(self, limit: int = 500, since: float | None = None) -> list[Violation]:
        sql = "SELECT id, at, rule, severity, message, reading, threshold, job_ids FROM violations"
        params: list[Any] = []
        if since is not None:
            sql += " WHERE at >= ?"
            params.append(since)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(int(limit))
        async with self._db.execute(sql, params) as cur:
            rows = await cur.fetchall()
        return [
            Violation(
                id=r[0], at=r[1], rule=r[2], severity=Severity(r[3]), message=r[4], reading=r[5],
                threshold=r[6], job_ids=json.loads(r[7]),
            )  # fmt: skip
            for r in reversed(rows)
        ]
