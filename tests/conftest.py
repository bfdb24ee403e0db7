"""Shared fixtures: an isolated data dir and config for every test, an in-process owner,
and a way to run the real `twolane` command."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from console.core import config


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own TWOLANE_HOME and an empty config (never the developer's)."""
    home = tmp_path / "home"
    monkeypatch.setenv("TWOLANE_HOME", str(home))
    monkeypatch.setenv("TWOLANE_CONFIG", str(tmp_path / "config.toml"))
    for name in list(os.environ):
        if name.startswith(config.ENV_PREFIX):
            monkeypatch.delenv(name)
    # A shared 2-core CI box runs at load 2-19: the load gate would hold every local job.
    # tests/signals sets its own thresholds.
    monkeypatch.setenv("TWOLANE__GATES__MAX_LOAD_PER_CORE", "1000")
    # Owners started by tests serve their gateway on an ephemeral port, never 11500.
    monkeypatch.setenv("TWOLANE__GATEWAY__PORT", "0")
    return home


@pytest.fixture
def home(isolated_home: Path) -> Path:
    return isolated_home


@pytest.fixture
async def owner(home: Path) -> AsyncIterator[object]:
    """A started in-process owner (no extensions) on the test's data dir."""
    from console.owner import Owner

    cfg = config.load()
    own = Owner(home, cfg, extensions=[])
    await own.start()
    try:
        yield own
    finally:
        await own.stop()


def run_twolane(*args: str, env: dict[str, str] | None = None, timeout: float = 60,
                input: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess (same interpreter, current environment)."""
    return subprocess.run(
        [sys.executable, "-m", "console", *args],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
        input=input, cwd=cwd,
    )  # fmt: skip


@pytest.fixture
def twolane():
    return run_twolane


@contextlib.contextmanager
def serving(home: Path) -> Iterator[subprocess.Popen[str]]:
    """A real `twolane serve` owner on ``home``, stopped with SIGTERM afterwards."""
    from tests.helpers import until_sync

    proc = subprocess.Popen([sys.executable, "-m", "console", "serve"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=dict(os.environ))  # fmt: skip
    until_sync(lambda: (home / "control.sock").exists() or proc.poll() is not None, what="socket")
    assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
