"""The first frame shows what the database holds, before the session (owner start-up or
attaching) is ready; the session's own snapshot then takes over."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from console.core import config, paths
from console.core.jobs import new_job
from console.core.models import JobState, Lane
from console.core.store import SCHEMA_VERSION, Store
from console.tui.app import TwolaneApp, build_app, preload
from console.tui.screens.main import MainScreen
from console.tui.session import stored_snapshot
from console.tui.widgets.lanebar import LaneBar
from tests.helpers import until
from tests.tui.fakes import FakeSession


async def seed(home: Path, finished: int, queued: int) -> list[str]:
    """``finished`` succeeded jobs then ``queued`` queued ones; both lanes paused."""
    paths.ensure_home(home)
    store = await Store.open(paths.db_path(home))
    now, ids = time.time(), []
    for i in range(finished + queued):
        job = new_job(["true"], lane="local" if i % 2 else "remote", now=now - 1_000 + i)
        await store.add_job(job)
        if i < finished:
            job.state, job.started_at, job.finished_at, job.exit_code = (
                JobState.SUCCEEDED,
                now - 5,
                now - 4 + i,
                0,
            )
            await store.save_job(job)
        ids.append(job.id)
    await store.set_paused([Lane.LOCAL], True)
    await store.close()
    return ids


async def test_stored_snapshot_reads_what_the_owner_would_show(home: Path) -> None:
    ids = await seed(home, finished=250, queued=7)
    snap = stored_snapshot(home, config.load())
    assert snap is not None
    shown = {j["id"] for j in snap["jobs"]}
    assert shown == set(ids[50:])  # the newest 200 finished and every queued job
    assert snap["status"]["local"] == {
        "running": 0,
        "queued": 3,
        "cap": 1,
        "paused": True,
        "held": None,
    }
    assert snap["status"]["remote"]["queued"] == 4 and not snap["status"]["remote"]["paused"]


async def test_no_database_or_another_schema_gives_nothing_and_changes_nothing(home: Path) -> None:
    assert stored_snapshot(home, config.load()) is None
    assert not paths.db_path(home).exists()
    await seed(home, finished=1, queued=1)
    with sqlite3.connect(paths.db_path(home)) as db:
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION - 1}")
    assert stored_snapshot(home, config.load()) is None
    with sqlite3.connect(paths.db_path(home)) as db:  # read only: never migrated
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION - 1


def test_the_first_frame_shows_stored_jobs_before_the_session_opens(home: Path) -> None:
    ids = asyncio.run(seed(home, finished=3, queued=2))
    opened = asyncio.Event()
    session = FakeSession(home)

    async def slow_factory() -> FakeSession:
        await opened.wait()
        return session

    app: TwolaneApp = build_app(home=home, config=config.load(), session_factory=slow_factory)
    preload(app, home)

    async def check() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            await until(lambda: isinstance(app.screen, MainScreen))
            await pilot.pause()
            assert app.session is None
            assert set(app.main.table.ids) == set(ids)
            bar = str(app.main.query_one(LaneBar).render())
            assert "starting" in bar and "local paused · 1 queued" in bar
            await pilot.press("l")  # the queue takes keys meanwhile
            assert app.main.table.lane_filter == "local"
            opened.set()  # the session's snapshot (the fake's jobs) replaces the stored one
            await until(lambda: "aaa111" in app.main.table.ids, what="session snapshot")
            assert not set(ids) & set(app.main.table.ids)

    asyncio.run(check())
