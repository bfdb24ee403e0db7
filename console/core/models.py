"""The data every layer shares: jobs, lanes, states, violations.

Plain dataclasses and enums, JSON-friendly through ``to_dict``; field names are the
stable snake_case names the CLI's ``--json`` and the control API expose.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Lane(StrEnum):
    LOCAL = "local"
    REMOTE = "remote"

    @property
    def other(self) -> Lane:
        return Lane.REMOTE if self is Lane.LOCAL else Lane.LOCAL


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def finished(self) -> bool:
        return self in FINISHED_STATES


FINISHED_STATES = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.INTERRUPTED}
)

# Short ids a person can type: lowercase letters and digits without the look-alikes.
_ID_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"


# Each random byte below the largest multiple of 31 maps to one character; the bytes at or
# above it are dropped, so every character is as likely. One ``bytes.translate`` does both.
_ID_LIMIT = 256 - 256 % len(_ID_ALPHABET)
_ID_TABLE = bytes(ord(_ID_ALPHABET[b % len(_ID_ALPHABET)]) if b < _ID_LIMIT else 0 for b in range(256))
_ID_DROPPED = bytes(range(_ID_LIMIT, 256))


def new_job_id(length: int = 6) -> str:
    """A random id such as ``k3m9qa`` (31**6 ≈ 887 million values)."""
    # os.urandom rather than ``secrets`` (whose imports cost `twolane add` ~9 ms); mapped
    # with a table rather than byte by byte in Python (a gateway request makes one id).
    out = b""
    while len(out) < length:
        out += os.urandom(length * 2).translate(_ID_TABLE, _ID_DROPPED)
    return out[:length].decode()


@dataclass(slots=True)
class JobSpec:
    """What to run. ``argv`` for exec, or ``shell`` for a shell string when asked for."""

    argv: list[str] = field(default_factory=list)
    shell: str | None = None
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None
    # Kind-specific fields (model, ctx, url, ...): other job kinds keep theirs here.
    extra: dict[str, Any] = field(default_factory=dict)

    def display(self) -> str:
        if self.shell is not None:
            return self.shell
        if not self.argv:  # in-process jobs (gateway requests): every event asks
            return ""
        import shlex

        return shlex.join(self.argv)

    def to_dict(self) -> dict[str, Any]:
        # Built by hand: every job write and event runs this, and asdict's deep copy is slow.
        return {"argv": list(self.argv), "shell": self.shell, "cwd": self.cwd, "env": dict(self.env),
                "timeout": self.timeout, "extra": dict(self.extra)}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        return cls(
            argv=list(data.get("argv") or []),
            shell=data.get("shell"),
            cwd=data.get("cwd"),
            env=dict(data.get("env") or {}),
            timeout=data.get("timeout"),
            extra=dict(data.get("extra") or {}),
        )


@dataclass(slots=True)
class Job:
    id: str
    name: str
    lane: Lane
    kind: str
    spec: JobSpec
    priority: int = 0
    state: JobState = JobState.QUEUED
    seq: int = 0  # global FIFO order, assigned by the store
    retries: int = 0  # extra attempts allowed after a failed one
    retry_on_interrupt: bool = False
    force: bool = False  # skip pre-flight gates for this job
    attempts: int = 0
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    error: str | None = None
    log_path: str | None = None
    held_reason: str | None = None
    pid: int | None = None
    pid_start: float | None = None  # process create time, to recognise a pid after a crash
    meta: dict[str, Any] = field(default_factory=dict)  # progress, model, client, sizes...

    @property
    def finished(self) -> bool:
        return self.state.finished

    def sort_key(self) -> tuple[int, int]:
        """Order inside a lane: higher priority first, FIFO within a level."""
        return (-self.priority, self.seq)

    def to_dict(self) -> dict[str, Any]:
        # Built by hand: this runs for every event, and asdict's deep copy is slow.
        spec = self.spec
        return {
            "id": self.id, "name": self.name, "lane": str(self.lane), "kind": self.kind,
            "spec": spec.to_dict(),
            "priority": self.priority, "state": str(self.state), "seq": self.seq,
            "retries": self.retries, "retry_on_interrupt": self.retry_on_interrupt,
            "force": self.force, "attempts": self.attempts, "created_at": self.created_at,
            "started_at": self.started_at, "finished_at": self.finished_at,
            "exit_code": self.exit_code, "error": self.error, "log_path": self.log_path,
            "held_reason": self.held_reason, "pid": self.pid, "pid_start": self.pid_start,
            "meta": dict(self.meta), "command": spec.display(),
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        return cls(
            id=data["id"],
            name=data.get("name") or "",
            lane=Lane(data["lane"]),
            kind=data.get("kind", "shell"),
            spec=JobSpec.from_dict(data.get("spec") or {}),
            priority=int(data.get("priority", 0)),
            state=JobState(data.get("state", "queued")),
            seq=int(data.get("seq", 0)),
            retries=int(data.get("retries", 0)),
            retry_on_interrupt=bool(data.get("retry_on_interrupt", False)),
            force=bool(data.get("force", False)),
            attempts=int(data.get("attempts", 0)),
            created_at=float(data.get("created_at", 0.0)),
            started_at=data.get("started_at"),
            finished_at=data.get("finished_at"),
            exit_code=data.get("exit_code"),
            error=data.get("error"),
            log_path=data.get("log_path"),
            held_reason=data.get("held_reason"),
            pid=data.get("pid"),
            pid_start=data.get("pid_start"),
            meta=dict(data.get("meta") or {}),
        )


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(slots=True)
class Violation:
    """A broken rule: which, what was read against what limit, who was involved, when."""

    rule: str
    message: str
    severity: Severity = Severity.WARNING
    reading: float | None = None
    threshold: float | None = None
    job_ids: list[str] = field(default_factory=list)
    at: float = 0.0
    id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["severity"] = str(self.severity)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Violation:
        return cls(
            rule=data["rule"],
            message=data.get("message", ""),
            severity=Severity(data.get("severity", "warning")),
            reading=data.get("reading"),
            threshold=data.get("threshold"),
            job_ids=list(data.get("job_ids") or []),
            at=float(data.get("at", 0.0)),
            id=data.get("id"),
        )
