"""The owner's store copies the WAL into the database in the background (a second
connection in a worker thread), not inside whichever commit crosses SQLite's threshold."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.core import jobs as jobmod
from console.core import store as storemod
from console.core.models import Lane
from console.core.store import Store
from tests.helpers import until


async def _fill(store: Store, n: int) -> None:
    for i in range(n):
        await store.add_job(jobmod.new_job(["true"], lane=Lane.LOCAL, name=f"j{i}"))


async def test_background_checkpoints_move_the_wal_into_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storemod, "CHECKPOINT_INTERVAL", 0.01)
    monkeypatch.setattr(storemod, "CHECKPOINT_WAL_BYTES", 64 * 1024)
    path = tmp_path / "t.db"
    store = await Store.open(path, background_checkpoints=True)
    try:
        async with store._db.execute("PRAGMA wal_autocheckpoint") as cur:
            assert (await cur.fetchone())[0] == 0  # no checkpoint inside a commit
        before = path.stat().st_size
        await _fill(store, 300)
        # In WAL mode only a checkpoint writes pages into the database file itself.
        await until(lambda: path.stat().st_size > before, what="a background checkpoint")
        assert len(await store.list_jobs()) == 300
    finally:
        await store.close()


async def test_a_store_without_them_keeps_sqlites_own(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "t.db")
    try:
        async with store._db.execute("PRAGMA wal_autocheckpoint") as cur:
            assert (await cur.fetchone())[0] == 1000
        assert store._checkpoints is None
    finally:
        await store.close()
