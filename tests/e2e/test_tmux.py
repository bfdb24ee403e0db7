"""The real `twolane` in tmux: enqueue from the keyboard, watch it finish, cancel another,
a second window attaches and sees the same, quit cleanly."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from console.client import owner_client
from tests.conftest import run_twolane
from tests.helpers import until_sync

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")]  # fmt: skip


# A tmux server of the test's own (-L): never the developer's sessions, and nobody
# else's `tmux kill-server` ends the test's.
SERVER = f"twolane-test-{os.getpid()}"


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", "-L", SERVER, *args], capture_output=True, text=True,
                          check=False).stdout  # fmt: skip


def jobs() -> list[dict]:
    out = run_twolane("ls", "--json")
    return json.loads(out.stdout) if out.returncode == 0 and out.stdout.strip() else []


def test_console_in_tmux(home: Path, tmp_path: Path) -> None:
    session = f"twolane-e2e-{os.getpid()}"
    env = " ".join(f"{k}={shlex.quote(os.environ[k])}" for k in ("TWOLANE_HOME", "TWOLANE_CONFIG"))
    cmd = f"cd {shlex.quote(os.getcwd())} && {env} {shlex.quote(sys.executable)} -m console"
    tmux("new-session", "-d", "-s", session, "-x", "80", "-y", "24", cmd)
    try:
        until_sync(lambda: "owner" in tmux("capture-pane", "-p", "-t", f"{session}:0"), what="owner console")
        owner = owner_client(home, timeout=5)
        assert owner is not None
        # The console is the owner here: it runs on the owner's loop (owner.loop, uvloop).
        assert owner.ping()["loop"] == ("uvloop" if importlib.util.find_spec("uvloop") else "asyncio")
        tmux("send-keys", "-t", f"{session}:0", "a")
        until_sync(lambda: "Enqueue a job" in tmux("capture-pane", "-p", "-t", f"{session}:0"))
        tmux("send-keys", "-t", f"{session}:0", "-l", "echo e2e-marker")
        tmux("send-keys", "-t", f"{session}:0", "Enter")
        until_sync(lambda: any(j["command"] == "echo e2e-marker" and j["state"] == "succeeded"
                               for j in jobs()), what="keyboard job finished")  # fmt: skip
        until_sync(lambda: "succeeded" in tmux("capture-pane", "-p", "-t", f"{session}:0"))

        tmux("new-window", "-t", session, cmd)
        until_sync(lambda: "attached" in tmux("capture-pane", "-p", "-t", f"{session}:1"), what="attached")
        until_sync(lambda: "succeeded" in tmux("capture-pane", "-p", "-t", f"{session}:1"))

        assert run_twolane("add", "--name", "longone", "--", "sleep", "60").returncode == 0
        until_sync(lambda: any(j["name"] == "longone" and j["state"] == "running" for j in jobs()))
        until_sync(lambda: "longone" in tmux("capture-pane", "-p", "-t", f"{session}:1"))
        for _ in range(5):
            tmux("send-keys", "-t", f"{session}:1", "Up")
        tmux("send-keys", "-t", f"{session}:1", "c")
        until_sync(lambda: "longone" in tmux("capture-pane", "-p", "-t", f"{session}:1")
                   and "(y)" in tmux("capture-pane", "-p", "-t", f"{session}:1"), what="confirm")  # fmt: skip
        tmux("send-keys", "-t", f"{session}:1", "y")
        until_sync(lambda: any(j["name"] == "longone" and j["state"] == "cancelled" for j in jobs()))
        until_sync(lambda: "cancelled" in tmux("capture-pane", "-p", "-t", f"{session}:0"),
                   what="the owner window sees the cancel")  # fmt: skip

        tmux("send-keys", "-t", f"{session}:1", "q")
        until_sync(lambda: "attached" not in tmux("capture-pane", "-p", "-t", f"{session}:1"))
        assert (home / "control.sock").exists()  # leaving an attached console keeps the owner
        tmux("send-keys", "-t", f"{session}:0", "q")
        until_sync(lambda: not (home / "control.sock").exists(), what="owner stopped on quit")
    finally:
        tmux("kill-server")
