"""Real owners, real jobs, real kill -9: nothing accepted is lost, the database stays sound,
lanes never overlap, and a process group left alive by a dead owner is not run twice."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import run_twolane
from tests.helpers import until_sync

pytestmark = pytest.mark.e2e

STAMP = textwrap.dedent(
    """
    import os, sys, time
    name, lane, path, dur = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    with open(path, "a") as f: f.write(f"{name} {lane} start {time.time()} {os.getpid()}\\n")
    time.sleep(dur)
    with open(path, "a") as f: f.write(f"{name} {lane} end {time.time()} {os.getpid()}\\n")
    """
)


def start_owner(home: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "console", "serve"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    until_sync(lambda: _answers(home) or proc.poll() is not None, what="owner socket")
    assert proc.poll() is None
    return proc


def _answers(home: Path) -> bool:
    from console.client import owner_client

    return owner_client(home, timeout=2) is not None


def add(*args: str) -> str:
    result = run_twolane("add", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def jobs_in_db(home: Path) -> dict[str, str]:
    with sqlite3.connect(home / "twolane.db") as db:
        return dict(db.execute("SELECT id, state FROM jobs"))


def test_kill_9_at_random_moments_loses_nothing(home: Path, tmp_path: Path):
    script = tmp_path / "stamp.py"
    script.write_text(STAMP)
    stamps = tmp_path / "stamps.txt"
    rng = random.Random(1234)
    accepted: list[str] = []
    owner = start_owner(home)
    for round_ in range(3):
        for i in range(6):
            lane = "local" if i % 2 else "remote"
            accepted.append(add("--lane", lane, "--retry-on-interrupt", "--", sys.executable,
                                str(script), f"j{round_}-{i}", lane, str(stamps), "0.15"))  # fmt: skip
        time.sleep(rng.uniform(0.05, 0.6))
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        # With the owner dead, the CLI writes straight to the database.
        accepted.append(add("--lane", "remote", "--", "true"))
        with sqlite3.connect(home / "twolane.db") as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert set(accepted) <= set(jobs_in_db(home))
        owner = start_owner(home)
    try:
        result = run_twolane("wait", *accepted, "--timeout", "120", timeout=180)
        states = jobs_in_db(home)
        assert result.returncode == 0, (result.stdout, result.stderr, states)
        assert all(states[j] == "succeeded" for j in accepted)
    finally:
        owner.send_signal(signal.SIGTERM)
        assert owner.wait(timeout=30) == 0

    # Lanes never overlapped, across all the crashes (orphans finish on their own).
    spans: dict[tuple[str, str], dict[str, float]] = {}
    for line in stamps.read_text().splitlines():
        name, lane, what, at, pid = line.split()
        spans.setdefault((name, pid), {"lane": lane == "local"})[what] = float(at)
    local = sorted((s["start"], s["end"]) for s in spans.values() if s["lane"] and "end" in s)
    for (_, e1), (s2, _) in zip(local, local[1:], strict=False):
        assert e1 <= s2 + 0.01, "two local jobs overlapped"


def test_orphan_left_by_dead_owner_is_reported_and_not_run_twice(home: Path, tmp_path: Path):
    marker = tmp_path / "runs"
    owner = start_owner(home)
    job_id = add("--retry-on-interrupt", "--", "sh", "-c",
                 f"echo run $(date +%s.%N) >> {marker}; sleep 2; echo end $(date +%s.%N) >> {marker}")
    until_sync(lambda: marker.exists(), what="job to start")
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    other = add("--", "sh", "-c", f"echo other $(date +%s.%N) >> {marker}")
    owner = start_owner(home)
    try:
        shown = json.loads(run_twolane("show", job_id, "--json").stdout)
        assert shown["state"] == "queued"
        assert "waiting for process group" in shown["held_reason"]
        assert [a["state"] for a in shown["attempts_log"]] == ["interrupted"]
        violations = json.loads(run_twolane("violations", "--json").stdout)
        assert any(v["rule"] == "orphan_process" and job_id in v["job_ids"] for v in violations)
        status = json.loads(run_twolane("status", "--json").stdout)
        assert status["local"]["running"] == 1  # the orphan holds the local slot
        # Once the orphan is gone, the job runs again: never beside itself, and the other
        # local job never beside the orphan.
        result = run_twolane("wait", job_id, other, "--timeout", "60", timeout=90)
        assert result.returncode == 0, result.stdout + result.stderr
        events = [line.split() for line in marker.read_text().splitlines()]
        assert [e[0] for e in events][:2] == ["run", "end"]  # the orphan finished first
        assert sorted(e[0] for e in events[2:]) == ["end", "other", "run"]
    finally:
        owner.send_signal(signal.SIGTERM)
        owner.wait(timeout=30)


def test_clean_stop_records_interrupted_and_leaves_no_orphan(home: Path, tmp_path: Path):
    pidfile = tmp_path / "child.pid"
    owner = start_owner(home)
    job_id = add("--", "sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait")
    until_sync(lambda: pidfile.exists() and pidfile.read_text().strip() != "", what="child")
    child = int(pidfile.read_text())
    owner.send_signal(signal.SIGTERM)
    assert owner.wait(timeout=30) == 0
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE
    assert jobs_in_db(home)[job_id] == "interrupted"
    assert not (home / "control.sock").exists()
    assert os.path.exists(home / "twolane.db")
