"""`twolane ladder` end to end: the real CLI in a subprocess, a fake upstream on loopback,
and (for the queued path) an owner in this process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from console.core import config
from tests.fakes.upstream import FakeUpstream
from tests.helpers import until

pytestmark = pytest.mark.e2e
MODEL = "llama3.2:1b"


@pytest.fixture
async def fake():
    up = FakeUpstream(kind="openai")
    up.tokens = ["tok "] * 8
    up.token_delay, up.capacity, up.slowdown = 0.01, 2, 20.0  # knee at concurrency 4
    await up.start()
    try:
        yield up
    finally:
        await up.stop()


async def spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "console", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=dict(os.environ),
    )  # fmt: skip


async def twolane(*args: str) -> tuple[int, str, str]:
    proc = await spawn(*args)
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    return proc.returncode or 0, out.decode(), err.decode()


async def stderr_until(proc: asyncio.subprocess.Process, text: str) -> str:
    """Read the process's stderr line by line until ``text`` shows; returns what was read."""
    assert proc.stderr is not None
    seen = ""
    while text not in seen:
        line = await asyncio.wait_for(proc.stderr.readline(), 30)
        assert line, seen
        seen += line.decode()
    return seen


def ladder_args(url: str, out: Path, *extra: str) -> list[str]:
    return ["ladder", "--url", url, "--model", MODEL, "--steps", "1,2,4,8", "--requests", "4",
            "--max-tokens", "16", "--slo", "p95_ratio=4", "--out", str(out), *extra]  # fmt: skip


