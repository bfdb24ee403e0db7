"""`twolane pull` and `twolane serve --port` with real processes and a fake Ollama."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.fakes.upstream import FakeUpstream
from tests.helpers import until_sync

pytestmark = pytest.mark.e2e

# The machine's own gates (load, disk, swap) would hold the local lane on a busy CI box;
# these tests are about the gateway, so the gates are opened wide.
QUIET_GATES = {
    "TWOLANE__GATES__MAX_LOAD_PER_CORE": "1000000", "TWOLANE__GATES__MIN_FREE_DISK_GB": "0",
    "TWOLANE__GATES__MAX_SWAP_GB": "1000000", "TWOLANE__GATES__SWAP_GROWTH_MB": "1000000000",
    "TWOLANE__GATES__MEMORY_HEADROOM_GB": "0", "TWOLANE__GATES__HEAVY_PROCESS_PATTERNS": "[]",
}  # fmt: skip


@pytest.fixture
def fake_ollama() -> Iterator[FakeUpstream]:
    with FakeUpstream(kind="ollama").in_thread() as up:
        yield up


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def serve(fake_ollama: FakeUpstream) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`twolane serve --port N` against the fake; yields the process and the gateway URL."""
    port = _free_port()
    env = {**os.environ, **QUIET_GATES, "TWOLANE__UPSTREAMS":
           f'[{{name = "fake", kind = "ollama", base_url = "{fake_ollama.url}", models = ["*"]}}]'}  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "console", "serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        lines = []
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if "gateway on" in line:
                break
        assert f"gateway on {url}" in "".join(lines), "".join(lines)
        yield proc, url
    finally:
        proc.terminate()
        proc.wait(20)


def test_pull_from_the_cli_is_a_local_job_with_progress(serve, fake_ollama: FakeUpstream, twolane) -> None:  # type: ignore[no-untyped-def]
    fake_ollama.token_delay = 0.01
    done = twolane("pull", "tinyllama:1.1b")
    assert done.returncode == 0, done.stderr
    assert "pulled tinyllama:1.1b" in done.stdout and "100%" in done.stdout
    jobs = json.loads(twolane("ls", "--json").stdout)
    [job] = jobs
    assert (job["kind"], job["lane"], job["state"]) == ("pull", "local", "succeeded")
    assert job["meta"]["progress"] == 1.0 and job["meta"]["total"] == fake_ollama.pull_total
    assert [p for p, _ in fake_ollama.calls] == ["/api/pull"]
    assert "success" in twolane("logs", job["id"]).stdout


def test_pull_failures_exit_non_zero(serve, fake_ollama: FakeUpstream, twolane) -> None:  # type: ignore[no-untyped-def]
    fake_ollama.fail = 500
    failed = twolane("pull", "tinyllama")
    assert failed.returncode == 1 and "pull failed (500)" in failed.stderr


def test_gateway_on_the_serve_port_queues_through_the_owner(serve, fake_ollama: FakeUpstream, twolane) -> None:  # type: ignore[no-untyped-def]
    _, url = serve
    reply = httpx.post(url + "/api/generate", json={"model": "llama3.2:1b", "prompt": "x", "stream": False})
    assert reply.status_code == 200 and reply.json()["response"] == "Hello, world!"
    until_sync(lambda: "succeeded" in twolane("ls").stdout, what="the request listed as a job")
    assert "completion llama3.2:1b" in twolane("ls").stdout


def test_pull_without_an_owner_waits_in_the_queue(twolane) -> None:  # type: ignore[no-untyped-def]
    queued = twolane("pull", "tinyllama", "--detach")
    assert queued.returncode == 0
    [job] = json.loads(twolane("ls", "--json").stdout)
    assert (job["id"], job["kind"], job["state"]) == (queued.stdout.strip(), "pull", "queued")


def test_serve_port_must_be_a_port(twolane) -> None:  # type: ignore[no-untyped-def]
    bad = twolane("serve", "--port", "99999")
    assert bad.returncode == 2 and "port must be 0..65535" in bad.stderr


def test_serve_refuses_a_public_host_without_a_key(twolane) -> None:  # type: ignore[no-untyped-def]
    bad = twolane("serve", env={"TWOLANE__GATEWAY__HOST": "0.0.0.0"})
    assert bad.returncode == 2 and "set gateway.api_key" in bad.stderr
    bad = twolane("serve", env={"TWOLANE__UPSTREAMS": '[{name = "x", base_url = "nope"}]'})
    assert bad.returncode == 2 and "base_url must be an http(s) URL" in bad.stderr
