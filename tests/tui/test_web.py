"""`twolane web`: serves the page on loopback and runs the one owner for browser sessions."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import until_sync


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.e2e
def test_web_serves_and_owns_the_data_dir(home: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "console", "web", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())  # fmt: skip
    try:
        until_sync(lambda: (home / "control.sock").exists(), what="owner socket")

        def page() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                    return resp.status == 200 and b"<html" in resp.read()
            except OSError:
                return False

        until_sync(page, what="web page")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    assert not (home / "control.sock").exists()
