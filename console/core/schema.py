"""The database's shape: schema migrations, the job row <-> ``Job`` mapping and the
write statements, shared by the owner's async ``Store`` and the CLI's quick path.

No asyncio here: ``twolane add`` with no owner running writes its one row through
``add_job_now`` without starting an event loop (asyncio alone is ~40 ms of imports).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from console.core.models import Job, JobSpec, JobState, Lane, new_job_id


def _encoder() -> Callable[[Any], str]:
    """``json.dumps`` with its default settings, its C encoder made once instead of at
    every call (a third to a half of the cost of a job's spec or meta; three per gateway
    request)."""
    from json.encoder import JSONEncoder, c_make_encoder, encode_basestring_ascii

    if c_make_encoder is None:  # no C accelerator: the plain function
        return json.dumps
    # The arguments JSONEncoder.iterencode passes for json.dumps's defaults, without the
    # circular-reference check (a job's spec and meta are plain data).
    encode = c_make_encoder(None, JSONEncoder().default, encode_basestring_ascii, None,
                            ": ", ", ", False, False, True)  # fmt: skip
    return lambda obj: "".join(encode(obj, 0))


dumps = _encoder()

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
    # v3: an attempt's row is written when the job starts over (retry, requeue), not at
    # every end: the job's own row already holds its latest attempt, and the insert was
    # a third of the cost of the commit that ends one job and starts the next.
    # ``Store.attempts`` reads the rows and the job's latest attempt together.
    """
    DROP TRIGGER attempt_ended;
    CREATE TRIGGER attempt_superseded AFTER UPDATE OF state ON jobs
    WHEN OLD.state IN ('succeeded', 'failed', 'cancelled', 'interrupted')
        AND NEW.state IN ('queued', 'running') AND OLD.started_at IS NOT NULL
    BEGIN
        INSERT INTO attempts (job_id, n, started_at, finished_at, state, exit_code, error, pid)
        VALUES (OLD.id, OLD.attempts, OLD.started_at, OLD.finished_at, OLD.state,
                OLD.exit_code, OLD.error, OLD.pid)
        ON CONFLICT (job_id, n) DO UPDATE SET started_at = excluded.started_at,
            finished_at = excluded.finished_at, state = excluded.state,
            exit_code = excluded.exit_code, error = excluded.error, pid = excluded.pid;
    END;
    """,
]

# Every attempt of a job: the rows of those it started over from, then its latest (the
# job's own row) unless a row already holds it (databases written before v3).
ATTEMPTS_SQL = """
    SELECT n, started_at, finished_at, state, exit_code, error, pid FROM attempts
    WHERE job_id = :id
    UNION ALL
    SELECT attempts, started_at, finished_at, state, exit_code, error, pid FROM jobs
    WHERE id = :id AND started_at IS NOT NULL AND state != 'queued'
        AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.job_id = jobs.id AND a.n = jobs.attempts)
    ORDER BY 1
