"""The shell runner on its own: a cancel at any point takes the whole group down."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psutil

from console.core import jobs
from console.core.runners.base import RunContext
from console.core.runners.shell import ShellRunner, group_alive
from tests.helpers import until


async def test_cancel_while_the_pid_is_being_recorded_still_kills_the_group(tmp_path: Path):
    recording = asyncio.Event()
    started: list[int] = []

    async def slow_on_started(pid: int, start: float | None) -> None:
        started.append(pid)
        recording.set()
        await asyncio.sleep(3600)  # the store is slow: the cancel lands here

    pidfile = tmp_path / "child.pid"
    job = jobs.new_job(["/bin/sh", "-c", f"sleep 300 & echo $! > {pidfile}; sleep 300"])
    ctx = RunContext(tmp_path / "job.log", 0.5, slow_on_started, lambda facts: None)
    task = asyncio.create_task(ShellRunner().run(job, ctx))
    await recording.wait()
    await until(lambda: pidfile.exists() and pidfile.read_text().strip() != "", what="grandchild")
    child = int(pidfile.read_text())
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    assert not group_alive(started[0])
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE
