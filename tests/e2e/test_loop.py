"""A real `twolane serve` runs on uvloop when uvloop is installed, and on asyncio's own loop
with ``owner.loop = "asyncio"``; on either, the gateway answers through a fake upstream,
shell jobs started both ways (posix_spawn, Popen) are reaped, and SIGTERM stops it cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from console.client import owner_client
from tests.conftest import run_twolane, serving
from tests.fakes.upstream import FakeUpstream
from tests.helpers import until_sync

pytestmark = pytest.mark.e2e


def _states(home: Path) -> dict[str, str]:
    client = owner_client(home, timeout=5)
    assert client is not None
    return {j["id"]: j["state"] for j in client.list()}


def _serve_and_check(home: Path, monkeypatch: pytest.MonkeyPatch, loop: str | None) -> str:
    """Start an owner (``owner.loop`` = ``loop``, unset: the default), exercise it, stop it;
    return the loop its /health reported."""
    if loop is not None:
        monkeypatch.setenv("TWOLANE__OWNER__LOOP", loop)
    with FakeUpstream(kind="openai", models=["gpt-fake"]).in_thread() as fake:
        monkeypatch.setenv("TWOLANE__UPSTREAMS", f'[{{name = "fake", kind = "openai", base_url = '
                           f'"{fake.url}/v1", lane = "remote", models = ["*"]}}]')  # fmt: skip
        with serving(home) as proc:
            until_sync(lambda: owner_client(home, timeout=5) is not None, what="owner answers")
            client = owner_client(home, timeout=5)
            assert client is not None
            health = client.ping()
            reply = httpx.post(health["gateway"] + "/v1/chat/completions", timeout=30,
                               json={"model": "gpt-fake", "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
            assert reply.status_code == 200, reply.text
            assert fake.requests == 1
            spawned = client.add({"command": ["true"], "lane": "local"})["id"]  # posix_spawn
            added = run_twolane("add", "--lane", "local", "--", "true")  # a cwd: Popen
            assert added.returncode == 0, added.stderr
            ids = {spawned, added.stdout.strip()}
            until_sync(lambda: all(_states(home).get(i) == "succeeded" for i in ids),
                       what="both shell jobs succeeded")  # fmt: skip
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=30)
            assert proc.returncode == 0, out
            assert f"(pid {proc.pid}, {health['loop']})" in out  # the start line names it too
            return str(health["loop"])


def test_owner_runs_on_uvloop_when_installed(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("uvloop")
    assert _serve_and_check(home, monkeypatch, None) == "uvloop"


def test_owner_loop_asyncio_gives_the_stock_loop(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _serve_and_check(home, monkeypatch, "asyncio") == "asyncio"


def test_without_uvloop_the_owner_falls_back_to_asyncio(tmp_path: Path) -> None:
    """uvloop that cannot be imported: the default loop choice runs asyncio's loop."""
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "uvloop.py").write_text("raise ImportError('no uvloop here')\n")
    code = ("import asyncio\n"
            "from console import eventloop\n"
            "async def main():\n"
            "    return eventloop.loop_name()\n"
            "print(eventloop.run(main(), 'uvloop'))\n")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(blocker)})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "asyncio"


def test_a_bad_loop_choice_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWOLANE__OWNER__LOOP", "trio")
    done = run_twolane("serve")
    assert done.returncode == 2
    assert "owner.loop" in done.stderr and "trio" in done.stderr
    assert "never awaited" not in done.stderr
    shown = json.loads(run_twolane("config", "show", "--json").stdout)["owner.loop"]
    assert shown == {"value": "trio", "source": "env:TWOLANE__OWNER__LOOP"}
