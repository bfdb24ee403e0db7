"""What the console knows, as plain data: jobs, lanes, violations and samples.

Events from the session are applied here (cheap dict updates); the screen reads what
changed since its last repaint (``take_dirty``), so a burst of events costs one repaint.
No Textual here: this module is tested on its own.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

LIVE_STATES = ("running", "queued")
FINISHED_SHOWN = 200  # newest finished jobs the console keeps and shows
VIOLATIONS_KEPT = 500
LANE_FILTERS = (None, "local", "remote")


def job_note(job: dict[str, Any]) -> str:
    """Why a job waits or how it ended, in a few words."""
    if job.get("held_reason"):
        return "held: " + job["held_reason"]
    if job["state"] in ("failed", "interrupted", "cancelled"):
        if job.get("error"):
            return str(job["error"])
        if job.get("exit_code") is not None:
            return f"exit {job['exit_code']}"
    if job["state"] == "succeeded" and job.get("exit_code") is not None:
        return f"exit {job['exit_code']}"
    return ""


def sort_key(job: dict[str, Any]) -> tuple[int, float, float]:
    """Running first, then queued by priority and FIFO, then finished newest first."""
    state = job["state"]
    if state == "running":
        return (0, -(job.get("started_at") or 0.0), 0.0)
    if state == "queued":
        return (1, -job.get("priority", 0), job.get("seq", 0))
    return (2, -(job.get("finished_at") or job.get("created_at") or 0.0), 0.0)


def matches(job: dict[str, Any], text: str, lane: str | None) -> bool:
    """The queue's filter: lane, and text found in id, name, command, state or note."""
    if lane and job["lane"] != lane:
        return False
    if not text:
        return True
    needle = text.lower()
    hay = " ".join(
        str(job.get(k) or "") for k in ("id", "name", "command", "state", "held_reason", "error")
    ).lower()
    return needle in hay


@dataclass
class ConsoleModel:
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)
    violations: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=VIOLATIONS_KEPT))
    samples: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=1200))
    finished_cap: int = FINISHED_SHOWN
    dirty_jobs: set[str] = field(default_factory=set)
    removed_jobs: set[str] = field(default_factory=set)
    lanes_dirty: bool = False
    new_violations: list[dict[str, Any]] = field(default_factory=list)
    samples_dirty: bool = False
    reset: bool = False  # a snapshot replaced everything

    # ---- applying events ---------------------------------------------------------------

    def apply(self, kind: str, data: dict[str, Any]) -> None:
        """Fold one session event into the model."""
        if kind == "snapshot":
            self.load_snapshot(data)
        elif kind == "job":
            self.put_job(data)
        elif kind == "lanes":
            self.status = data
            self.lanes_dirty = True
        elif kind == "violation":
            self.violations.append(data)
            self.new_violations.append(data)
        elif kind == "sample":
            self.samples.append(data)
            self.samples_dirty = True

    def load_snapshot(self, snap: dict[str, Any]) -> None:
        self.jobs = {j["id"]: j for j in snap.get("jobs", [])}
        self.status = snap.get("status", {})
        self.violations.clear()
        self.violations.extend(snap.get("violations", []))
        self._trim_finished()
        self.reset = True
        self.lanes_dirty = True
        self.new_violations = list(self.violations)

    def load_samples(self, samples: Iterable[dict[str, Any]]) -> None:
        self.samples.extend(samples)
        self.samples_dirty = True

    def put_job(self, job: dict[str, Any]) -> None:
        was = self.jobs.get(job["id"])
        self.jobs[job["id"]] = job
        self.dirty_jobs.add(job["id"])
        self.removed_jobs.discard(job["id"])
        if job["state"] not in LIVE_STATES and (was is None or was["state"] in LIVE_STATES):
            self._trim_finished()

    def _trim_finished(self) -> None:
        finished = [j for j in self.jobs.values() if j["state"] not in LIVE_STATES]
        excess = len(finished) - self.finished_cap
        if excess <= 0:
            return
        finished.sort(key=lambda j: j.get("finished_at") or j.get("created_at") or 0.0)
        for job in finished[:excess]:
            del self.jobs[job["id"]]
            self.dirty_jobs.discard(job["id"])
            self.removed_jobs.add(job["id"])

    def take_dirty(self) -> tuple[bool, set[str], set[str]]:
        """(reset, changed ids, removed ids) since the last call, and clear them."""
        out = (self.reset, self.dirty_jobs, self.removed_jobs)
        self.reset = False
        self.dirty_jobs, self.removed_jobs = set(), set()
        return out

    # ---- reading -----------------------------------------------------------------------

    def visible(self, text: str = "", lane: str | None = None) -> list[dict[str, Any]]:
        """The jobs the queue shows, in display order."""
        return sorted((j for j in self.jobs.values() if matches(j, text, lane)), key=sort_key)

    def running(self) -> list[dict[str, Any]]:
        return sorted(
            (j for j in self.jobs.values() if j["state"] == "running"),
            key=lambda j: j.get("started_at") or 0.0,
        )

    def running_count(self) -> int:
        return sum(1 for j in self.jobs.values() if j["state"] == "running")


def lane_summary(status: dict[str, Any], compact: bool = False) -> list[tuple[str, str]]:
    """The lane bar as (text, style-class) parts: local, remote, whose turn. ``compact``
    (for 80 columns) drops remote's word "running": ``remote 0/5 paused · 500 queued``."""
    if not status:
        return [("connecting…", "muted")]
    parts: list[tuple[str, str]] = []
    local = status.get("local", {})
    if local.get("paused"):
        parts.append(("local paused", "warning"))
    elif local.get("held"):
        parts.append((f"local held ({local['held']})", "warning"))
    elif local.get("running"):
        parts.append(("local running", "success"))
    else:
        parts.append(("local idle", "muted"))
    parts[-1] = (parts[-1][0] + f" · {local.get('queued', 0)} queued", parts[-1][1])
    remote = status.get("remote", {})
    text = f"remote {remote.get('running', 0)}/{remote.get('cap', 0)}"
    if compact:
        if remote.get("paused"):
            text += " paused"
        elif remote.get("held"):
            text += f" held: {remote['held']}"
    else:
        text += " running"
        if remote.get("paused"):
            text += " (paused)"
        elif remote.get("held"):
            text += f" (held: {remote['held']})"
    text += f" · {remote.get('queued', 0)} queued"
    style = "warning" if remote.get("paused") or remote.get("held") else (
        "success" if remote.get("running") else "muted"
    )
    parts.append((text, style))
    turn = status.get("turn")
    parts.append((f"turn {turn}" if turn else "turn -", "accent"))
    if status.get("cross_mix"):
        parts.append(("cross-mix on", "warning"))
    return parts
