"""A deterministic in-memory session for snapshot tests: fixed jobs, times and samples."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from console.core.clock import ManualClock

T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


def job(id: str, state: str, lane: str = "local", *, name: str = "", priority: int = 0,
        seq: int = 0, created: float = -60, started: float | None = None,
        finished: float | None = None, exit_code: int | None = None, error: str | None = None,
        held: str | None = None, meta: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "id": id, "name": name or f"job {id}", "lane": lane, "kind": "shell", "state": state,
        "priority": priority, "seq": seq, "retries": 0, "attempts": 1 if started else 0,
        "created_at": T0 + created, "started_at": None if started is None else T0 + started,
        "finished_at": None if finished is None else T0 + finished, "exit_code": exit_code,
        "error": error, "held_reason": held, "log_path": None, "meta": meta or {},
        "command": f"sleep {seq}", "spec": {"argv": ["sleep", str(seq)]},
    }  # fmt: skip


JOBS = [
    job("aaa111", "running", "local", name="pull llama3:70b", seq=1, started=-75,
        meta={"progress": 0.42, "status": "downloading"}),
    job("bbb222", "queued", "local", name="make test", seq=2, priority=5),
    job("ccc333", "queued", "remote", name="eval batch 1", seq=3),
    job("ddd444", "queued", "local", name="fine-tune", seq=4, held="load 7.9 > 6.0"),
    job("eee555", "succeeded", "remote", name="echo hello", seq=5, started=-50, finished=-48,
        exit_code=0),
    job("fff666", "failed", "local", name="pytest -x", seq=6, started=-40, finished=-30,
        exit_code=1),
    job("ggg777", "cancelled", "remote", name="sleep 100", seq=7, started=-20, finished=-10,
        error="cancelled"),
]
STATUS = {
    "local": {"running": 1, "queued": 2, "cap": 1, "paused": False, "held": None},
    "remote": {"running": 0, "queued": 1, "cap": 5, "paused": False, "held": None},
    "turn": "local", "cross_mix": False, "accepting": True, "orphans": [],
}
VIOLATIONS = [
    {"id": 1, "rule": "swap_used", "message": "swap 3.1G over the 2G limit while aaa111 ran",
     "severity": "warning", "reading": 3.1, "threshold": 2.0, "job_ids": ["aaa111"], "at": T0 - 30},
    {"id": 2, "rule": "cross_mix", "message": "a remote job started while a local job ran",
     "severity": "critical", "reading": None, "threshold": None, "job_ids": [], "at": T0 - 5},
]  # fmt: skip
GIB = 1024**3


def samples() -> list[dict[str, Any]]:
    out = []
    for i in range(120):
        out.append({
            "at": T0 - 600 + i * 5, "load1": 1.0 + (i % 20) / 5, "load5": 1.0, "load15": 1.0,
            "cores": 8, "mem_total": 32 * GIB, "mem_used": (10 + i % 8) * GIB,
            "mem_available": (22 - i % 8) * GIB, "swap_total": 4 * GIB,
            "swap_used": (i % 30) / 10 * GIB, "pressure": None, "pressure_pct": None,
            "thresholds": {"max_swap_gb": 2.0, "max_load_per_core": 0.75, "memory_headroom_gb": 4.0},
        })  # fmt: skip
    return out


class FakeSession:
    """Records the actions it was asked for; serves a fixed snapshot."""

    mode = "owner"

    def __init__(self, home: Path) -> None:
        self.home = home
        self.calls: list[tuple[str, Any]] = []
        self.queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.closed: str | None = None

    async def start(self) -> None:
        pass

    async def events(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        yield "snapshot", {"jobs": [dict(j) for j in JOBS], "status": STATUS,
                           "violations": VIOLATIONS}  # fmt: skip
        while True:
            yield await self.queue.get()

    async def add(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("add", payload))
        return job("new999", "queued", payload["lane"], name=payload.get("name") or "new")

    async def cancel(self, job_id: str) -> dict[str, Any]:
        self.calls.append(("cancel", job_id))
        return {}

    async def priority(self, job_id: str, priority: int) -> dict[str, Any]:
        self.calls.append(("priority", (job_id, priority)))
        return {}

    async def retry(self, job_id: str) -> dict[str, Any]:
        self.calls.append(("retry", job_id))
        return {}

    async def pause(self, lanes: str) -> dict[str, Any]:
        self.calls.append(("pause", lanes))
        return {}

    async def resume(self, lanes: str) -> dict[str, Any]:
        self.calls.append(("resume", lanes))
        return {}

    async def job(self, job_id: str) -> dict[str, Any]:
        found = next(j for j in JOBS if j["id"] == job_id)
        return {**found, "attempts_log": []}

    async def log_chunk(self, job_id: str, offset: int) -> bytes:
        return b"line one\nline two\n" if offset == 0 and job_id == "aaa111" else b""

    async def samples(self, seconds: float = 600.0) -> list[dict[str, Any]]:
        return samples()

    def running_count(self) -> int:
        return 0

    async def close(self, running: str = "stop") -> None:
        self.closed = running


def fake_app(home: Path, theme: str | None = None, keymap: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """The console on a FakeSession with a fixed clock (for snapshots)."""
    from console.core import config
    from console.tui.app import build_app

    cfg = config.load()
    if theme:
        cfg.set("ui.theme", theme)
    if keymap:
        cfg.set("ui.keymap", keymap)
    session = FakeSession(home)

    async def factory() -> FakeSession:
        return session

    app = build_app(home=home, config=cfg, session_factory=factory, clock=ManualClock(T0))
    app.fake = session  # type: ignore[attr-defined]
    return app
