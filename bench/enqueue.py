"""Enqueue: `twolane add` wall time (direct to the database and through a running owner)
against the bare interpreter start-up, and control-socket enqueue p50/p99 against a
socket round trip that does nothing (GET /health). Target: `twolane add` median <= 150 ms.

    python bench/enqueue.py [RUNS]

Commands run as a user runs them: the installed `twolane` script, with Python free to
cache bytecode (PYTHONDONTWRITEBYTECODE, set in some sandboxes, is removed; one warm-up
run writes the cache). Beside the median wall time each line gives the median CPU time
(user + system) of the command, which other load on a shared machine barely moves.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import median, pct, temp_home  # noqa: E402


CPU: dict[str, list[float]] = {}


def wall(cmd: list[str], runs: int) -> list[float]:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)  # warm-up: bytecode cache
    out, cpu = [], []
    for _ in range(runs):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        out.append(time.perf_counter() - t0)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
    CPU[" ".join(cmd)] = cpu
    return out


def cpu_of(cmd: list[str]) -> float:
    return median(CPU[" ".join(cmd)])


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    home = temp_home("enqueue")
    os.environ["TWOLANE__GATEWAY__ENABLED"] = "false"
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    script = Path(sys.executable).parent / "twolane"
    twolane = [str(script)] if script.exists() else [sys.executable, "-m", "console"]
    add = [*twolane, "add", "--", "true"]
    floor = [sys.executable, "-c", "pass"]
    base = wall(floor, runs)
    direct = wall(add, runs)
    owner = subprocess.Popen([*twolane, "serve"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from console.client import owner_client

        deadline = time.monotonic() + 30
        client = None
        while client is None and time.monotonic() < deadline:
            client = owner_client(home)
            time.sleep(0.05)
        assert client is not None, "the owner did not start"
        client.pause("all")  # measure enqueueing, not running
        direct_cpu = cpu_of(add)
        via_owner = wall(add, runs)
        pings, adds = [], []
        for _ in range(runs * 10):
            t0 = time.perf_counter()
            client.ping()
            pings.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            client.add({"command": ["true"], "lane": "remote"})
            adds.append(time.perf_counter() - t0)
    finally:
        owner.send_signal(signal.SIGTERM)
        owner.wait(timeout=30)
    ms = 1000
    print(f"`twolane add`, {runs} runs each (median; load {os.getloadavg()[0]:.1f})")
    print(f"  python -c pass (start-up floor)   {median(base) * ms:7.1f} ms   cpu {cpu_of(floor) * ms:6.1f} ms")
    print(f"  twolane add, no owner (direct)    {median(direct) * ms:7.1f} ms   cpu {direct_cpu * ms:6.1f} ms"
          f"   ratio {median(direct) / median(base):.2f}x")
    print(f"  twolane add, through the owner    {median(via_owner) * ms:7.1f} ms   cpu {cpu_of(add) * ms:6.1f} ms"
          f"   ratio {median(via_owner) / median(base):.2f}x")
    print("  target: <= 150 ms")
    print(f"control socket, {len(adds)} calls")
    print(f"  GET /health   p50 {pct(pings, 50) * ms:6.2f} ms   p99 {pct(pings, 99) * ms:6.2f} ms")
    print(f"  POST /jobs    p50 {pct(adds, 50) * ms:6.2f} ms   p99 {pct(adds, 99) * ms:6.2f} ms"
          f"   (p50 ratio {pct(adds, 50) / pct(pings, 50):.2f}x a no-op round trip)")


if __name__ == "__main__":
    main()
