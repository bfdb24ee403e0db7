"""What a runner is: an object that runs one attempt of one job and reports how it ended."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from console.core.models import Job, JobState


@dataclass(slots=True)
class Outcome:
    state: JobState
    exit_code: int | None = None
    error: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class RunContext:
    """What the scheduler hands a runner for one attempt."""

    __slots__ = ("_log", "kill_grace", "on_started", "on_progress")

    def __init__(
        self,
        log_path: Path | str,
        kill_grace: float,
        # Record the started process (pid, create time) before anything else happens.
        on_started: Callable[[int, float | None], Awaitable[None]],
        # Report progress or other live facts; merged into job.meta and published.
        on_progress: Callable[[dict[str, Any]], None],
    ) -> None:
        self._log = log_path
        self.kill_grace = kill_grace
        self.on_started = on_started
        self.on_progress = on_progress

    @property
    def log_path(self) -> Path:
        """The attempt's log, made a ``Path`` only when a runner asks (a gateway request
        never does: a ``Path`` per request was measurable in its CPU)."""
        if not isinstance(self._log, Path):
            self._log = Path(self._log)
        return self._log


class Runner(Protocol):
    async def run(self, job: Job, ctx: RunContext) -> Outcome:
        """Run one attempt. On cancellation, stop the work completely, then re-raise."""
        ...
