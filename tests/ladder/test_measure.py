"""The measuring client and the ladder loop against a fake upstream on loopback whose
latency grows past a known concurrency, so the knee is known in advance."""

from __future__ import annotations

import csv
import json
import socket
from collections import Counter
from pathlib import Path

import pytest

from console.core.ladder import machine
from console.core.ladder.client import EndpointClient
from console.core.ladder.plan import LadderSpec, Slo, validate
from console.core.ladder.report import compare_text, load_summary, write_report
from console.core.ladder.run import LadderResult, run_ladder
from console.core.ladder.stats import RequestRecord
from console.core.ladder.verdict import GB
from tests.fakes.upstream import FakeUpstream

MODEL = "llama3.2:1b"
TOKENS = 8


async def started(kind: str):  # type: ignore[no-untyped-def]
    up = FakeUpstream(kind=kind)
    up.tokens = ["tok "] * TOKENS
    await up.start()
    try:
        yield up
    finally:
        await up.stop()


@pytest.fixture
async def fake():
    async for up in started("openai"):
        yield up


@pytest.fixture
async def ollama():
    async for up in started("ollama"):
        yield up


def make_spec(url: str, tmp_path: Path, **kw) -> LadderSpec:
    base = {"url": url, "model": MODEL, "steps": [1, 2, 4, 8], "out": str(tmp_path / "out"), "requests": 4,
            "max_tokens": 32, "sample_interval": 0.05}  # fmt: skip
    return validate(LadderSpec(**{**base, **kw}))


def fake_prompt_tokens(body: dict) -> int:
    """What the fake reports as prompt tokens for a request body (its own formula)."""
    return len(json.dumps(body.get("messages") or body.get("prompt") or "")) // 4


async def measure_one(spec: LadderSpec) -> tuple[RequestRecord, dict]:
    client = EndpointClient(spec)
    try:
        info = await client.detect()
        record = await client.measure(RequestRecord(1, 1, 0, 0, 0.0), "hello there")
    finally:
        await client.aclose()
    return record, info


@pytest.mark.parametrize("stream", [True, False])
async def test_openai_request_is_timed_and_counted(fake: FakeUpstream, tmp_path: Path, stream: bool) -> None:
    fake.token_delay = 0.002
    record, info = await measure_one(make_spec(fake.url, tmp_path, stream=stream))
    assert info["api"] == "openai"
    assert record.ok and record.status == 200 and record.error == ""
    assert record.tokens_out == TOKENS
    assert record.tokens_in == fake_prompt_tokens(fake.calls[-1][1])
    body = fake.calls[-1][1]
    assert body["temperature"] == 0 and body["max_tokens"] == 32 and body["stream"] is stream
    if stream:
        assert record.ttft is not None and 0 < record.ttft <= record.e2e
        assert len(record.itl) == TOKENS - 1 and all(g >= 0 for g in record.itl)
        assert body["stream_options"] == {"include_usage": True}
    else:
        assert record.ttft is None and record.itl == [] and record.e2e > 0


@pytest.mark.parametrize("stream", [True, False])
async def test_ollama_native_is_detected_and_measured(ollama: FakeUpstream, tmp_path: Path, stream: bool) -> None:
    record, info = await measure_one(make_spec(ollama.url, tmp_path, stream=stream))
    assert info["api"] == "ollama" and info["server_version"] == "0.0.0-fake"
    assert info["model_digest"] == "0" * 12
    path, body = ollama.calls[-1]
    assert path == "/api/chat" and body["options"] == {"temperature": 0, "num_predict": 32}
    assert record.ok and record.tokens_out == TOKENS and record.tokens_in == fake_prompt_tokens(body)
    assert (record.ttft is not None) is stream


async def test_ollama_openai_endpoint_can_be_forced(ollama: FakeUpstream, tmp_path: Path) -> None:
    record, info = await measure_one(make_spec(ollama.url + "/v1", tmp_path))
    assert info["api"] == "openai" and ollama.calls[-1][0] == "/v1/chat/completions" and record.ok


async def test_http_errors_and_refused_connections_are_recorded_not_raised(fake: FakeUpstream, tmp_path: Path) -> None:
    fake.fail = 503
    record, _ = await measure_one(make_spec(fake.url, tmp_path))
    assert record.status == 503 and "injected failure" in record.error and not record.ok
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    record, _ = await measure_one(make_spec(f"http://127.0.0.1:{port}", tmp_path))
    assert record.status == 0 and "ConnectError" in record.error


def test_listening_pid_finds_this_process() -> None:
    import os

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert machine.listening_pid(s.getsockname()[1]) == os.getpid()
    assert machine.is_local_host("127.0.0.1") and machine.is_local_host("localhost")
    assert not machine.is_local_host("nonexistent.invalid")


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