"""

SCHEMA_VERSION = len(MIGRATIONS)
BUSY_TIMEOUT_MS = 30_000

JOB_COLUMNS = (
    "id, seq, name, lane, kind, priority, state, spec, retries, retry_on_interrupt, force, "
    "attempts, created_at, started_at, finished_at, exit_code, error, log_path, held_reason, "
    "pid, pid_start, meta"
)


def row_to_job(row: sqlite3.Row | tuple[Any, ...]) -> Job:
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


def job_params(job: Job) -> tuple[Any, ...]:
    return (
        job.id, job.seq, job.name, str(job.lane), job.kind, job.priority, str(job.state),
        dumps(job.spec.to_dict()), job.retries, int(job.retry_on_interrupt),
        int(job.force), job.attempts, job.created_at, job.started_at, job.finished_at,
        job.exit_code, job.error, job.log_path, job.held_reason, job.pid, job.pid_start,
        dumps(job.meta),
    )  # fmt: skip


# What a job's life changes; id, name, lane, kind, spec and created_at are fixed at add.
MUTABLE = (
    "seq", "priority", "state", "retries", "retry_on_interrupt", "force", "attempts",
    "started_at", "finished_at", "exit_code", "error", "log_path", "held_reason", "pid",
    "pid_start", "meta",
)  # fmt: skip
SAVE_SQL = f"UPDATE jobs SET {', '.join(f'{c} = ?' for c in MUTABLE)} WHERE id = ?"
# The tail of the FIFO order: above every stored seq, and at least the second parameter
# (the owner's store passes the seq after those it drew for inserts not yet landed).
ADD_SQL = (
    f"INSERT INTO jobs ({JOB_COLUMNS}) VALUES "
    "(?, (SELECT MAX(COALESCE(MAX(seq), 0) + 1, ?) FROM jobs), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
    " ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq"
)
# A job whose seq is already drawn (``Store.add_job_soon``).
INSERT_SQL = f"INSERT INTO jobs ({JOB_COLUMNS}) VALUES ({', '.join('?' * (JOB_COLUMNS.count(',') + 1))})"


def save_params(job: Job) -> tuple[Any, ...]:
    return (
        job.seq, job.priority, str(job.state), job.retries, int(job.retry_on_interrupt),
        int(job.force), job.attempts, job.started_at, job.finished_at, job.exit_code,
        job.error, job.log_path, job.held_reason, job.pid, job.pid_start,
        dumps(job.meta) if job.meta else "{}", job.id,
    )  # fmt: skip


# Whether an id is in use (``Store.add_job_soon`` checks before it defers an insert).
TAKEN_SQL = "SELECT 1 FROM jobs WHERE id = ?"
# The three writes of every attempt, each naming only the columns it changes (a full
# SAVE_SQL binds 17 values and costs a third more per commit).
START_SQL = (
    "UPDATE jobs SET state = 'running', attempts = ?, started_at = ?, finished_at = NULL,"
    " exit_code = NULL, error = NULL, held_reason = NULL, pid = NULL, pid_start = NULL,"
    " log_path = ? WHERE id = ?"
)
PID_SQL = "UPDATE jobs SET pid = ?, pid_start = ? WHERE id = ?"
END_SQL = (  # the attempt's row is the job's row until the job starts over
    "UPDATE jobs SET state = ?, finished_at = ?, exit_code = ?, error = ?, pid = ?,"
    " pid_start = ?, meta = ? WHERE id = ?"
)


def start_params(job: Job) -> tuple[Any, ...]:
    return (job.attempts, job.started_at, job.log_path, job.id)


def pid_params(job: Job) -> tuple[Any, ...]:
    return (job.pid, job.pid_start, job.id)


def end_params(job: Job) -> tuple[Any, ...]:
    meta = dumps(job.meta) if job.meta else "{}"
    return (str(job.state), job.finished_at, job.exit_code, job.error, job.pid, job.pid_start,
            meta, job.id)  # fmt: skip


def is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    text = str(exc)
    return "locked" in text or "busy" in text


# New ids drawn when a job's random id is taken (31**6 ids: among 100k jobs, a new one
# meets an old id once in ~9,000 inserts).
ID_TRIES = 20


def id_taken(exc: sqlite3.IntegrityError, job: Job) -> bool:
    """Whether inserting ``job`` failed because its id is taken; if so it gets a new one
    (its log path follows), ready to be inserted again."""
    if "jobs.id" not in str(exc):
        return False
    renew_id(job)
    return True


def renew_id(job: Job) -> None:
    """A new random id for ``job``; its log path follows."""
    old = job.id
    job.id = new_job_id()
    if job.log_path and job.log_path.endswith(f"/{old}.log"):
        job.log_path = job.log_path[: -len(old) - 4] + f"{job.id}.log"


def add_job_now(path: Path, job: Job, synchronous: str = "normal") -> Job | None:
    """Insert ``job`` with plain sqlite3, committed on return; None when the database is
    missing or not at this version's schema (the async ``Store`` creates or migrates it)."""
    if not path.exists():
        return None
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            return None
        conn.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
        for attempt in range(ID_TRIES):
            params = job_params(job)
            try:
                job.seq = int(conn.execute(ADD_SQL, (params[0], 1, *params[2:])).fetchone()[0])
                return job
            except sqlite3.IntegrityError as exc:
                if attempt == ID_TRIES - 1 or not id_taken(exc, job):
                    raise
        raise AssertionError("unreachable")
    finally:
        conn.close()
