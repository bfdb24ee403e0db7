"""`twolane predict`, `twolane gates` and the gates through a real `twolane serve`."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_twolane, serving
from tests.helpers import until_sync
from tests.signals.conftest import llama_like


def test_predict_smollm2(smollm: Path) -> None:
    result = run_twolane("predict", str(smollm), "--ctx", "2048", "--json")
    assert result.returncode in (0, 1), result.stderr
    data = json.loads(result.stdout)
    assert data["weights_bytes"] == 96_576_768
    assert data["kv_bytes"] == 30 * 2048 * 3 * 128 * 2  # 45 MiB
    assert (data["arch"], data["n_layer"], data["ctx"], data["parallel"]) == ("llama", 30, 2048, 1)
    assert data["fit"]["fits"] is (result.returncode == 0)
    text = run_twolane("predict", str(smollm), "--ctx", "2048", "--parallel", "2", "--kv-type", "q8_0")
    assert "kv cache    0.05 GB (47.8 MiB)" in text.stdout  # 2 x 45 MiB x 34/64
    assert "context     2048 x 2 parallel, KV cache q8_0" in text.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [(["/nonexistent/model.gguf"], "no such GGUF file"),
     (["x.gguf", "--ctx", "0"], "must be at least 1"),
     (["x.gguf", "--kv-type", "q5_1"], "invalid choice"),
     (["llama3:8b"], "start Ollama, set signals.ollama_url, or give a .gguf path")],
)  # fmt: skip
def test_predict_bad_input(args: list[str], message: str, tmp_path: Path) -> None:
    result = run_twolane("predict", *args, env={"OLLAMA_HOST": "127.0.0.1:9"})
    assert result.returncode == 2
    assert message in result.stderr


def test_predict_an_ollama_name(tmp_path: Path) -> None:
    from tests.signals.conftest import FakeOllama

    blob = llama_like(tmp_path / "sha256-abc", n_layer=5)
    with FakeOllama() as ollama:
        ollama.shows["tiny:1b"] = {"modelfile": f"FROM {blob}\n", "model_info": {}}
        result = run_twolane("predict", "tiny:1b", "--ctx", "1024", "--json",
                             env={"OLLAMA_HOST": ollama.url})  # fmt: skip
        missing = run_twolane("predict", "nope:1b", env={"OLLAMA_HOST": ollama.url})
    assert result.returncode in (0, 1), result.stderr
    data = json.loads(result.stdout)
    assert (data["model"], data["source"], data["n_layer"]) == ("tiny:1b", str(blob), 5)
    assert data["kv_bytes"] == 5 * 1024 * 2 * (32 + 32) * 2
    assert missing.returncode == 2
    assert missing.stderr.endswith("does not have model 'nope:1b'; `ollama pull nope:1b` first, or give a .gguf path\n")
    assert missing.stderr.count("\n") == 1


def test_predict_not_a_gguf(tmp_path: Path) -> None:
    bad = tmp_path / "notes.gguf"
    bad.write_text("hello")
    result = run_twolane("predict", str(bad))
    assert result.returncode == 2 and "is not a GGUF file" in result.stderr


def test_gates_without_an_owner() -> None:
    result = run_twolane("gates", "--json")
    report = json.loads(result.stdout)
    assert result.returncode == (0 if report["ok"] else 1)
    assert report["owner"] is False
    names = [g["gate"] for g in report["gates"]]
    assert names[0] == "load" and "swap" in names and "heavy_process" in names
    # One reading cannot say whether swap is growing.
    growth = next(g for g in report["gates"] if g["gate"] == "swap_growth")
    assert (growth["verdict"], growth["reading"]) == ("unknown", None)
    text = run_twolane("gates")
    lines = text.stdout.splitlines()
    assert lines[0].split() == ["GATE", "READING", "THRESHOLD", "VERDICT"]
    load = next(line for line in lines if line.startswith("load "))
    assert load.endswith(("pass", "fail")) and "1000.0 per core" in load  # tests set 1000
    assert next(line for line in lines if line.startswith("swap ")).split()[2:4] == ["GB", "2.0"]
    assert next(line for line in lines if line.startswith("swap_growth")).split()[1:] == ["-", "128.0", "MB", "unknown"]
    assert "gate swap_growth: unknown: needs two samples from the last minute" in text.stdout


def test_add_declares_a_model_without_an_owner(home: Path, tmp_path: Path) -> None:
    model = llama_like(tmp_path / "m.gguf")
    added = run_twolane("add", "--model", "m.gguf", "--ctx", "2048", "--parallel", "2",
                        "--kv-type", "q8_0", "--json", "--", "true", cwd=tmp_path)  # fmt: skip
    assert added.returncode == 0, added.stderr
    # A relative path is the caller's: made absolute before an owner (elsewhere) reads it.
    assert json.loads(added.stdout)["spec"]["extra"] == {
        "model": str(model), "ctx": 2048, "parallel": 2, "kv_type": "q8_0"}  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--model", "missing.gguf"], "twolane: no such GGUF file: "),
     (["--model", "notes.gguf"], "is not a GGUF file"),
     (["--model", "m.gguf", "--ctx", "0"], "argument --ctx: must be at least 1, got 0"),
     (["--ctx", "4096"], "twolane: --ctx, --parallel and --kv-type size the footprint of --model; add --model M"),
     (["--kv-type", "q8_0"], "add --model M"),
     (["--model", "m.gguf", "--kv-type", "q5_1"], "invalid choice: 'q5_1'")],
)  # fmt: skip
def test_add_refuses_a_bad_declaration(args: list[str], message: str, home: Path, tmp_path: Path) -> None:
    llama_like(tmp_path / "m.gguf")
    (tmp_path / "notes.gguf").write_text("hello")
    result = run_twolane("add", *args, "--", "true", cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr
    assert run_twolane("ls", "--json").stdout.strip() == "[]"  # nothing was queued


def test_violations_limit_must_be_positive(home: Path) -> None:
    result = run_twolane("violations", "--limit", "0")
    assert result.returncode == 2 and "argument --limit: must be at least 1, got 0" in result.stderr
    empty = run_twolane("violations", "--json")
    assert empty.returncode == 0 and json.loads(empty.stdout) == []


@pytest.fixture
def serve(home: Path, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A real owner whose gates pass on a busy test machine unless a test says otherwise."""
    Path(os.environ["TWOLANE_CONFIG"]).write_text(
        "[gateway]\nport = 0\n[signals]\ninterval = 0.2\n"
        "[gates]\nmax_load_per_core = 1000.0\nmin_free_disk_gb = 0.001\nmax_swap_gb = 1000.0\n"
        "swap_growth_mb = 1000000.0\nheavy_process_patterns = []\nheavy_process_mem_share = 1.0\n"
        "memory_headroom_gb = 0.0\n"
    )
    with serving(home) as proc:
        yield proc