async def test_now_runs_in_the_foreground_finds_the_knee_and_records_a_violation(fake: FakeUpstream, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, stdout, err = await twolane(*ladder_args(fake.url, out, "--now"))
    assert code == 0, err
    assert "step 3/4 c=4" in stdout and "step 4/4" not in stdout
    assert "knee at concurrency 4" in stdout and "▲ knee" in stdout and "SLO p95_ratio: fail" in stdout
    assert fake.max_active == 4
    for name in ("spec.json", "requests.csv", "steps.csv", "summary.json", "report.md", "chart.svg"):
        assert (out / name).is_file(), name
    assert not (out / "progress.json").exists()  # the console's live view is done with it
    assert json.loads((out / "spec.json").read_text())["max_tokens"] == 16
    code, stdout, _ = await twolane("violations", "--json")
    (v,) = json.loads(stdout)
    assert v["rule"] == "ladder.p95_ratio" and v["threshold"] == 4 and v["reading"] > 4
    assert MODEL in v["message"]

    # The same folder again would overwrite a run: refused.
    code, _, err = await twolane(*ladder_args(fake.url, out, "--now"))
    assert code == 2 and "already holds a ladder run" in err

    code, stdout, _ = await twolane("ladder", "show", str(out))
    assert code == 0 and "knee at concurrency 4" in stdout and "SLO p95_ratio: fail" in stdout


async def test_queued_without_owner_says_so_then_runs_when_an_owner_starts(fake: FakeUpstream, tmp_path: Path, home: Path) -> None:
    from console.owner import Owner

    out = tmp_path / "queued"
    proc = await spawn(*ladder_args(fake.url, out, "--no-stream"))
    seen = await stderr_until(proc, "no owner is running")
    assert "queued in the local lane" in seen and fake.requests == 0
    owner = Owner(home, config.load(), extensions=[])
    await owner.start()
    try:
        stdout, err = await asyncio.wait_for(proc.communicate(), 90)
        assert proc.returncode == 0, err
        text = stdout.decode()
        assert "step 1/4 c=1" in text and f"report: {out / 'report.md'}" in text
        (job,) = [j for j in await owner.store.list_jobs() if j.name.startswith("ladder ")]
        assert str(job.state) == "succeeded" and str(job.lane) == "local"
        assert job.spec.extra["ladder_out"] == str(out)
        summary = json.loads((out / "summary.json").read_text())
        assert summary["client"]["stream"] is False and summary["server"]["api"] == "openai"
    finally:
        await owner.stop()


async def test_ctrl_c_cancels_the_queued_ladder_and_keeps_a_partial_report(fake: FakeUpstream, tmp_path: Path, owner) -> None:
    fake.hang = True
    out = tmp_path / "cancelled"
    proc = await spawn(*ladder_args(fake.url, out))
    await until(lambda: fake.active >= 1, what="the ladder's first request")
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 130 and "cancelled" in err.decode()
    (job,) = await owner.store.list_jobs()
    assert str(job.state) == "cancelled"
    await until(lambda: (out / "summary.json").exists(), what="the partial report")
    assert json.loads((out / "summary.json").read_text())["stopped"] == "cancelled after 0 of 4 steps"
    await until(lambda: fake.active == 0, what="the hanging request to be dropped")


async def test_cancelled_elsewhere_exits_130_while_following(fake: FakeUpstream, tmp_path: Path, owner) -> None:
    fake.hang = True
    proc = await spawn(*ladder_args(fake.url, tmp_path / "elsewhere"))
    await until(lambda: fake.active >= 1, what="the ladder's first request")
    (job,) = await owner.store.list_jobs()
    code, _, err = await twolane("cancel", job.id)
    assert code == 0, err
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 130 and f"ladder job {job.id} cancelled" in err.decode()
    await until(lambda: fake.active == 0, what="the hanging request to be dropped")


async def test_detach_enqueues_and_returns(tmp_path: Path) -> None:
    out = tmp_path / "detached"
    code, stdout, err = await twolane(*ladder_args("http://127.0.0.1:9", out, "--detach"))
    assert code == 0 and "no owner is running" in err
    job_id = stdout.strip()
    code, stdout, _ = await twolane("show", job_id, "--json")
    job = json.loads(stdout)
    assert job["state"] == "queued" and job["lane"] == "local"
    assert job["spec"]["argv"][-3:] == ["run", "--spec", str(out / "spec.json")]
    spec = (out / "spec.json").read_text()

    # The queued job reads that spec.json when it starts: a second ladder may not replace it.
    code, _, err = await twolane(*ladder_args("http://127.0.0.1:9", out, "--detach", "--steps", "1"))
    assert code == 2 and "already holds a ladder run" in err
    assert (out / "spec.json").read_text() == spec


async def test_unreachable_server_fails_with_the_fix(tmp_path: Path) -> None:
    code, stdout, err = await twolane(*ladder_args("http://127.0.0.1:9", tmp_path / "x", "--now"))
    assert code == 1 and "no request succeeded" in err and "ConnectError" in err
    assert "knee at concurrency 1" in stdout  # every request failed: the error gate trips at once


@pytest.mark.parametrize("args, words", [
    (["ladder"], "give --url and --model"),
    (["ladder", "--url", "localhost:1", "--model", "m"], "--url must be an http(s) base URL"),
    (["ladder", "--url", "http://h", "--model", "m", "--steps", "1,1"], "--steps must increase"),
    (["ladder", "--url", "http://h", "--model", "m", "--slo", "p99=2"], "--slo takes"),
    (["ladder", "--url", "http://h", "--model", "m", "--prompt-file", "/nonexistent"], "cannot read --prompt-file"),
    (["ladder", "run", "--spec", "/nonexistent.json"], "cannot read the ladder spec"),
    (["ladder", "compare", "/", "/"], "has no summary.json"),
])  # fmt: skip
async def test_bad_input_is_one_line_and_exit_2(args: list[str], words: str) -> None:
    code, _, err = await twolane(*args)
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1


async def test_compare_two_runs(fake: FakeUpstream, tmp_path: Path) -> None:
    fake.capacity = None  # no knee: both runs climb every step
    for name in ("before", "after"):
        code, _, err = await twolane(*ladder_args(fake.url, tmp_path / name, "--now", "--steps", "1,2"))
        assert code == 0, err
    code, stdout, _ = await twolane("ladder", "compare", str(tmp_path / "before"), str(tmp_path / "after"))
    assert code == 0 and "A e2e p95" in stdout and "B e2e p95" in stdout and "knee none" in stdout
    code, stdout, _ = await twolane("ladder", "compare", str(tmp_path / "before"), str(tmp_path / "after"), "--json")
    data = json.loads(stdout)
    assert [s["concurrency"] for s in data["a"]["steps"]] == [1, 2] == [s["concurrency"] for s in data["b"]["steps"]]


async def test_a_held_lane_is_explained_while_following(fake: FakeUpstream, tmp_path: Path, owner) -> None:
    async def hold(job) -> str:
        return "load 9.0 is above 4.0"

    owner.scheduler.gate = hold
    proc = await spawn(*ladder_args(fake.url, tmp_path / "held"))
    await stderr_until(proc, "the local lane is held: load 9.0 is above 4.0")
    proc.send_signal(signal.SIGINT)
    await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 130 and fake.requests == 0
    (job,) = await owner.store.list_jobs()
    assert str(job.state) == "cancelled"
