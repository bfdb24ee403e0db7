"""Durable job store: aiosqlite, WAL, schema migrations through ``PRAGMA user_version``.

Every write is committed before the call returns, so a caller that reports a job as
accepted (or a process as started) has it on disk first. WAL with ``synchronous=NORMAL``
survives ``kill -9`` of any writer; ``store.synchronous = "full"`` adds power-loss safety.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiosqlite

from console.core.errors import NotFound, UserError
from console.core.models import Job, JobSpec, JobState, Lane, Severity, Violation

# Each entry migrates from version i to i+1. Never edit a shipped entry: append.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        name TEXT NOT NULL DEFAULT '',
        lane TEXT NOT NULL CHECK (lane IN ('local', 'remote')),
        kind TEXT NOT NULL DEFAULT 'shell',
        priority INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL,
        spec TEXT NOT NULL,
        retries INTEGER NOT NULL DEFAULT 0,
        retry_on_interrupt INTEGER NOT NULL DEFAULT 0,
        force INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        exit_code INTEGER,
        error TEXT,
        log_path TEXT,
        held_reason TEXT,
        pid INTEGER,
        pid_start REAL,
        meta TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX jobs_by_state ON jobs (state, lane, priority DESC, seq);
    CREATE INDEX jobs_by_seq ON jobs (seq);
    CREATE TABLE attempts (
        job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        n INTEGER NOT NULL,
        started_at REAL,
        finished_at REAL,
        state TEXT,
        exit_code INTEGER,
        error TEXT,
        pid INTEGER,
        PRIMARY KEY (job_id, n)
    );
    CREATE TABLE lanes (
        lane TEXT PRIMARY KEY,
        paused INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO lanes (lane, paused) VALUES ('local', 0), ('remote', 0);
    CREATE TABLE violations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        rule TEXT NOT NULL,
        severity TEXT NOT NULL,
        message TEXT NOT NULL,
        reading REAL,
        threshold REAL,
        job_ids TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX violations_by_at ON violations (at);
    """,
    # v2: the attempt row is written by the same statement that ends the attempt, so a
    # finished job costs one round trip and the two can never disagree after a crash.
    """
    CREATE TRIGGER attempt_ended AFTER UPDATE OF state ON jobs
    WHEN OLD.state = 'running' AND NEW.state IN ('succeeded', 'failed', 'cancelled', 'interrupted')
    BEGIN
        INSERT INTO attempts (job_id, n, started_at, finished_at, state, exit_code, error, pid)
        VALUES (NEW.id, NEW.attempts, NEW.started_at, NEW.finished_at, NEW.state,
                NEW.exit_code, NEW.error, NEW.pid)
        ON CONFLICT (job_id, n) DO UPDATE SET finished_at = excluded.finished_at,
            state = excluded.state, exit_code = excluded.exit_code, error = excluded.error,
            pid = excluded.pid;
    END;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)

# Background checkpoints: how often the WAL's size is looked at, and the size that
# triggers one (SQLite's own automatic checkpoint is at 1000 pages, ~4 MB).
CHECKPOINT_INTERVAL = 0.5
CHECKPOINT_WAL_BYTES = 4 << 20

_JOB_COLUMNS = (
    "id, seq, name, lane, kind, priority, state, spec, retries, retry_on_interrupt, force, "
    "attempts, created_at, started_at, finished_at, exit_code, error, log_path, held_reason, "
    "pid, pid_start, meta"
)


def _row_to_job(row: sqlite3.Row | tuple[Any, ...]) -> Job:
    (
        id_, seq, name, lane, kind, priority, state, spec, retries, retry_on_interrupt, force,
        attempts, created_at, started_at, finished_at, exit_code, error, log_path, held_reason,
        pid, pid_start, meta,
    ) = tuple(row)
    return Job(
        id=id_, seq=seq, name=name, lane=Lane(lane), kind=kind, priority=priority,
        state=JobState(state), spec=JobSpec.from_dict(json.loads(spec)), retries=retries,
        retry_on_interrupt=bool(retry_on_interrupt), force=bool(force), attempts=attempts,
        created_at=created_at, started_at=started_at, finished_at=finished_at,
        exit_code=exit_code, error=error, log_path=log_path, held_reason=held_reason,
        pid=pid, pid_start=pid_start, meta=json.loads(meta or "{}"),
    )  # fmt: skip


def _job_params(job: Job) -> tuple[Any, ...]:
    return (
        job.id, job.seq, job.name, str(job.lane), job.kind, job.priority, str(job.state),
        json.dumps(job.spec.to_dict()), job.retries, int(job.retry_on_interrupt),
        int(job.force), job.attempts, job.created_at, job.started_at, job.finished_at,
        job.exit_code, job.error, job.log_path, job.held_reason, job.pid, job.pid_start,
        json.dumps(job.meta),
    )  # fmt: skip


class Store:
    """One connection to the database. Methods commit before returning."""

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._db = conn
        self.path = path
        self._checkpoints: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, path: Path, synchronous: str = "normal", *,
                   background_checkpoints: bool = False) -> Store:  # fmt: skip
        """Open (and migrate) the database. ``background_checkpoints`` (the owner): copy
        the WAL into the database from a second connection in a worker thread, instead
        of inside whichever commit crosses SQLite's threshold, which fsyncs and so
        stalls every write queued behind it (the gateway's p99)."""
        if synchronous not in ("normal", "full"):
            raise UserError(f"store.synchronous must be 'normal' or 'full', got {synchronous!r}")
        conn = await aiosqlite.connect(path, timeout=30.0, isolation_level=None)
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
        await conn.execute("PRAGMA foreign_keys=ON")
        await conn.execute("PRAGMA busy_timeout=30000")
        store = cls(conn, path)
        await store._migrate()
        if background_checkpoints:
            await conn.execute("PRAGMA wal_autocheckpoint=0")
            store._checkpoints = asyncio.create_task(store._checkpoint_loop(), name="twolane-checkpoints")
        return store

    async def close(self) -> None:
        if self._checkpoints is not None:
            self._checkpoints.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpoints
            self._checkpoints = None
        await self._db.close()

    async def _checkpoint_loop(self) -> None:
        wal = f"{self.path}-wal"
        checkpointer: sqlite3.Connection | None = None
        running: asyncio.Future[Any] | None = None
        try:
            while True:
                await asyncio.sleep(CHECKPOINT_INTERVAL)
                try:
                    if os.path.getsize(wal) < CHECKPOINT_WAL_BYTES:  # noqa: ASYNC240 (one stat)
                        continue
                    if checkpointer is None:
                        checkpointer = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
                    # PASSIVE: copies what it can without waiting for (or blocking) writers.
                    running = asyncio.ensure_future(
                        asyncio.to_thread(checkpointer.execute, "PRAGMA wal_checkpoint(PASSIVE)")
                    )
                    await asyncio.shield(running)
                except (OSError, sqlite3.Error):
                    continue  # no WAL yet, or busy: the next round tries again
        finally:
            if running is not None and not running.done():
                with contextlib.suppress(Exception):
                    await running  # the thread still uses the connection
            if checkpointer is not None:
                checkpointer.close()

    async def _migrate(self) -> None:
        async with self._db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise UserError(
                f"{self.path} has schema v{version}, newer than this twolane (v{SCHEMA_VERSION}); "
                "upgrade twolane"
            )
        for target in range(version, SCHEMA_VERSION):
            # executescript commits first; the whole step runs in one transaction.
            await self._db.executescript(
                f"BEGIN IMMEDIATE; {MIGRATIONS[target]}; PRAGMA user_version={target + 1}; COMMIT;"
            )

    async def schema_version(self) -> int:
        async with self._db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def integrity_check(self) -> str:
        async with self._db.execute("PRAGMA integrity_check") as cur:
            row = await cur.fetchone()
        return str(row[0]) if row else "no answer"

    async def data_version(self) -> int:
        """Changes whenever another connection commits (used to notice direct CLI writes)."""
        async with self._db.execute("PRAGMA data_version") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    # ---- jobs -------------------------------------------------------------------------

    async def add_job(self, job: Job) -> Job:
        """Insert a new job at the tail of the FIFO order, in whatever state it has (a job
        started at once is inserted ``running``); committed on return."""
        params = list(_job_params(job))
        # One hop to the database thread: execute, fetch and commit together (a cursor's
        # execute, fetchone and close would be three).
        rows = await self._db.execute_fetchall(
            f"INSERT INTO jobs ({_JOB_COLUMNS}) VALUES "
            "(?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
            " ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
            [params[0], *params[2:]],
        )
        job.seq = int(next(iter(rows))[0])
        return job

    async def save_job(self, job: Job) -> None:
        """Write every mutable field of ``job``."""
        params = _job_params(job)
        cols = [c.strip() for c in _JOB_COLUMNS.split(",")][1:]
        await self._db.execute(
            f"UPDATE jobs SET {', '.join(f'{c} = ?' for c in cols)} WHERE id = ?",
            (*params[1:], job.id),
        )

    async def get_job(self, ref: str) -> Job:
        """A job by id, or by a unique id prefix (at least 2 characters)."""
        ref = ref.strip().lower()
        async with self._db.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (ref,)
        ) as cur:
            row = await cur.fetchone()
        if row:
            return _row_to_job(row)
        if len(ref) >= 2:
            async with self._db.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id LIKE ? ESCAPE '\\' LIMIT 2",
                (ref.replace("%", "\\%").replace("_", "\\_") + "%",),
            ) as cur:
                rows = list(await cur.fetchall())
            if len(rows) == 1:
                return _row_to_job(rows[0])
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
        where, params = [], []
        if states:
            states = list(states)
            where.append(f"state IN ({', '.join('?' for _ in states)})")
            params.extend(str(s) for s in states)
        if lane:
            where.append("lane = ?")
            params.append(str(lane))
        sql = f"SELECT {_JOB_COLUMNS} FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC" if newest_first else " ORDER BY seq"
        if limit:
            sql += f" LIMIT {int(limit)}"
        async with self._db.execute(sql, params) as cur:
            rows = await cur.fetchall()
        return [_row_to_job(r) for r in rows]

    async def count_jobs(self) -> dict[str, int]:
        async with self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state") as cur:
            return {str(s): int(n) for s, n in await cur.fetchall()}

    async def min_seq(self, lane: Lane) -> int:
        async with self._db.execute(
            "SELECT COALESCE(MIN(seq), 1) FROM jobs WHERE lane = ? AND state = 'queued'",
            (str(lane),),
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 1

    async def next_seq(self) -> int:
        async with self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 1

    # ---- attempts ---------------------------------------------------------------------

    async def attempts(self, job_id: str) -> list[dict[str, Any]]:
        async with self._db.execute(
            "SELECT n, started_at, finished_at, state, exit_code, error, pid FROM attempts"
            " WHERE job_id = ? ORDER BY n",
            (job_id,),
        ) as cur:
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
        await self._db.executemany(
            "UPDATE lanes SET paused = ? WHERE lane = ?", [(int(paused), str(x)) for x in lanes]
        )

    # ---- violations -------------------------------------------------------------------

    async def add_violation(self, v: Violation) -> Violation:
        async with self._db.execute(
            "INSERT INTO violations (at, rule, severity, message, reading, threshold, job_ids)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (v.at, v.rule, str(v.severity), v.message, v.reading, v.threshold,
             json.dumps(v.job_ids)),
        ) as cur:  # fmt: skip
            row = await cur.fetchone()
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