@pytest.mark.e2e
def test_gates_force_and_model_through_the_owner(serve: subprocess.Popen[str], tmp_path: Path) -> None:
    report = json.loads(run_twolane("gates", "--json").stdout)
    assert report["ok"] is True and report["job"] is None and report["sample_at"]

    forced = run_twolane("add", "--force", "--", "true")
    assert forced.returncode == 0, forced.stderr
    job_id = forced.stdout.strip()
    assert run_twolane("wait", job_id, "--timeout", "60").returncode == 0

    def recorded() -> bool:
        found = json.loads(run_twolane("violations", "--json").stdout)
        return any(v["rule"] == "gate_forced" and v["job_ids"] == [job_id] for v in found)

    until_sync(recorded, what="gate_forced in `twolane violations`")

    missing = run_twolane("add", "--model", str(tmp_path / "missing.gguf"), "--", "true")
    assert missing.returncode == 2 and "no such GGUF file" in missing.stderr

    # The owner runs in another directory: a relative path is the caller's file.
    llama_like(tmp_path / "small.gguf")
    small = run_twolane("add", "--model", "small.gguf", "--json", "--", "true", cwd=tmp_path)
    assert small.returncode == 0, small.stderr
    assert json.loads(small.stdout)["meta"]["footprint"]["source"] == str(tmp_path / "small.gguf")

    # 64 layers x 8192 wide in f16 is ~9 GB of weights; with --ctx 1M it cannot fit here.
    big = llama_like(tmp_path / "big.gguf", n_layer=64, n_embd=8192, n_ff=8192, ttype=1)
    held = run_twolane("add", "--model", str(big), "--ctx", "1000000", "--json", "--", "true")
    assert held.returncode == 0, held.stderr
    job = json.loads(held.stdout)
    assert job["meta"]["footprint"]["kv_bytes"] > 10**11

    def held_reason() -> str:
        return json.loads(run_twolane("show", job["id"], "--json").stdout).get("held_reason") or ""

    until_sync(lambda: held_reason().startswith(f"gate model: {big} needs "), what="model hold")
    assert json.loads(run_twolane("gates", "--json").stdout)["job"] == job["id"]
    assert run_twolane("cancel", job["id"]).returncode == 0
