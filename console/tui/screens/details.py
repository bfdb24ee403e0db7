"""``enter``: one job in full: command, timings, attempts, exit code and the whole log,
still following the log while the job runs."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Log, Static

from console.cli import fmt_duration

MAX_LOG_BYTES = 4 << 20  # the whole log up to 4 MiB; `twolane logs ID` prints more


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) if at else "-"


def job_facts(job: dict[str, Any]) -> Table:
    """The facts of a job as a two-column table."""
    table = Table(box=None, show_header=False, expand=True)
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    took = None
    if job.get("started_at"):
        took = (job.get("finished_at") or time.time()) - job["started_at"]
    rows = [
        ("id", job["id"]), ("name", job.get("name") or ""), ("command", job.get("command") or ""),
        ("state", job["state"]), ("lane", job["lane"]), ("priority", str(job.get("priority", 0))),
        ("created", _when(job.get("created_at"))), ("started", _when(job.get("started_at"))),
        ("finished", _when(job.get("finished_at"))), ("run time", fmt_duration(took)),
        ("exit code", "-" if job.get("exit_code") is None else str(job["exit_code"])),
        ("attempts", f"{job.get('attempts', 0)} (retries allowed: {job.get('retries', 0)})"),
    ]  # fmt: skip
    if job.get("held_reason"):
        rows.append(("held", job["held_reason"]))
    if job.get("error"):
        rows.append(("error", job["error"]))
    if (job.get("spec") or {}).get("cwd"):
        rows.append(("cwd", job["spec"]["cwd"]))
    for attempt in job.get("attempts_log") or []:
        rows.append((
            f"attempt {attempt.get('attempt', '')}",
            f"{attempt.get('state', '')} exit {attempt.get('exit_code', '-')} "
            f"{_when(attempt.get('started_at'))} → {_when(attempt.get('finished_at'))}"
            + (f" {attempt['error']}" if attempt.get("error") else ""),
        ))  # fmt: skip
    for key, value in rows:
        table.add_row(key, str(value))
    return table


LogReader = Callable[[str, int], Awaitable[bytes]]
JobReader = Callable[[str], Awaitable[dict[str, Any]]]


class DetailsScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,enter", "dismiss", "Close", id="details_close")]

    def __init__(self, job_id: str, read_job: JobReader, read_log: LogReader,
                 interval: float = 0.5) -> None:  # fmt: skip
        super().__init__()
        self.job_id = job_id
        self._read_job = read_job
        self._read_log = read_log
        self._interval = interval
        self._offset = 0
        self._pending = b""
        self.job: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="details"):
            yield Static(f"Job {self.job_id}", classes="title")
            yield Static(id="facts")
            yield Log(id="full-log", auto_scroll=True)

    async def on_mount(self) -> None:
        await self.reload()
        self.set_interval(self._interval, self.reload)

    async def reload(self) -> None:
        """Fetch the job and any new log bytes; stop polling once it finished."""
        if self.job is not None and self.job["state"] not in ("queued", "running"):
            return
        self.job = await self._read_job(self.job_id)
        self.query_one("#facts", Static).update(job_facts(self.job))
        while self._offset < MAX_LOG_BYTES:
            data = await self._read_log(self.job_id, self._offset)
            if not data:
                break
            self._offset += len(data)
            lines = (self._pending + data).split(b"\n")
            self._pending = lines.pop()
            self.query_one("#full-log", Log).write_lines(
                line.decode("utf-8", "replace").rstrip("\r") for line in lines
            )
        if self.job["state"] not in ("queued", "running") and self._pending:
            self.query_one("#full-log", Log).write_line(self._pending.decode("utf-8", "replace"))
            self._pending = b""
