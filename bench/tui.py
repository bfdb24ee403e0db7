"""Console speed with 10,000 finished and 1,000 queued jobs (printed, not asserted).

Targets: idle CPU <= 2% of a core, RSS <= 150 MB, first paint <= 1 s, key -> effect
<= 100 ms.

The real ``twolane`` runs as its own process in a pseudo-terminal; a terminal emulator
(pyte) in this process keeps its screen, and every figure is read off that screen:

- first paint: from just before the process is spawned until the screen shows the lane
  bar's counts, queue rows and the footer;
- idle CPU: the console process's CPU time over a window while it shows the jobs;
- key -> effect: from writing a key to the terminal until the screen shows its effect
  (lane filter ``l``, typing a ``/`` filter, ``+`` / ``-`` on a queued job, cursor moves);
- RSS: the console process's resident memory at the end.

``key_ms`` is the slowest key's median (the target holds for every key); each key's
median and worst press follow.

The baseline is an empty Textual app (one label, one key) measured the same way in the
same run. Several runs; the medians are printed with the load average.

    .venv/bin/python bench/tui.py [--runs 3] [--size 120x40] [--idle 10]
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import pty
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pyte

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FINISHED, QUEUED = 10_000, 1_000
KEYS = {"down": b"\x1b[B", "up": b"\x1b[A", "escape": b"\x1b"}
EMPTY_APP = """
from textual.app import App
from textual.widgets import Label

class Empty(App):
    BINDINGS = [("l", "flip", "Flip")]

    def compose(self):
        yield Label("ready", id="x")

    def action_flip(self):
        label = self.query_one(Label)
        label.update("flipped" if str(label.render()) == "ready" else "ready")

Empty().run()
"""


async def seed(home: Path) -> None:
    from console.core import paths
    from console.core.jobs import new_job
    from console.core.models import JobState, Lane
    from console.core.store import Store

    paths.ensure_home(home)
    store = await Store.open(paths.db_path(home))
    now = time.time()
    for i in range(FINISHED + QUEUED):
        job = new_job(["true"], lane="local" if i % 2 else "remote", now=now - 20_000 + i)
        if i < FINISHED:
            job.state, job.started_at, job.finished_at, job.exit_code = JobState.SUCCEEDED, now - 100, now - 99, 0
        await store.add_job(job)
        if i < FINISHED:
            await store.save_job(job)
    await store.set_paused(list(Lane), True)  # the 1,000 queued stay queued
    await store.close()


class Term:
    """A process in a pseudo-terminal of ``cols`` x ``rows``; its screen kept by pyte."""

    def __init__(self, argv: list[str], cols: int, rows: int, env: dict[str, str]) -> None:
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.cond = threading.Condition()
        self.at = 0.0  # when the bytes the screen shows last arrived
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     start_new_session=True, close_fds=True)  # fmt: skip
        os.close(slave)
        self.master = master
        self.ps = psutil.Process(self.proc.pid)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 1 << 16)
            except OSError:
                data = b""
            arrived = time.perf_counter()
            with self.cond:
                if not data:
                    self.cond.notify_all()
                    return
                self.stream.feed(data)
                self.at = arrived
                self.cond.notify_all()

    def wait(self, pred: Callable[[pyte.Screen], bool], what: str, timeout: float = 30.0) -> float:
        """When the bytes that made ``pred`` true arrived (perf_counter seconds)."""
        with self.cond:
            if not self.cond.wait_for(lambda: pred(self.screen) or self.proc.poll() is not None, timeout):
                raise TimeoutError(f"screen never showed {what}:\n" + "\n".join(self.screen.display))
            if not pred(self.screen):
                raise RuntimeError(f"the process ended before {what}:\n" + "\n".join(self.screen.display))
            return self.at

    def key(self, key: str, pred: Callable[[pyte.Screen], bool], what: str) -> float:
        """Milliseconds from writing ``key`` until the screen shows its effect."""
        sent = time.perf_counter()
        os.write(self.master, KEYS.get(key, key.encode()))
        return (self.wait(pred, what) - sent) * 1000

    def text(self) -> str:
        with self.cond:
            return "\n".join(self.screen.display)

    def idle_cpu(self, seconds: float) -> float:
        """The process's CPU over ``seconds``, in percent of one core."""
        c0, w0 = self.ps.cpu_times(), time.perf_counter()
        time.sleep(seconds)
        c1, w1 = self.ps.cpu_times(), time.perf_counter()
        return ((c1.user + c1.system) - (c0.user + c0.system)) / (w1 - w0) * 100

    def close(self) -> None:
        if self.proc.poll() is None:
            os.write(self.master, b"q")
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        os.close(self.master)


def has(*needles: str) -> Callable[[pyte.Screen], bool]:
    return lambda screen: all(any(n in line for line in screen.display) for n in needles)


def row_of(screen: pyte.Screen, job_id: str) -> str:
    return next((line for line in screen.display if f" {job_id} " in line), "")


def cursor_line(screen: pyte.Screen, bg: str) -> int | None:
    """The screen line whose ID cell has the cursor's background."""
    for y in range(screen.lines):
        cell = screen.buffer[y][2]
        if cell.bg == bg and screen.display[y][2:8].strip():
            return y
    return None


