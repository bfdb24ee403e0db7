"""Recovery: owner start-up (lease, migrations, recovery, queue load, control socket up)
with 100,000 finished and 1,000 queued jobs in the database, against the floor of
reading those queued rows with plain sqlite3. Target: ready in under 1 s.

    python bench/recovery.py [FINISHED] [QUEUED]
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import temp_home  # noqa: E402


async def make_db(home: Path, finished: int, queued: int) -> None:
    from console.core import paths
    from console.core.store import Store

    paths.ensure_home(home)
    store = await Store.open(paths.db_path(home))
    await store.close()
    spec = json.dumps({"argv": ["true"], "shell": None, "cwd": None, "env": {}, "timeout": None,
                       "extra": {}})  # fmt: skip
    now = time.time()
    rows = []
    for i in range(finished + queued):
        state = "succeeded" if i < finished else "queued"
        lane = "local" if i % 2 else "remote"
        rows.append((f"j{i:07d}", i + 1, f"job {i}", lane, "shell", 0, state, spec, 0, 0, 0,
                     1 if state == "succeeded" else 0, now, now, now if state == "succeeded" else None,
                     0 if state == "succeeded" else None, "{}"))  # fmt: skip
    with sqlite3.connect(paths.db_path(home)) as db:
        db.executemany(
            "INSERT INTO jobs (id, seq, name, lane, kind, priority, state, spec, retries,"
            " retry_on_interrupt, force, attempts, created_at, started_at, finished_at, exit_code,"
            " meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        db.execute("UPDATE lanes SET paused = 1")  # nothing runs while we measure


def floor(home: Path) -> float:
    t0 = time.perf_counter()
    with sqlite3.connect(home / "twolane.db") as db:
        rows = db.execute("SELECT * FROM jobs WHERE state = 'queued' ORDER BY seq").fetchall()
    assert len(rows) > 0
    return time.perf_counter() - t0


async def owner_ready(home: Path) -> float:
    from console.core import config
    from console.owner import Owner

    cfg = config.load()
    t0 = time.perf_counter()
    owner = Owner(home, cfg, extensions=[])
    await owner.start()
    elapsed = time.perf_counter() - t0
    assert len(owner.scheduler.queued()) > 0
    await owner.stop()
    return elapsed


def main() -> None:
    finished = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    queued = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000
    home = temp_home("recovery")
    asyncio.run(make_db(home, finished, queued))
    base = min(floor(home) for _ in range(3))
    ours = min(asyncio.run(owner_ready(home)) for _ in range(3))
    print(f"owner start-up with {finished:,} finished and {queued:,} queued jobs (best of 3)")
    print(f"  sqlite3 read of the queued rows   {base * 1000:8.1f} ms")
    print(f"  twolane owner ready               {ours * 1000:8.1f} ms   ratio {ours / base:.1f}x")
    print("  target: < 1000 ms")


if __name__ == "__main__":
    main()
