"""The shell runner on its own: a cancel at any point takes the whole group down."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import time
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


def test_recorded_start_time_is_psutils_even_for_odd_program_names(tmp_path: Path):
    """The orphan check compares the recorded start with psutil's create_time after a
    crash; a name with spaces and parentheses must not shift the fields read."""
    from console.core.runners.shell import pid_matches, process_start_time

    odd = tmp_path / "a) b (c"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", odd)
    before = time.time()  # what the runner records
    proc = subprocess.Popen([str(odd), "30"])
    try:
        recorded = process_start_time(proc.pid)
        assert recorded == psutil.Process(proc.pid).create_time()
        assert pid_matches(proc.pid, recorded)
        assert pid_matches(proc.pid, before)
        assert not pid_matches(proc.pid, before - 5.0)  # a recycled pid is not the job
    finally:
        proc.kill()
        proc.wait()
    assert process_start_time(proc.pid) is None


async def test_pidfd_and_asyncio_children_behave_alike(tmp_path: Path):
    """Linux watches children with a pidfd; other systems use asyncio's watcher."""
    from console.core.runners.child import HAS_PIDFD, spawn

    modes = [False, True] if HAS_PIDFD else [False]
    for pidfd in modes:
        with open(tmp_path / "out.log", "ab") as log:
            child = await spawn(["sh", "-c", "echo hi; exit 3"], stdout=log, stderr=log,
                                cwd=str(tmp_path), env={"PATH": "/usr/bin:/bin"}, pidfd=pidfd)  # fmt: skip
        assert await child.wait() == 3 and child.returncode == 3
        slow = await spawn(["sleep", "5"], stdout=-3, stderr=-3, cwd=None,
                           env={"PATH": "/usr/bin:/bin"}, pidfd=pidfd)  # fmt: skip
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(slow.wait(), 0.05)  # a caller's timeout...
        assert slow.returncode is None
        os.kill(slow.pid, signal.SIGTERM)
        assert await slow.wait() == -signal.SIGTERM  # ...leaves the exit to be awaited
    assert (tmp_path / "out.log").read_text() == "hi\n" * len(modes)
