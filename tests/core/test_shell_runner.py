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
import pytest

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


async def test_spawned_jobs_get_default_signals_their_path_and_a_clear_not_found(tmp_path: Path):
    """Jobs start through posix_spawn where the pidfd works: the program is found on the
    job's own PATH (found again when it moves), SIGPIPE is back at its default (Python
    ignores it, and an ignored signal survives exec), and a missing program fails with
    FileNotFoundError naming it."""
    from console.core.runners import child

    if not child.HAS_PIDFD:
        pytest.skip("posix_spawn is used with a pidfd (Linux 5.3+)")
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    out = tmp_path / "out.log"
    prog = first / "where-am-i"
    prog.write_text("#!/bin/sh\necho \"$0\"; grep SigIgn /proc/self/status\n")
    prog.chmod(0o755)
    env = {"PATH": f"{first}:{second}:/usr/bin:/bin"}
    with open(out, "ab") as log:  # noqa: ASYNC230 - a local file, before anything runs
        assert await (await child.spawn(["where-am-i"], stdout=log, stderr=log, cwd=None, env=env)).wait() == 0
        prog.rename(second / "where-am-i")  # moved since it was found
        assert await (await child.spawn(["where-am-i"], stdout=log, stderr=log, cwd=None, env=env)).wait() == 0
        with pytest.raises(FileNotFoundError) as missing:
            await child.spawn(["no-such-program-x"], stdout=log, stderr=log, cwd=None, env=env)
    assert missing.value.filename == "no-such-program-x"
    lines = out.read_text().splitlines()
    assert lines[0] == str(first / "where-am-i") and lines[2] == str(second / "where-am-i")
    for line in (lines[1], lines[3]):
        ignored = int(line.split()[1], 16)
        assert not ignored & (1 << (signal.SIGPIPE - 1)), line


async def test_a_pipeline_job_ends_when_its_reader_does(tmp_path: Path):
    """`yes | head -1` ends: yes dies of SIGPIPE once head exits."""
    job = jobs.new_job(["/bin/sh", "-c", "yes | head -n 1; echo done"])
    ctx = RunContext(tmp_path / "job.log", 0.5, _no_pid, lambda facts: None)
    outcome = await asyncio.wait_for(ShellRunner().run(job, ctx), 60)
    assert outcome.exit_code == 0
    assert (tmp_path / "job.log").read_text() == "y\ndone\n"


async def _no_pid(pid: int, start: float | None) -> None:
    return None
