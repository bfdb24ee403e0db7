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
        held: str | None = None, meta: dict[str, Any] | None = None,
        kind: str = "shell", extra: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "id": id, "name": name or f"job {id}", "lane": lane, "kind": kind, "state": state,
        "priority": priority, "seq": seq, "retries": 0, "attempts": 1 if started else 0,
        "created_at": T0 + created, "started_at": None if started is None else T0 + started,
        "finished_at": None if finished is None else T0 + finished, "exit_code": exit_code,
        "error": error, "held_reason": held, "log_path": None, "meta": meta or {},
        "command": f"sleep {seq}", "spec": {"argv": ["sleep", str(seq)], "extra": extra or {}},
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


# ---- ladder runs: the files `twolane ladder` leaves, with fixed numbers ------------------

LADDER_SLO = {"p95_ratio": 3.0, "error_rate": 0.01, "swap_gb": 2.0}


def ladder_step(c: int, p50: float, p95: float, *, errors: int = 0, requests: int = 8) -> dict[str, Any]:
    return {"step": c.bit_length(), "concurrency": c, "requests": requests, "ok": requests - errors,
            "errors": errors, "error_rate": errors / requests, "wall_s": 4.0, "ttft_p50": p50 / 8,
            "ttft_p95": p95 / 8, "ttft_p99": p95 / 7, "e2e_p50": p50, "e2e_p95": p95, "e2e_p99": p95 * 1.05,
            "tokens_out": requests * 64, "tokens_per_s": requests * 64 / 4.0 * min(c, 2),
            "requests_per_s": requests / 4.0 * min(c, 2), "swap_growth_mb": 0.0}  # fmt: skip


# Knee at 4: p95 there is 4.4x step 1's.
KNEE_STEPS = [ladder_step(1, 0.80, 0.90), ladder_step(2, 0.85, 1.00), ladder_step(4, 3.60, 3.96)]
SMOOTH_STEPS = [ladder_step(1, 0.50, 0.55), ladder_step(2, 0.52, 0.60), ladder_step(4, 0.70, 0.81),
                ladder_step(8, 1.10, 1.30)]  # fmt: skip


def write_ladder_run(folder: Path, model: str, steps: list[dict[str, Any]], *, planned: list[int],
                     knee: int | None = None, finished: bool = True,
                     current: dict[str, Any] | None = None, started: float = -300) -> Path:  # fmt: skip
    """A run folder as `twolane ladder` leaves it: spec.json, then summary.json when it
    ended or progress.json while it climbs."""
    import json

    from console.core.ladder.plan import Slo
    from console.core.ladder.verdict import slo_verdicts

    folder.mkdir(parents=True, exist_ok=True)
    url = "http://127.0.0.1:11434"
    (folder / "spec.json").write_text(json.dumps({"url": url, "model": model, "steps": planned,
                                                  "out": str(folder), "requests": 8, "slo": LADDER_SLO}))  # fmt: skip
    knee_d = None
    if knee is not None:
        base, at = steps[0]["e2e_p95"], next(s for s in steps if s["concurrency"] == knee)
        ratio = at["e2e_p95"] / base
        knee_d = {"step": at["step"], "concurrency": knee, "breaches": [{
            "rule": "p95_ratio", "reading": ratio, "threshold": 3.0,
            "message": f"p95 end-to-end {at['e2e_p95']:.3f}s at concurrency {knee} is {ratio:.2f}x the baseline {base:.3f}s (limit 3x)"}]}  # fmt: skip
    stopped = (f"knee at concurrency {knee}: " + knee_d["breaches"][0]["message"] if knee_d
               else f"no knee: all {len(steps)} steps within the SLOs")  # fmt: skip
    data = {"model": model, "server": {"url": url, "api": "ollama", "local": True}, "slo": LADDER_SLO,
            "started_at": T0 + started, "steps": steps, "knee": knee_d}  # fmt: skip
    if finished:
        data.update(client={"steps": planned}, stopped=stopped,
                    verdicts=slo_verdicts(steps, Slo(**LADDER_SLO), knee_d))
        (folder / "summary.json").write_text(json.dumps(data))
    else:
        data.update(planned=planned, stopped="running", current=current, requests_per_step=8)
        (folder / "progress.json").write_text(json.dumps(data))
    return folder


def ladder_job(id: str, state: str, folder: Path, model: str, *, seq: int, created: float,
               **kw: Any) -> dict[str, Any]:  # fmt: skip
    return job(id, state, "local", name=f"ladder {model} c=1,2,4,8", seq=seq, created=created,
               extra={"ladder_out": str(folder)}, **kw)


class FakeSession:
    """Records the actions it was asked for; serves a fixed snapshot."""

    mode = "owner"

    def __init__(self, home: Path, jobs: list[dict[str, Any]] | None = None) -> None:
        self.home = home
        self.jobs = JOBS + (jobs or [])
        self.calls: list[tuple[str, Any]] = []
        self.queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.closed: str | None = None

    async def start(self) -> None:
        pass

    async def events(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        yield "snapshot", {"jobs": [dict(j) for j in self.jobs], "status": STATUS,
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
        found = next(j for j in self.jobs if j["id"] == job_id)
        return {**found, "attempts_log": []}

    async def log_chunk(self, job_id: str, offset: int) -> bytes:
        return b"line one\nline two\n" if offset == 0 and job_id == "aaa111" else b""

    async def samples(self, seconds: float = 600.0) -> list[dict[str, Any]]:
        return samples()

    def running_count(self) -> int:
        return 0

    async def close(self, running: str = "stop") -> None:
        self.closed = running


def fake_app(home: Path, theme: str | None = None, keymap: dict[str, str] | None = None,  # type: ignore[no-untyped-def]
             jobs: list[dict[str, Any]] | None = None):
    """The console on a FakeSession (serving ``jobs`` too) with a fixed clock (for snapshots)."""
    from console.core import config
    from console.tui.app import build_app

    cfg = config.load()
    if theme:
        cfg.set("ui.theme", theme)
    if keymap:
        cfg.set("ui.keymap", keymap)
    session = FakeSession(home, jobs)

    async def factory() -> FakeSession:
        return session

    app = build_app(home=home, config=cfg, session_factory=factory, clock=ManualClock(T0))
    app.fake = session  # type: ignore[attr-defined]
    return app
