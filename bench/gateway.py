"""Gateway overhead: latency added by twolane's gateway in front of a model server.

One run, same machine, same fake upstream (tests/fakes, answering at once), three ways:
  direct   the client calls the fake upstream itself;
  remote   through `twolane serve`'s gateway, model routed to the remote lane
           (lanes.remote.concurrency = 16, so nothing waits: pure gateway + job cost);
  local    through the gateway to the local lane: one at a time by design, so at more
           than one client this is mostly queueing, printed for reference.
Each process is separate (fake, owner, client). Printed: p50/p99 per concurrency and the
added p50/p99 (remote - direct). Targets from issue 5: added p50 <= 1 ms, p99 <= 5 ms.

    python bench/gateway.py [REQUESTS_PER_LEVEL]
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


async def measure(url: str, model: str, clients: int, total: int) -> list[float]:
    import aiohttp

    body = json.dumps({**BODY, "model": model})
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


def main() -> int:
    per_level = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    fake = subprocess.Popen([sys.executable, __file__, "--fake"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)  # fmt: skip
    fake_url = fake.stdout.readline().strip()  # type: ignore[union-attr]
    home = tempfile.mkdtemp(prefix="twolane-bench-gateway-")
    port = _free_port()
    env = {
        **os.environ, "TWOLANE_HOME": home, "TWOLANE_CONFIG": os.path.join(home, "config.toml"),
        "TWOLANE__LANES__REMOTE__CONCURRENCY": "16",
        "TWOLANE__UPSTREAMS": (
            f'[{{name = "remote", kind = "openai", base_url = "{fake_url}/v1", lane = "remote", models = ["gpt-*"]}},'
            f' {{name = "local", kind = "ollama", base_url = "{fake_url}", lane = "local", models = ["*"]}}]'),
        # The bench is about the gateway: the machine gates must not hold the local lane.
        "TWOLANE__GATES__MAX_LOAD_PER_CORE": "1000000", "TWOLANE__GATES__MIN_FREE_DISK_GB": "0",
        "TWOLANE__GATES__MAX_SWAP_GB": "1000000", "TWOLANE__GATES__SWAP_GROWTH_MB": "1000000000",
        "TWOLANE__GATES__MEMORY_HEADROOM_GB": "0", "TWOLANE__GATES__HEAVY_PROCESS_PATTERNS": "[]",
    }  # fmt: skip
    owner = subprocess.Popen([sys.executable, "-m", "console", "serve", "--port", str(port)],
                             env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)  # fmt: skip
    gw_url = f"http://127.0.0.1:{port}"
    try:
        for line in owner.stdout:  # type: ignore[union-attr]
            if "gateway on" in line:
                break
        asyncio.run(measure(fake_url, "gpt-fake", 4, 100))  # warm both paths
        asyncio.run(measure(gw_url, "gpt-fake", 4, 100))
        print(f"{per_level} requests per level; fake upstream answers at once; times in ms")
        print(f"{'clients':>7} | {'direct p50':>10} {'p99':>7} | {'gateway p50':>11} {'p99':>7} | "
              f"{'added p50':>9} {'p99':>7} | {'local lane p50':>14} {'p99':>7}")  # fmt: skip
        worst = (0.0, 0.0)
        for clients in LEVELS:
            direct = asyncio.run(measure(fake_url, "gpt-fake", clients, per_level))
            via = asyncio.run(measure(gw_url, "gpt-fake", clients, per_level))
            local = asyncio.run(measure(gw_url, "llama3.2:1b", clients, per_level // 2))
            d50, d99, g50, g99 = (pct(direct, 50), pct(direct, 99), pct(via, 50), pct(via, 99))
            add50, add99 = g50 - d50, g99 - d99
            worst = (max(worst[0], add50), max(worst[1], add99))
            print(f"{clients:>7} | {d50 * 1e3:10.2f} {d99 * 1e3:7.2f} | {g50 * 1e3:11.2f} {g99 * 1e3:7.2f} | "
                  f"{add50 * 1e3:9.2f} {add99 * 1e3:7.2f} | {pct(local, 50) * 1e3:14.2f} {pct(local, 99) * 1e3:7.2f}")  # fmt: skip
        print(f"worst added: p50 {worst[0] * 1e3:.2f} ms (target <= 1), p99 {worst[1] * 1e3:.2f} ms (target <= 5)")
    finally:
        owner.terminate()
        owner.wait(20)
        fake.stdin.close()  # type: ignore[union-attr]
        fake.wait(10)
    return 0


if __name__ == "__main__":
    if "--fake" in sys.argv:
        run_fake()
    else:
        sys.exit(main())
