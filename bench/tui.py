"""Console speed with 10,000 finished and 1,000 queued jobs (printed, not asserted).

Targets: idle CPU <= 2% of a core, RSS <= 150 MB, first paint <= 1 s, key -> effect
<= 100 ms. The baseline is an empty Textual app measured the same way in the same run.

    .venv/bin/python bench/tui.py
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


async def seed(home: Path) -> None:
    from console.core import paths
    from console.core.jobs import new_job
    from console.core.models import JobState, Lane
    from console.core.store import Store

    paths.ensure_home(home)
    store = await Store.open(paths.db_path(home))
    now = time.time()
    for i in range(11_000):
        job = new_job(["true"], lane="local" if i % 2 else "remote", now=now - 20_000 + i)
        if i < 10_000:
            job.state, job.started_at, job.finished_at, job.exit_code = JobState.SUCCEEDED, now - 100, now - 99, 0
        await store.add_job(job)
        if i < 10_000:
            await store.save_job(job)
    await store.set_paused(list(Lane), True)  # the 1,000 queued stay queued
    await store.close()


async def measure(app, ready, key_effect) -> dict[str, float]:  # type: ignore[no-untyped-def]
    proc = psutil.Process()
    t0 = time.perf_counter()
    async with app.run_test(size=(120, 40)) as pilot:
        while not ready():
            await asyncio.sleep(0.005)
        first_paint = time.perf_counter() - t0
        await pilot.pause(1.0)
        c0, w0 = proc.cpu_times(), time.perf_counter()
        await asyncio.sleep(5.0)
        c1, w1 = proc.cpu_times(), time.perf_counter()
        idle = ((c1.user + c1.system) - (c0.user + c0.system)) / (w1 - w0) * 100
        key_ms = await key_effect(pilot)
        rss = proc.memory_info().rss / 2**20
    return {"first_paint_s": first_paint, "idle_cpu_pct": idle, "rss_mb": rss, "key_ms": key_ms}


async def main() -> None:
    from textual.app import App

    class Empty(App[None]):
        pass

    async def no_key(pilot) -> float:  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        await pilot.press("x")
        return (time.perf_counter() - t) * 1000

    base = await measure(Empty(), lambda: True, no_key)

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        os.environ["TWOLANE_HOME"] = tmp
        os.environ["TWOLANE_CONFIG"] = str(home / "none.toml")
        await seed(home)
        from console.tui.app import build_app

        app = build_app(home=home)

        def ready() -> bool:
            return app.session is not None and app.is_running and app.main.table.row_count > 0

        async def lane_key(pilot) -> float:  # type: ignore[no-untyped-def]
            t = time.perf_counter()
            await pilot.press("l")
            while app.main.table.lane_filter != "local":
                await asyncio.sleep(0.001)
            await pilot.pause()
            return (time.perf_counter() - t) * 1000

        ours = await measure(app, ready, lane_key)
    print(f"{'metric':<16}{'empty app':>12}{'twolane':>12}{'ratio':>8}  target")
    targets = {"first_paint_s": "<= 1 s", "idle_cpu_pct": "<= 2%", "rss_mb": "<= 150 MB", "key_ms": "<= 100 ms"}
    for key, target in targets.items():
        ratio = ours[key] / base[key] if base[key] else float("nan")
        print(f"{key:<16}{base[key]:>12.2f}{ours[key]:>12.2f}{ratio:>8.1f}  {target}")


if __name__ == "__main__":
    asyncio.run(main())
