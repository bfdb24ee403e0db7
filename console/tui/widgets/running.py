"""The running pane: the running local job or remote jobs with elapsed time and
progress, and a live tail of one job's log."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Log, Static

from console.cli import fmt_duration
from console.tui.widgets.colors import theme_style

TAIL_LINES = 200


def progress_text(meta: dict[str, Any]) -> str:
    """What a runner reported: a fraction or percent, and a short status."""
    parts = []
    p = meta.get("progress")
    if isinstance(p, int | float) and not isinstance(p, bool):
        parts.append(f"{p * 100:.0f}%" if p <= 1 else f"{p:.0f}%")
    elif isinstance(p, str):
        parts.append(p)
    for key in ("status", "message", "phase"):
        if isinstance(meta.get(key), str) and meta[key]:
            parts.append(meta[key])
            break
    return " ".join(parts)


class RunningPane(Vertical):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tail_id: str | None = None
        self.tail_offset = 0
        self._pending = b""
        self._shown: Text | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="running-jobs")
        yield Log(id="tail", max_lines=TAIL_LINES, auto_scroll=True)

    def show(self, running: list[dict[str, Any]], now: float) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        if not running:
            text.append("nothing running", style=theme_style(self.app, "text-muted"))
        for i, job in enumerate(running):
            if i:
                text.append("\n")
            marker = "▶ " if job["id"] == self.tail_id else "  "
            text.append(marker, style=theme_style(self.app, "accent"))
            text.append(f"{job['id']} ", style=theme_style(self.app, "primary", bold=True))
            text.append(f"{job['lane']:<6} ")
            text.append(fmt_duration(now - (job.get("started_at") or now)).rjust(6) + " ")
            progress = progress_text(job.get("meta") or {})
            if progress:
                text.append(progress + " ", style=theme_style(self.app, "success"))
            text.append(job.get("name") or job.get("command") or "")
        if text != self._shown:  # called every tick: repaint only when a second ticked
            # The list's height follows its line count: lay out only when that changed.
            relayout = self._shown is None or len(self._shown.split()) != len(text.split())
            self._shown = text
            self.query_one("#running-jobs", Static).update(text, layout=relayout)

    def follow(self, job_id: str | None) -> bool:
        """Tail ``job_id`` from now on; True when that is a change (the log restarts)."""
        if job_id == self.tail_id:
            return False
        self.tail_id = job_id
        self.tail_offset = 0
        self._pending = b""
        log = self.query_one("#tail", Log)
        log.clear()
        log.border_title = f"log {job_id}" if job_id else ""
        return True

    def feed(self, job_id: str, data: bytes) -> None:
        """Append a chunk of ``job_id``'s log (only complete lines are shown)."""
        if job_id != self.tail_id or not data:
            return
        self.tail_offset += len(data)
        lines = (self._pending + data).split(b"\n")
        self._pending = lines.pop()
        if lines:
            log = self.query_one("#tail", Log)
            log.write_lines(line.decode("utf-8", "replace").rstrip("\r") for line in lines[-TAIL_LINES:])