async def test_ladder_finds_the_knee_stops_there_and_csv_matches_what_was_served(fake: FakeUpstream, tmp_path: Path) -> None:
    # Up to 2 in flight each token takes 10 ms; beyond that 20x longer: knee at 4.
    fake.token_delay, fake.capacity, fake.slowdown = 0.01, 2, 20.0
    spec = make_spec(fake.url, tmp_path, slo=Slo(p95_ratio=4))
    lines: list[str] = []
    result = await run_ladder(spec, LadderResult(spec), log=lines.append)

    assert [s["concurrency"] for s in result.steps] == [1, 2, 4]
    assert result.knee and result.knee["concurrency"] == 4
    assert [b["rule"] for b in result.knee["breaches"]] == ["p95_ratio"]
    assert fake.max_active == 4  # step 8 was never sent
    assert result.server["local"] and result.server["pid"] is not None
    assert any(line.startswith("knee at concurrency 4") for line in lines)

    out = Path(spec.out)
    summary = write_report(result, out)
    rows = read_csv(out / "requests.csv")
    assert len(rows) == fake.requests == len(fake.calls) == 12
    assert Counter(r["concurrency"] for r in rows) == {"1": 4, "2": 4, "4": 4}
    assert {r["tokens_out"] for r in rows} == {str(TOKENS)}
    assert {r["status"] for r in rows} == {"200"}
    assert sorted(int(r["tokens_in"]) for r in rows) == sorted(fake_prompt_tokens(b) for _, b in fake.calls)
    assert all(len(r["itl_ms"].split()) == TOKENS - 1 for r in rows)

    steps = read_csv(out / "steps.csv")
    assert [s["concurrency"] for s in steps] == ["1", "2", "4"]
    assert [int(s["tokens_out"]) for s in steps] == [4 * TOKENS] * 3
    by_c = {int(r["concurrency"]): sorted(float(x["e2e_s"]) for x in rows if x["concurrency"] == r["concurrency"])
            for r in steps}  # fmt: skip
    assert float(steps[2]["e2e_p50"]) == pytest.approx((by_c[4][1] + by_c[4][2]) / 2, rel=1e-4)
    assert float(steps[0]["server_rss_peak_mb"]) > 0

    assert summary["knee"]["concurrency"] == 4
    assert json.loads((out / "summary.json").read_text())["stopped"].startswith("knee at concurrency 4")
    report = (out / "report.md").read_text()
    for needle in ("Knee at concurrency 4", "| p95_ratio | 4.000x |", "FAIL", "twolane 0.1.0", "Machine:",
                   "max_tokens 32", "temperature 0", "streaming", fake.url, "```", "▲ knee"):  # fmt: skip
        assert needle in report, needle
    assert (out / "chart.svg").read_text().startswith("<svg")


async def test_all_failing_server_is_a_knee_at_step_one_on_errors(fake: FakeUpstream, tmp_path: Path) -> None:
    fake.fail = 500
    spec = make_spec(fake.url, tmp_path, steps=[1, 2])
    result = await run_ladder(spec, LadderResult(spec), log=lambda _: None)
    assert len(result.steps) == 1 and result.knee["concurrency"] == 1
    assert [b["rule"] for b in result.knee["breaches"]] == ["error_rate"]


async def test_swap_growth_past_the_gate_stops_the_ladder(fake: FakeUpstream, tmp_path: Path) -> None:
    swap = {"used": 0}

    def source(pid: int | None) -> machine.MachineSample:
        return machine.MachineSample(0.0, 1, swap["used"], 10.0, None, 0.5)

    def log(line: str) -> None:
        if line.startswith("step 1/"):
            swap["used"] = int(3 * GB)  # the machine starts swapping after step 1

    fake.token_delay = 0.01
    spec = make_spec(fake.url, tmp_path, steps=[1, 2, 4], slo=Slo(swap_gb=2))
    result = await run_ladder(spec, LadderResult(spec), log=log, monitor_source=source)
    assert result.knee["concurrency"] == 2
    assert "swap_gb" in [b["rule"] for b in result.knee["breaches"]]
    assert result.steps[1]["swap_growth_mb"] == 3 * 1024


async def test_duration_mode_runs_each_step_for_its_time(fake: FakeUpstream, tmp_path: Path) -> None:
    fake.token_delay = 0.005
    spec = make_spec(fake.url, tmp_path, steps=[1, 2], requests=None, duration=0.3)
    result = await run_ladder(spec, LadderResult(spec), log=lambda _: None)
    assert result.knee is None and result.stopped.startswith("no knee")
    assert all(s["requests"] >= s["concurrency"] for s in result.steps)
    assert len(result.records) == fake.requests


async def test_compare_shows_both_runs_per_concurrency(fake: FakeUpstream, tmp_path: Path) -> None:
    fake.token_delay = 0.003
    folders = []
    for name in ("a", "b"):
        spec = make_spec(fake.url, tmp_path, steps=[1, 2], out=str(tmp_path / name))
        write_report(await run_ladder(spec, LadderResult(spec), log=lambda _: None), Path(spec.out))
        folders.append(load_summary(Path(spec.out)))
    text = compare_text(*folders)
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["c"])
    table = [line.split() for line in lines[header + 1 : header + 3]]
    assert [row[0] for row in table] == ["1", "2"]
    assert all(row[3].endswith("x") for row in table)
    assert "A e2e p95" in text and "knee none" in text
