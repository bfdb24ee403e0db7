"""Shell jobs: one process group each, output to the job's log, group-wide cancel.

Cancel and timeout send SIGTERM to the whole process group, then SIGKILL after the
grace period, and wait until the group is gone, so no child outlives its job.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

import psutil

from console.core.models import Job, JobState
from console.core.runners.base import Outcome, RunContext
from console.core.runners.child import Child, spawn

_BOOT_TIME: float | None = None
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_start_time(pid: int) -> float | None:
    """When ``pid`` started (seconds since the epoch), as psutil's ``create_time`` gives it.

    Read once per job, on the loop thread, while the job's process starts: on Linux one
    read of /proc/<pid>/stat, with the boot time read once per process (psutil reads
    /proc/stat as well each time, a tenth of the scheduler's time per job in the drain
    benchmark)."""
    global _BOOT_TIME
    if sys.platform.startswith("linux"):
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            return None
        # The command name (field 2) may hold spaces and parentheses: split after it.
        fields = stat[stat.rindex(b")") + 2 :].split()
        if _BOOT_TIME is None:
            _BOOT_TIME = psutil.boot_time()
        return _BOOT_TIME + int(fields[19]) / _CLOCK_TICKS
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A group whose only members are zombies still answers; look closer.
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
            continue
    return False


# How far a recorded start may be from the kernel's: the runner records the wall clock
# just before the spawn (no /proc read on the job's critical path), and the kernel's
# figure rests on a boot time rounded down to a whole second.
START_TOLERANCE = 2.0


def pid_matches(pid: int, start: float | None) -> bool:
    """Is ``pid`` still the process that started at ``start`` (not a recycled pid)?"""
    now = process_start_time(pid)
    if now is None:
        return False
    return start is None or abs(now - start) < START_TOLERANCE


def find_job_group(job_id: str) -> tuple[int, float | None] | None:
    """(pid, start time) of the process leading job ``job_id``'s group, found by the
    ``TWOLANE_JOB_ID`` its environment carries; for a job whose owner died before the
    pid was on disk. None when no such leader runs."""
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.pid != os.getpgid(proc.pid):  # only a group's leader is the job itself
                continue
            if proc.environ().get("TWOLANE_JOB_ID") != job_id:
                continue
        except (psutil.Error, OSError):
            continue
        return proc.pid, process_start_time(proc.pid)
    return None


async def terminate_group(pgid: int, grace: float, proc: Child | None = None) -> None:
    """SIGTERM the group, wait up to ``grace`` seconds, then SIGKILL what is left."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(proc.wait(), timeout=min(0.05, grace))
        if not group_alive(pgid):
            return
        await asyncio.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    if proc is not None:
        await proc.wait()
    for _ in range(100):  # children reparented to init take a moment to be reaped
        if not group_alive(pgid):
            return
        await asyncio.sleep(0.02)


class ShellRunner:
    """Runs ``job.spec.argv`` (or ``job.spec.shell`` through ``/bin/sh -c``)."""

    async def run(self, job: Job, ctx: RunContext) -> Outcome:
        spec = job.spec
        env = _job_env(spec.env, job.id)
        cwd = spec.cwd or None
        log = _open_log(ctx.log_path, job)
        try:
            argv = ["/bin/sh", "-c", spec.shell] if spec.shell is not None else spec.argv
            started = time.time()  # at most a spawn's time before the kernel's start time
            try:
                proc = await spawn(argv, stdout=log, stderr=log, cwd=cwd, env=env)
            except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
                msg = f"cannot start: {exc.strerror or exc}: {exc.filename or spec.display()}"
                os.write(log, f"twolane: {msg}\n".encode())
                return Outcome(JobState.FAILED, exit_code=127, error=msg)
        finally:
            os.close(log)  # the child holds its own copy
        pgid = proc.pid  # start_new_session: the child leads its own group
        try:
            # Inside the guard: a cancel that lands while the pid is being recorded must
            # still take the group down.
            await ctx.on_started(proc.pid, started)
            if spec.timeout:
                try:
                    code = await asyncio.wait_for(proc.wait(), timeout=spec.timeout)
                except TimeoutError:
                    await terminate_group(pgid, ctx.kill_grace, proc)
                    return Outcome(JobState.FAILED, exit_code=proc.returncode, error="timeout")
            else:
                code = await proc.wait()
        except asyncio.CancelledError:
            await asyncio.shield(terminate_group(pgid, ctx.kill_grace, proc))
            raise
        # The leader is gone; anything it left in its group goes with it.
        if group_alive(pgid):
            await terminate_group(pgid, ctx.kill_grace)
        if code == 0:
            return Outcome(JobState.SUCCEEDED, exit_code=0)
        if code < 0:
            return Outcome(JobState.FAILED, exit_code=code, error=f"killed by signal {-code}")
        return Outcome(JobState.FAILED, exit_code=code, error=f"exit code {code}")


def _job_env(overrides: dict[str, str], job_id: str) -> dict[bytes, bytes]:
    """The owner's environment, the job's overrides, and ``TWOLANE_JOB_ID``, as bytes.

    Bytes all the way: a str copy of ``os.environ`` decodes every variable and Popen
    encodes them again, about a tenth of a millisecond a job."""
    data = getattr(os.environ, "_data", None)  # POSIX: the bytes behind os.environ
    env = dict(data) if isinstance(data, dict) else dict(os.environb)
    for name, value in overrides.items():
        env[os.fsencode(name)] = os.fsencode(value)
    env[b"TWOLANE_JOB_ID"] = job_id.encode()
    return env


def prepare_log(path: Path) -> None:
    """Create a job's (empty) log ahead of its start, off the path from one job to the
    next: creating a file is the slowest step of a start on a busy disk."""
    os.close(_append_fd(path))


def _append_fd(path: Path) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
    try:
        return os.open(path, flags, 0o644)
    except FileNotFoundError:  # the logs dir was removed while the owner ran
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, flags, 0o644)


def _open_log(path: Path, job: Job) -> int:
    """The job's log, opened for appending (a descriptor: the child gets it as stdout)."""
    fd = _append_fd(path)
    if job.attempts > 1:
        os.write(fd, f"\n--- twolane: attempt {job.attempts} ---\n".encode())
    return fd
