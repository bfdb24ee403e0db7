"""Building and changing jobs: validation and the state edits both the owner and the
ownerless CLI make, so the two paths behave the same."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from console.core.errors import Conflict, UserError
from console.core.models import Job, JobSpec, JobState, Lane, new_job_id

MAX_PRIORITY = 1_000_000


def parse_lane(value: str) -> Lane:
    try:
        return Lane(value.strip().lower())
    except ValueError:
        raise UserError(f"unknown lane '{value}'; use local or remote") from None


def parse_lanes(value: str) -> list[Lane]:
    """``local``, ``remote`` or ``all``."""
    if value.strip().lower() == "all":
        return list(Lane)
    try:
        return [Lane(value.strip().lower())]
    except ValueError:
        raise UserError(f"unknown lane '{value}'; use local, remote or all") from None


def parse_state(value: str) -> JobState:
    try:
        return JobState(value.strip().lower())
    except ValueError:
        names = ", ".join(s.value for s in JobState)
        raise UserError(f"unknown state '{value}'; use one of {names}") from None


def check_priority(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"priority must be an integer, got {value!r}")
    if abs(value) > MAX_PRIORITY:
        raise UserError(f"priority {value} is out of range; use -{MAX_PRIORITY}..{MAX_PRIORITY}")
    return value


def new_job(
    command: Sequence[str] | str,
    *,
    lane: Lane | str = Lane.LOCAL,
    kind: str = "shell",
    name: str | None = None,
    priority: int = 0,
    timeout: float | None = None,
    retries: int = 0,
    retry_on_interrupt: bool = False,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
    shell: bool = False,
    force: bool = False,
    extra: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
    now: float = 0.0,
) -> Job:
    """A validated, not yet stored job. Raises ``UserError`` with the fix on bad input."""
    lane = parse_lane(lane) if isinstance(lane, str) else lane
    if isinstance(command, str):
        command = [command] if command.strip() else []
    argv = [str(a) for a in command]
    if kind == "shell":
        if not argv or not argv[0].strip():
            raise UserError("empty command; give one after `--`, e.g. `twolane add -- make test`")
        if shell:
            spec = JobSpec(shell=" ".join(argv))
        else:
            spec = JobSpec(argv=argv)
    else:
        spec = JobSpec(argv=argv)
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise UserError(f"timeout must be a positive number of seconds, got {timeout!r}")
        spec.timeout = float(timeout)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 100:
        raise UserError(f"retry count must be 0..100, got {retries!r}")
    if cwd is not None:
        cwd = os.path.abspath(os.path.expanduser(cwd))
        if not os.path.isdir(cwd):
            raise UserError(f"working directory {cwd} does not exist; pass an existing --cwd")
        spec.cwd = cwd
    spec.env = dict(env or {})
    spec.extra = dict(extra or {})
    name = _checked_name((name or "").strip() or _default_name(spec))
    return Job(
        id=new_job_id(),
        name=name,
        lane=lane,
        kind=kind,
        spec=spec,
        priority=check_priority(priority),
        retries=retries,
        retry_on_interrupt=retry_on_interrupt,
        force=force,
        created_at=now,
        meta=dict(meta or {}),
    )


def in_process_job(lane: Lane, kind: str, name: str, priority: int, extra: dict[str, Any],
                   meta: dict[str, Any], now: float) -> Job:  # fmt: skip
    """``new_job([], ...)`` for a job the owner runs in-process (a gateway request):
    the same job, at half the cost (one is built per gateway request). ``priority`` must be
    checked already (``check_priority``); ``extra`` and ``meta`` become the job's own."""
    return Job(id=new_job_id(), name=_checked_name(name.strip()), lane=lane, kind=kind, spec=JobSpec(extra=extra),
               priority=priority, created_at=now, meta=meta)  # fmt: skip


def _checked_name(name: str) -> str:
    if len(name) > 200:
        raise UserError("name is longer than 200 characters; pass a shorter --name")
    return name


def _default_name(spec: JobSpec) -> str:
    text = spec.display()
    return text if len(text) <= 60 else text[:57] + "..."


def mark_cancelled(job: Job, now: float, reason: str = "cancelled") -> None:
    if job.state is not JobState.QUEUED:
        raise Conflict(f"job {job.id} is {job.state}; only queued or running jobs can be cancelled")
    job.state = JobState.CANCELLED
    job.finished_at = now
    job.error = reason
    job.held_reason = None


def reset_for_retry(job: Job, seq: int) -> None:
    """Send a finished job back to the queue at ``seq`` (its attempts history stays)."""
    if not job.finished:
        raise Conflict(f"job {job.id} is {job.state}; only finished jobs can be retried")
    job.state = JobState.QUEUED
    job.seq = seq
    job.started_at = job.finished_at = None
    job.exit_code = None
    job.error = None
    job.held_reason = None
    job.pid = job.pid_start = None


def check_reprioritize(job: Job) -> None:
    if job.state is not JobState.QUEUED:
        raise Conflict(
            f"job {job.id} is {job.state}; priority only orders queued jobs (it never preempts)"
        )


_PAYLOAD_FIELDS = {
    "command", "lane", "kind", "name", "priority", "timeout", "retries", "retry_on_interrupt",
    "cwd", "env", "shell", "force", "extra", "meta",
}  # fmt: skip


def job_from_payload(payload: Any, now: float) -> Job:
    """A job from the JSON the CLI and the control API send (validated)."""
    if not isinstance(payload, dict):
        raise UserError("the job must be a JSON object")
    unknown = set(payload) - _PAYLOAD_FIELDS
    if unknown:
        raise UserError(f"unknown job field(s) {sorted(unknown)}; allowed: {sorted(_PAYLOAD_FIELDS)}")
    command = payload.get("command")
    if isinstance(command, str):
        command = [command]
    if not isinstance(command, list) or not all(isinstance(a, str) for a in command):
        raise UserError("'command' must be a list of strings, e.g. [\"make\", \"test\"]")
    env = payload.get("env") or {}
    if not isinstance(env, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        raise UserError("'env' must map names to string values")
    for key in ("retry_on_interrupt", "shell", "force"):
        if not isinstance(payload.get(key, False), bool):
            raise UserError(f"'{key}' must be true or false")
    for key in ("name", "cwd", "lane", "kind"):
        if payload.get(key) is not None and not isinstance(payload[key], str):
            raise UserError(f"'{key}' must be a string")
    for key in ("extra", "meta"):
        if not isinstance(payload.get(key) or {}, dict):
            raise UserError(f"'{key}' must be an object")
    return new_job(
        command,
        lane=payload.get("lane") or "local",
        kind=payload.get("kind") or "shell",
        name=payload.get("name"),
        priority=payload.get("priority", 0),
        timeout=payload.get("timeout"),
        retries=payload.get("retries", 0),
        retry_on_interrupt=payload.get("retry_on_interrupt", False),
        cwd=payload.get("cwd"),
        env=env,
        shell=payload.get("shell", False),
        force=payload.get("force", False),
        extra=payload.get("extra"),
        meta=payload.get("meta"),
        now=now,
    )
