"""The CLI contract, run as a real subprocess: with no owner (direct to the database) and
with an owner (through the control socket) the commands behave the same."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_twolane, serving
from tests.helpers import until_sync


@pytest.fixture
def serve(home: Path) -> Iterator[subprocess.Popen[str]]:
    """A real `twolane serve` owner on the test's data dir."""
    with serving(home) as proc:
        yield proc


def add(*args: str) -> str:
    result = run_twolane("add", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["add", "--lane", "fast", "--", "true"], "unknown lane 'fast'; use local or remote"),
        (["add", "--timeout", "-3", "--", "true"], "positive number of seconds"),
        (["add", "--"], "empty command"),
        (["add"], "empty command"),
        (["add", "--cwd", "/no/such/dir", "--", "true"], "does not exist"),
        (["add", "--retry", "-1", "--", "true"], "retry count must be 0..100"),
        (["add", "--env", "NOEQUALS", "--", "true"], "--env takes NAME=VALUE"),
        (["show", "nosuch"], "no job 'nosuch'; list the jobs with `twolane ls`"),
        (["cancel", "nosuch"], "no job 'nosuch'"),
        (["priority", "nosuch", "3"], "no job 'nosuch'"),
        (["retry", "nosuch"], "no job 'nosuch'"),
        (["ls", "--state", "done"], "unknown state 'done'"),
    ],
)
def test_bad_input_gets_one_line_error_and_nonzero_exit(args, needle):
    result = run_twolane(*args)
    assert result.returncode != 0
    assert needle in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 or "usage:" in result.stderr, result.stderr


def test_direct_mode_round_trip(home: Path):
    job_id = add("--lane", "remote", "--priority", "4", "--name", "fleet", "--", "echo", "hi")
    assert len(job_id) == 6
    listed = json.loads(run_twolane("ls", "--json").stdout)
    assert [(j["id"], j["state"], j["lane"], j["priority"], j["name"]) for j in listed] == [
        (job_id, "queued", "remote", 4, "fleet")
    ]
    assert run_twolane("priority", job_id[:4], "9").returncode == 0  # a unique prefix works
    shown = json.loads(run_twolane("show", job_id, "--json").stdout)
    assert shown["priority"] == 9 and shown["spec"]["argv"] == ["echo", "hi"]
    assert f"{job_id} cancelled" in run_twolane("cancel", job_id).stdout
    assert json.loads(run_twolane("show", job_id, "--json").stdout)["state"] == "cancelled"
    assert run_twolane("retry", job_id).returncode == 0
    status = json.loads(run_twolane("status", "--json").stdout)
    assert status["owner"] is False and status["remote"]["queued"] == 1


def test_add_json_prints_the_whole_job():
    job = json.loads(run_twolane("add", "--json", "--shell", "--", "echo $HOME").stdout)
    assert job["spec"]["shell"] == "echo $HOME" and job["state"] == "queued"


def test_pause_persists_for_the_next_owner(home: Path, serve):
    # Paused through the socket; the state is in the database for any later owner too.
    out = json.loads(run_twolane("pause", "local", "--json").stdout)
    assert out["local"]["paused"] is True and out["remote"]["paused"] is False
    job_id = add("--", "true")
    status = json.loads(run_twolane("status", "--json").stdout)
    assert status["owner"] is True and status["local"]["queued"] == 1
    assert json.loads(run_twolane("show", job_id, "--json").stdout)["state"] == "queued"
    assert run_twolane("resume", "all").returncode == 0
    assert run_twolane("wait", job_id, "--timeout", "30").returncode == 0


def test_jobs_added_without_owner_run_when_one_starts(home: Path, tmp_path: Path):
    marker = tmp_path / "ran"
    job_id = add("--", "touch", str(marker))
    proc = subprocess.Popen([sys.executable, "-m", "console", "serve"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ))  # fmt: skip
    try:
        result = run_twolane("wait", job_id, "--timeout", "30")
        assert result.returncode == 0, result.stderr
        assert marker.exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_owner_mode_logs_wait_and_exit_codes(serve):
    ok = add("--", "sh", "-c", "echo line-one; echo line-two >&2")
    bad = add("--lane", "remote", "--", "sh", "-c", "exit 4")
    result = run_twolane("wait", ok, bad, "--timeout", "30")
    assert result.returncode == 1  # one of them failed
    assert f"{bad} failed (exit code 4)" in result.stdout
    assert run_twolane("wait", ok).returncode == 0
    logs = run_twolane("logs", ok).stdout
    assert "line-one" in logs and "line-two" in logs
    table = run_twolane("ls").stdout
    assert ok in table and "succeeded" in table and "exit code 4" in table


def test_logs_follow_streams_until_the_job_ends(serve):
    job_id = add("--", "sh", "-c", "for i in 1 2 3; do echo tick-$i; sleep 0.2; done")
    result = run_twolane("logs", "--follow", job_id, timeout=60)
    assert result.returncode == 0
    assert [line for line in result.stdout.splitlines() if line.startswith("tick")] == [
        "tick-1", "tick-2", "tick-3",
    ]  # fmt: skip


def test_wait_timeout_exits_124(serve):
    job_id = add("--", "sleep", "30")
    result = run_twolane("wait", job_id, "--timeout", "0.5")
    assert result.returncode == 124 and "timed out" in result.stderr
    assert run_twolane("cancel", job_id).returncode == 0


