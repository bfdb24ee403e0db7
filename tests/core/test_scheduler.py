"""The scheduler with real shell processes, in one event loop (the in-process owner)."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from console.core import jobs as jobmod
from console.core import paths
from console.core.errors import Conflict, NotFound, OwnerRunning, UserError
from console.core.models import JobState, Lane
from console.owner import Owner
from tests.helpers import until

STAMP = textwrap.dedent(
    """
    import sys, time
    name, lane, path, dur = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    with open(path, "a") as f: f.write(f"{name} {lane} start {time.time()}\\n")
    time.sleep(dur)
    with open(path, "a") as f: f.write(f"{name} {lane} end {time.time()}\\n")
    """
)


def stamp_job(tmp_path: Path, name: str, lane: str, dur: float = 0.15, **kw):
    script = tmp_path / "stamp.py"
    script.write_text(STAMP)
    out = tmp_path / "stamps.txt"
    return jobmod.new_job(
        [sys.executable, str(script), name, lane, str(out), str(dur)], lane=lane, name=name, **kw
    )


def intervals(tmp_path: Path) -> dict[str, tuple[str, float, float]]:
    spans: dict[str, dict[str, float]] = {}
    lanes: dict[str, str] = {}
    for line in (tmp_path / "stamps.txt").read_text().splitlines():
        name, lane, what, at = line.split()
        spans.setdefault(name, {})[what] = float(at)
        lanes[name] = lane
    return {n: (lanes[n], s["start"], s["end"]) for n, s in spans.items()}


def max_overlap(spans: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    best = cur = 0
    for _, delta in events:
        cur += delta
        best = max(best, cur)
    return best


async def all_done(owner: Owner, ids: list[str]) -> bool:
    for job_id in ids:
        if not (await owner.scheduler.get(job_id)).finished:
            return False
    return True


async def test_lanes_serial_bounded_and_never_cross_mixed(owner: Owner, tmp_path: Path):
    owner.scheduler.set_concurrency(3)
    await owner.scheduler.pause([Lane.LOCAL, Lane.REMOTE])  # enqueue everything first
    ids = []
    for i in range(4):
        ids.append((await owner.scheduler.submit(stamp_job(tmp_path, f"l{i}", "local"))).id)
    for i in range(8):
        ids.append((await owner.scheduler.submit(stamp_job(tmp_path, f"r{i}", "remote"))).id)
    await owner.scheduler.resume([Lane.LOCAL, Lane.REMOTE])
    await until(lambda: all_done(owner, ids), timeout=60, what="all jobs to finish")

    spans = intervals(tmp_path)
    assert len(spans) == 12
    local = [(s, e) for lane, s, e in spans.values() if lane == "local"]
    remote = [(s, e) for lane, s, e in spans.values() if lane == "remote"]
    assert max_overlap(local) == 1
    assert 1 <= max_overlap(remote) <= 3
    for ls, le in local:
        for rs, re_ in remote:
            assert le <= rs or re_ <= ls, "a local and a remote job overlapped"
    for job_id in ids:
        assert (await owner.scheduler.get(job_id)).state is JobState.SUCCEEDED


async def test_priority_orders_a_lane_and_fifo_within_a_level(owner: Owner, tmp_path: Path):
    sched = owner.scheduler
    await sched.pause([Lane.LOCAL])
    a = await sched.submit(stamp_job(tmp_path, "a", "local", 0.01))
    b = await sched.submit(stamp_job(tmp_path, "b", "local", 0.01, priority=5))
    c = await sched.submit(stamp_job(tmp_path, "c", "local", 0.01))
    d = await sched.submit(stamp_job(tmp_path, "d", "local", 0.01, priority=5))
    await sched.set_priority(c.id, 10)  # reprioritized: takes its new place
    await sched.resume([Lane.LOCAL])
    await until(lambda: all_done(owner, [a.id, b.id, c.id, d.id]), what="jobs")
    order = sorted(intervals(tmp_path).items(), key=lambda kv: kv[1][1])
    assert [name for name, _ in order] == ["c", "b", "d", "a"]


async def test_pause_lets_running_finish_and_starts_nothing(owner: Owner, tmp_path: Path):
    sched = owner.scheduler
    first = await sched.submit(stamp_job(tmp_path, "first", "local", 0.3))
    await until(lambda: first.state is JobState.RUNNING, what="first to run")
    await sched.pause([Lane.LOCAL])
    second = await sched.submit(stamp_job(tmp_path, "second", "local", 0.01))
    await until(lambda: first.finished, what="first to finish")
    assert (await sched.get(second.id)).state is JobState.QUEUED
    assert sched.status()["local"]["paused"] is True
    await sched.resume([Lane.LOCAL])
    await until(lambda: all_done(owner, [second.id]), what="second to run after resume")


def _spawner(tmp_path: Path) -> list[str]:
    # A job that leaves a grandchild behind and ignores nothing: the group must go.
    pidfile = tmp_path / "child.pid"
    return ["/bin/sh", "-c", f"sleep 300 & echo $! > {pidfile}; sleep 300"]


def _child_gone(tmp_path: Path) -> bool:
    pid = int((tmp_path / "child.pid").read_text())
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_cancel_kills_the_whole_process_group(owner: Owner, tmp_path: Path):
    sched = owner.scheduler
    job = await sched.submit(jobmod.new_job(_spawner(tmp_path), lane="local"))
    await until(lambda: (tmp_path / "child.pid").exists() and job.pid is not None, what="start")
    cancelled = await sched.cancel(job.id)
    assert cancelled.state is JobState.CANCELLED
    assert _child_gone(tmp_path)
    assert not psutil.pid_exists(job.pid) or psutil.Process(job.pid).status() == psutil.STATUS_ZOMBIE


async def test_timeout_kills_the_group_and_fails_with_reason(owner: Owner, tmp_path: Path):
    sched = owner.scheduler
    job = await sched.submit(jobmod.new_job(_spawner(tmp_path), lane="remote", timeout=0.5))
    done = await sched.wait_done(job.id)
    assert done.state is JobState.FAILED and done.error == "timeout"
    assert _child_gone(tmp_path)


async def test_sigterm_ignoring_job_is_killed_after_grace(home: Path, tmp_path: Path):
    from console.core import config

    cfg = config.load()
    cfg.set("runner.kill_grace", 0.3)
    own = Owner(home, cfg, extensions=[])
    await own.start()
    try:
        ready = tmp_path / "ready"
        job = await own.scheduler.submit(
            jobmod.new_job(
                ["/bin/sh", "-c", f"trap '' TERM; touch {ready}; while true; do sleep 0.05; done"]
            )
        )
        await until(lambda: ready.exists(), what="trap installed")
        await own.scheduler.cancel(job.id)
        assert job.state is JobState.CANCELLED
        assert not psutil.pid_exists(job.pid) or psutil.Process(job.pid).status() == psutil.STATUS_ZOMBIE
    finally:
        await own.stop()


async def test_retry_reruns_a_failed_attempt_up_to_n_times(owner: Owner, tmp_path: Path):
    counter = tmp_path / "count"
    job = await owner.scheduler.submit(
        jobmod.new_job(["/bin/sh", "-c", f"echo x >> {counter}; exit 7"], retries=2)
    )
    done = await owner.scheduler.wait_done(job.id)
    assert done.state is JobState.FAILED and done.exit_code == 7
    assert done.attempts == 3
    assert len(counter.read_text().splitlines()) == 3
    attempts = await owner.store.attempts(job.id)
    assert [a["state"] for a in attempts] == ["failed"] * 3


async def test_retry_command_requeues_a_finished_job(owner: Owner, tmp_path: Path):
    flag = tmp_path / "ok"
    job = await owner.scheduler.submit(jobmod.new_job(["/bin/sh", "-c", f"test -e {flag}"]))
    assert (await owner.scheduler.wait_done(job.id)).state is JobState.FAILED
    flag.touch()
    await owner.scheduler.retry(job.id)
    done = await owner.scheduler.wait_done(job.id)
    assert done.state is JobState.SUCCEEDED and done.attempts == 2


async def test_job_output_goes_to_its_log(owner: Owner):
    job = await owner.scheduler.submit(
        jobmod.new_job(["/bin/sh", "-c", "echo to-out; echo to-err >&2"], lane="remote")
    )
    await owner.scheduler.wait_done(job.id)
    text = Path(job.log_path).read_text()
    assert "to-out" in text and "to-err" in text


async def test_the_next_jobs_logs_are_created_while_the_lane_runs(owner: Owner, tmp_path: Path):
    """The logs of the jobs next in line are created (empty) while the current one runs;
    a queued job cancelled before its start leaves no empty log behind, and neither do
    the jobs still queued when the owner stops."""
    gate = tmp_path / "go"
    sched = owner.scheduler
    first = await sched.submit(jobmod.new_job(
        ["/bin/sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.02; done"], lane="local"))
    second = await sched.submit(jobmod.new_job(["/bin/sh", "-c", "echo second"], lane="local"))
    third = await sched.submit(jobmod.new_job(["true"], lane="local"))
    logs = paths.logs_dir(owner.home)
    await until(lambda: (logs / f"{third.id}.log").exists(), what="the queued jobs' logs")
    assert (logs / f"{second.id}.log").read_bytes() == b""
    await sched.cancel(second.id)
    assert not (logs / f"{second.id}.log").exists()
    await sched.stop()
    assert not (logs / f"{third.id}.log").exists()  # still queued: made when it starts
    assert (logs / f"{first.id}.log").exists()


async def test_a_job_cancelled_while_its_log_is_being_made_leaves_none(
    owner: Owner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import threading

    from console.core import scheduler as schedmod

    release = threading.Event()
    real = schedmod._create_logs

    def slow_create(folder: str, job_ids: list[str]) -> list[str]:
        release.wait(30)  # a slow disk
        return real(folder, job_ids)

    monkeypatch.setattr(schedmod, "_create_logs", slow_create)
    gate = tmp_path / "go"
    sched = owner.scheduler
    await sched.submit(jobmod.new_job(
        ["/bin/sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.02; done"], lane="local"))
    second = await sched.submit(jobmod.new_job(["true"], lane="local"))
    third = await sched.submit(jobmod.new_job(["true"], lane="local"))
    await until(lambda: bool(sched._preparing), what="a batch of logs under way")
    await sched.cancel(second.id)
    release.set()
    logs = paths.logs_dir(owner.home)
    await until(lambda: not sched._preparing, what="the batch to land")
    assert not (logs / f"{second.id}.log").exists()
    gate.touch()
    await sched.wait_done(third.id)
    assert (logs / f"{third.id}.log").exists()


async def test_missing_program_fails_cleanly(owner: Owner):
    job = await owner.scheduler.submit(jobmod.new_job(["/no/such/program"]))
    done = await owner.scheduler.wait_done(job.id)
    assert done.state is JobState.FAILED and done.exit_code == 127
    assert "/no/such/program" in (done.error or "")


async def test_bad_operations_are_user_errors(owner: Owner):
    sched = owner.scheduler
    with pytest.raises(NotFound):
        await sched.get("zzzzzz")
    job = await sched.submit(jobmod.new_job(["true"]))
    await sched.wait_done(job.id)
    with pytest.raises(Conflict):
        await sched.cancel(job.id)
    with pytest.raises(Conflict):
        await sched.set_priority(job.id, 3)
    with pytest.raises(UserError):
        sched.set_concurrency(0)


async def test_concurrency_changes_while_running(owner: Owner, tmp_path: Path):
    sched = owner.scheduler
    sched.set_concurrency(1)
    ids = [(await sched.submit(stamp_job(tmp_path, f"r{i}", "remote", 0.2))).id for i in range(4)]
    await until(lambda: sched.status()["remote"]["running"] == 1, what="one running")
    sched.set_concurrency(4)
    await until(lambda: sched.status()["remote"]["running"] >= 2, what="more running after raise")
    await until(lambda: all_done(owner, ids), what="all done")


async def test_second_owner_refuses_naming_the_pid(owner: Owner, home: Path):
    from console.core import config

    other = Owner(home, config.load(), extensions=[])
    with pytest.raises(OwnerRunning) as err:
        await other.start()
    assert str(os.getpid()) in str(err.value)


async def test_recovery_marks_running_interrupted_and_requeues_at_head(home: Path):
    from console.core import config, paths
    from console.core.store import Store

    paths.ensure_home(home)
    store = await Store.open(paths.db_path(home))
    first = jobmod.new_job(["true"], name="first", now=1.0)
    crashed = jobmod.new_job(["true"], name="crashed", retry_on_interrupt=True, now=2.0)
    lost = jobmod.new_job(["true"], name="lost", now=3.0)
    for job in (first, crashed, lost):
        await store.add_job(job)
    for job in (crashed, lost):  # as a dead owner would have left them
        job.state, job.attempts, job.started_at = JobState.RUNNING, 1, 5.0
        job.pid, job.pid_start = 999_999_999, 1.0
        await store.save_job(job)
    await store.close()

    own = Owner(home, config.load(), extensions=[])
    # Pause before the owner starts so nothing runs while we look at the order.
    store = await Store.open(paths.db_path(home))
    await store.set_paused([Lane.LOCAL, Lane.REMOTE], True)
    await store.close()
    await own.start()
    try:
        names = [j.name for j in own.scheduler.queued(Lane.LOCAL)]
        assert names == ["crashed", "first"]  # back at the head of its lane
        lost_now = await own.scheduler.get(lost.id)
        assert lost_now.state is JobState.INTERRUPTED and lost_now.attempts == 1
        crashed_now = await own.scheduler.get(crashed.id)
        assert crashed_now.attempts == 1
        assert [a["state"] for a in await own.store.attempts(crashed.id)] == ["interrupted"]
    finally:
        await own.stop()


async def test_clean_stop_interrupts_running_jobs_and_leaves_no_orphan(home: Path, tmp_path: Path):
    from console.core import config

    own = Owner(home, config.load(), extensions=[])
    await own.start()
    job = await own.scheduler.submit(jobmod.new_job(_spawner(tmp_path), lane="local"))
    again = await own.scheduler.submit(
        jobmod.new_job(["sleep", "300"], lane="local", retry_on_interrupt=True)
    )
    await until(lambda: (tmp_path / "child.pid").exists() and job.pid is not None, what="start")
    stopped = await own.stop()
    assert [j.id for j in stopped] == [job.id]
    assert job.state is JobState.INTERRUPTED
    assert _child_gone(tmp_path)
    # The lease is free again, and the next owner sees the same states.
    own2 = Owner(home, config.load(), extensions=[])
    await own2.start()
    try:
        assert (await own2.scheduler.get(job.id)).state is JobState.INTERRUPTED
        assert (await own2.scheduler.get(again.id)).state in (JobState.QUEUED, JobState.RUNNING)
    finally:
        await own2.stop()


async def test_owner_adopts_jobs_written_directly_to_the_database(owner: Owner):
    from console.core import paths
    from console.core.direct import DirectService
    from console.core.store import Store

    store = await Store.open(paths.db_path(owner.home))
    try:
        job = await DirectService(store).submit(jobmod.new_job(["true"], lane="remote"))
    finally:
        await store.close()
    await until(lambda: all_done(owner, [job.id]), what="the owner to run a direct write")
    assert (await owner.scheduler.get(job.id)).state is JobState.SUCCEEDED


async def test_one_commit_ends_a_job_and_starts_the_next(owner: Owner, monkeypatch: pytest.MonkeyPatch):
    """In a busy lane the end of one job and the `running` of the next share a
    transaction; nothing starts before its `running` row is committed."""
    store = owner.store
    commits: list[list[tuple[str, str]]] = []
    real = store.commit

    def what(sql: str) -> str:
        if "state = 'running'" in sql:
            return "start"
        return "pid" if sql.startswith("UPDATE jobs SET pid") else "end"

    async def spy(*writes):  # type: ignore[no-untyped-def]
        row = await real(*writes)
        commits.append([(what(sql), params[-1]) for sql, params in writes
                        if sql.startswith("UPDATE jobs")])  # fmt: skip
        return row

    monkeypatch.setattr(store, "commit", spy)
    sched = owner.scheduler
    await sched.pause([Lane.LOCAL])
    a, b, c = [await sched.submit(jobmod.new_job(["true"], lane="local")) for _ in range(3)]
    commits.clear()
    await sched.resume([Lane.LOCAL])
    await sched.wait_done(c.id)
    lifecycle = [batch for batch in commits if batch and batch[0][0] != "pid"]
    assert lifecycle == [
        [("start", a.id)],
        [("end", a.id), ("start", b.id)],
        [("end", b.id), ("start", c.id)],
        [("end", c.id)],
    ]
    for job in (a, b, c):
        stored = await store.get_job(job.id)
        assert stored.state is JobState.SUCCEEDED and stored.pid and stored.attempts == 1
        assert [att["state"] for att in await store.attempts(job.id)] == ["succeeded"]


async def test_a_cancel_after_the_job_ended_does_not_cut_its_end_short(owner: Owner, tmp_path: Path):
    """While a job's end waits for the database (another process holds its lock), a
    cancel is too late: the job ends as it ended and its end is recorded."""
    import sqlite3

    sched = owner.scheduler
    go = tmp_path / "go"
    job = await sched.submit(jobmod.new_job(["/bin/sh", "-c", f"while [ ! -e {go} ]; do sleep 0.02; done"]))
    await until(lambda: job.pid is not None, what="running")
    other = sqlite3.connect(paths.db_path(owner.home), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # a CLI writing with no owner... holds the lock
    try:
        go.touch()
        await until(lambda: job.id in sched._finishing, what="the end waiting for the lock")
        cancelling = asyncio.ensure_future(sched.cancel(job.id))
        await asyncio.sleep(0.05)
        assert not cancelling.done()  # it waits for the end to land
    finally:
        other.execute("COMMIT")
        other.close()
    await cancelling
    done = await sched.wait_done(job.id)
    assert done.state is JobState.SUCCEEDED
    assert (await owner.store.get_job(job.id)).state is JobState.SUCCEEDED
    after = await sched.submit(jobmod.new_job(["true"]))  # the lane is free again
    assert (await sched.wait_done(after.id)).state is JobState.SUCCEEDED


async def test_a_started_jobs_pid_is_on_disk_soon_or_with_its_end(owner: Owner, tmp_path: Path):
    sched = owner.scheduler
    quick = await sched.submit(jobmod.new_job(["true"]))
    await sched.wait_done(quick.id)
    stored = await owner.store.get_job(quick.id)
    assert stored.pid == quick.pid and stored.pid_start == quick.pid_start
    assert (await owner.store.attempts(quick.id))[0]["pid"] == quick.pid
    go = tmp_path / "go"
    slow = await sched.submit(jobmod.new_job(["/bin/sh", "-c", f"while [ ! -e {go} ]; do sleep 0.02; done"]))
    await until(lambda: slow.pid is not None, what="started")

    async def on_disk() -> bool:
        return (await owner.store.get_job(slow.id)).pid == slow.pid

    await until(on_disk, what="the pid of a running job on disk")
    go.touch()
    await sched.wait_done(slow.id)


async def test_recovery_finds_a_group_whose_pid_was_never_written(home: Path, tmp_path: Path):
    """The owner died between a job's start and its pid's write: the next owner finds the
    group by TWOLANE_JOB_ID, reports it and does not run the job beside it."""
    import subprocess

    from console.core import config
    from console.core.store import Store

    paths.ensure_home(home)
    store = await Store.open(paths.db_path(home))
    job = jobmod.new_job(["sleep", "300"], lane="local")
    job.state, job.attempts, job.started_at = JobState.RUNNING, 1, 1.0
    await store.add_job(job)
    await store.close()
    env = {**os.environ, "TWOLANE_JOB_ID": job.id}
    group = subprocess.Popen(["sleep", "300"], env=env, start_new_session=True)  # noqa: ASYNC220
    own = Owner(home, config.load(), extensions=[])
    try:
        await own.start()
        found = await own.store.get_job(job.id)
        assert found.state is JobState.INTERRUPTED and found.pid == group.pid
        assert f"its process group {group.pid} is still alive and was not re-run" in (found.error or "")
        assert own.scheduler.status()["local"]["running"] == 1  # the orphan holds the slot
        assert [v.rule for v in await own.store.list_violations()] == ["orphan_process"]
    finally:
        group.kill()
        group.wait()
        await own.stop()


async def test_the_turn_is_nobodys_once_the_last_job_ends(owner: Owner):
    """An idle owner shows no lane's turn (the lane bar), with no dispatch round needed."""
    sched = owner.scheduler
    for lane in ("local", "remote"):
        job = await sched.submit(jobmod.new_job(["true"], lane=lane))
        assert sched.status()["turn"] == lane
        await sched.wait_done(job.id)
        await until(lambda: sched.status()["turn"] is None, what="the turn to clear")
