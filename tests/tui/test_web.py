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


def test_web_without_textual_serve_names_the_extra(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from console.cli import main

    # A plain `pip install -e .` leaves textual-serve out (it is the `web` extra).
    monkeypatch.setitem(sys.modules, "textual_serve", None)
    monkeypatch.setitem(sys.modules, "textual_serve.server", None)
    assert main(["web", "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "twolane: twolane web needs textual-serve: pip install -e '.[web]'"