def measure_empty(cols: int, rows: int, idle: float) -> dict[str, float]:
    env = {**os.environ, "TERM": "xterm-256color"}
    term = Term([sys.executable, "-c", EMPTY_APP], cols, rows, env)
    try:
        paint = term.wait(has("ready"), "the label") - term.t0
        time.sleep(1.0)
        cpu = term.idle_cpu(idle)
        keys = [term.key("l", has("flipped"), "flipped"), term.key("l", has("ready"), "ready")]
        rss = term.ps.memory_info().rss / 2**20
    finally:
        term.close()
    return {"first_paint_s": paint, "idle_cpu_pct": cpu, "rss_mb": rss,
            "key_ms": statistics.median(keys)}  # fmt: skip


def measure_console(home: Path, cols: int, rows: int, idle: float) -> dict[str, float]:
    env = {**os.environ, "TERM": "xterm-256color", "TWOLANE_HOME": str(home),
           "TWOLANE_CONFIG": str(home / "config.toml")}  # fmt: skip
    twolane = str(Path(sys.executable).with_name("twolane"))
    term = Term([twolane], cols, rows, env)
    try:
        ready = has(f"{QUEUED // 2} queued", " queued ", "q Quit")
        paint = term.wait(ready, "lane bar, queue rows and footer") - term.t0
        time.sleep(1.0)
        cpu = term.idle_cpu(idle)
        out: dict[str, list[float]] = {"l": [], "/": [], "+/-": [], "cursor": []}
        # The lane filter: local, remote, all.
        for title in ("Queue · local", "Queue · remote", "Queue · all lanes"):
            out["l"].append(term.key("l", has(title), title))
        # Cursor moves: the highlighted row moves down, then up.
        with term.cond:
            top = next(y for y, line in enumerate(term.screen.display)
                       if line.startswith("│ ") and " queued " in line)
            bg = term.screen.buffer[top][2].bg
            first_id = term.screen.display[top][2:8]
        for key, step in (("down", 1), ("down", 2), ("down", 3), ("up", 2), ("up", 1), ("up", 0)):
            out["cursor"].append(term.key(key, lambda s, y=top + step: cursor_line(s, bg) == y,
                                          f"cursor on line {top + step}"))  # fmt: skip
        # Reprioritize the selected (first) queued job: up and back down.
        for pri in ("1", "0", "1", "0"):
            key = "+" if pri == "1" else "-"
            out["+/-"].append(term.key(key, lambda s, p=pri: row_of(s, first_id).split()[3:4] == [p],
                                       f"{first_id} at priority {pri}"))  # fmt: skip
        # Typing a filter: one key at a time, each narrowing the queue; esc clears.
        out["/"].append(term.key("/", has("filter: text"), "the filter box"))
        typed = ""
        for ch in first_id[:3]:
            typed += ch
            out["/"].append(term.key(ch, has(f"filter “{typed}”"), f"filter {typed}"))
        out["/"].append(term.key("escape", lambda s: not has("filter “")(s), "filter cleared"))
        rss = term.ps.memory_info().rss / 2**20
    finally:
        term.close()
    # The target holds for every key: the slowest key's median is the figure.
    result = {"first_paint_s": paint, "idle_cpu_pct": cpu, "rss_mb": rss,
              "key_ms": max(statistics.median(vs) for vs in out.values())}  # fmt: skip
    for name, values in out.items():
        result[f"key {name} ms"] = statistics.median(values)
        result[f"key {name} max ms"] = max(values)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", default="120x40", help="terminal COLSxROWS")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of the idle window")
    args = parser.parse_args()
    cols, rows = (int(n) for n in args.size.split("x"))
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="twolane-bench-tui-") as tmp:
        home = Path(tmp)
        asyncio.run(seed(home))
        # A free gateway port: other runs on this machine may hold the default one.
        (home / "config.toml").write_text("[gateway]\nport = 0\n")
        base, ours = [], []
        for _ in range(args.runs):
            base.append(measure_empty(cols, rows, args.idle))
            ours.append(measure_console(home, cols, rows, args.idle))
    load_after = os.getloadavg()
    print(f"{args.runs} runs at {cols}x{rows}, idle window {args.idle:g} s; load average "
          f"{load_before[0]:.2f} before, {load_after[0]:.2f} after ({os.cpu_count()} cores)")  # fmt: skip
    print(f"{'metric (median)':<22}{'empty app':>11}{'twolane':>10}{'min':>9}{'max':>9}  target")
    targets = {"first_paint_s": "<= 1 s", "idle_cpu_pct": "<= 2%", "rss_mb": "<= 150 MB",
               "key_ms": "<= 100 ms"}  # fmt: skip
    for key in ours[0]:
        values = [r[key] for r in ours]
        b = f"{statistics.median(r[key] for r in base):>11.2f}" if key in base[0] else " " * 11
        print(f"{key:<22}{b}{statistics.median(values):>10.2f}{min(values):>9.2f}"
              f"{max(values):>9.2f}  {targets.get(key, '')}")  # fmt: skip


if __name__ == "__main__":
    main()