def test_cancel_running_job_through_the_socket(serve):
    job_id = add("--", "sleep", "30")
    until_sync(lambda: json.loads(run_twolane("show", job_id, "--json").stdout)["state"] == "running",
               what="running")  # fmt: skip
    result = run_twolane("cancel", job_id)
    assert result.returncode == 0 and "cancelled" in result.stdout
    assert run_twolane("cancel", job_id).returncode == 2  # already finished: a one-line error


def test_second_serve_refuses_naming_the_holder(serve):
    result = run_twolane("serve", timeout=30)
    assert result.returncode == 3
    assert f"pid {serve.pid}" in result.stderr


def test_serve_stops_cleanly_on_sigint(serve):
    serve.send_signal(signal.SIGINT)
    assert serve.wait(timeout=30) == 0


def test_config_show_names_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    cfg = Path(os.environ["TWOLANE_CONFIG"])
    cfg.write_text("[lanes.remote]\nconcurrency = 3\n")
    monkeypatch.setenv("TWOLANE__POLICY__CROSS_MIX", "true")
    out = run_twolane("config", "show").stdout
    assert f"lanes.remote.concurrency = 3    # {cfg}" in out
    assert "policy.cross_mix = true    # env:TWOLANE__POLICY__CROSS_MIX" in out
    assert "runner.kill_grace = 10.0    # default" in out
    shown = json.loads(run_twolane("config", "show", "--json").stdout)
    assert shown["lanes.remote.concurrency"] == {"value": 3, "source": str(cfg)}


def test_bad_config_is_a_one_line_error(tmp_path: Path):
    Path(os.environ["TWOLANE_CONFIG"]).write_text("[lanes.remote]\nconcurency = 3\n")
    result = run_twolane("ls")
    assert result.returncode == 2
    assert "unknown config key 'lanes.remote.concurency'" in result.stderr
    Path(os.environ["TWOLANE_CONFIG"]).write_text("[lanes.remote]\nconcurrency = 'five'\n")
    result = run_twolane("ls")
    assert result.returncode == 2 and "must be int" in result.stderr


def test_a_command_parses_the_same_with_only_its_own_parser_built():
    """`twolane add` builds only the `add` sub-parser; nothing else may change."""
    from console import cli

    full = cli.build_parser()
    sub = next(a for a in full._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == cli._CORE_COMMANDS.union(*cli.COMMAND_MODULES.values())
    samples = [
        ["add", "--lane", "remote", "--priority", "3", "--", "echo", "hi"],
        ["ls", "--state", "queued", "--json"],
        ["pause", "all"],
        ["wait", "abc", "--timeout", "5"],
        ["config", "show", "--json"],
        ["pull", "llama3:8b"],
        ["gates", "--json"],
        ["ladder", "show", "latest"],
    ]
    for argv in samples:
        lazy = cli.build_parser(argv[0])
        lazy_sub = next(a for a in lazy._actions if isinstance(a, argparse._SubParsersAction))
        assert list(lazy_sub.choices) == [argv[0]]
        a, b = vars(full.parse_args(argv)), vars(lazy.parse_args(argv))
        assert a.keys() == b.keys() and all(
            a[k] == b[k] or callable(a[k]) and a[k].__name__ == b[k].__name__ for k in a
        ), (argv, a, b)


def test_help_and_typos_still_list_every_command(twolane):
    out = twolane("--help")
    assert out.returncode == 0
    for command in ("add", "serve", "ladder", "pull", "gates", "web"):
        assert command in out.stdout
    typo = twolane("ad", "--", "true")
    assert typo.returncode == 2 and "invalid choice: 'ad'" in typo.stderr and "'add'" in typo.stderr


def test_output_into_a_closed_pipe_ends_quietly(twolane, home: Path):
    import sqlite3

    from console.core import jobs, paths
    from console.core.schema import ADD_SQL, job_params

    assert twolane("add", "--", "true").returncode == 0  # creates the database
    db = sqlite3.connect(paths.db_path(home))
    with db:  # enough rows that `ls` is still writing when `head` is gone
        for i in range(3000):
            params = job_params(jobs.new_job(["true"], name=f"job {i}", now=1.0))
            db.execute(ADD_SQL, (params[0], 1, *params[2:]))
    db.close()
    result = subprocess.run(
        f"{sys.executable} -m console ls | head -1", shell=True, capture_output=True, text=True,
        env=dict(os.environ),
    )  # fmt: skip
    assert result.returncode == 0 and len(result.stdout.splitlines()) == 1
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr


def test_show_prints_kind_specific_facts(twolane, home: Path):
    """A request's model, client and sizes live in the job's meta; `show` prints them."""
    from console.core import jobs, paths
    from console.core.schema import add_job_now

    assert twolane("add", "--", "true").returncode == 0  # creates the database
    job = jobs.new_job(["true"], lane="local", name="chat", now=1.0)
    job.spec.extra = {"model": "llama3:8b"}
    job.meta = {"client": "127.0.0.1:50000", "prompt_tokens": 12, "progress": 0.4567,
                "sizes": {"request": 300}}  # fmt: skip
    assert add_job_now(paths.db_path(home), job) is not None
    out = twolane("show", job.id)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "spec        model = llama3:8b" in lines
    assert "details     client = 127.0.0.1:50000" in lines
    assert "            progress = 0.4567" in lines
    assert '            sizes = {"request":300}' in lines
