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


def progress_fraction(meta: dict[str, Any]) -> float | None:
    """A runner's numeric progress as 0..1 (a fraction, or a percent above 1), else None."""
    p = meta.get("progress")
    if isinstance(p, bool) or not isinstance(p, int | float):
        return None
    return max(0.0, min(1.0, p if p <= 1 else p / 100))


def fmt_bytes(n: float) -> str:
    """Decimal units, as download sizes are quoted: ``812 kB``, ``1.68 GB``."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}" if unit == "GB" else f"{n / size:.0f} {unit}"
    return f"{n:.0f} B"


def progress_text(meta: dict[str, Any]) -> str:
    """What a runner reported, in words: percent, bytes done of total, a short status."""
    parts = []
    fraction = progress_fraction(meta)
    if fraction is not None:
        parts.append(f"{fraction * 100:.0f}%")
    elif isinstance(meta.get("progress"), str):
        parts.append(meta["progress"])
    total, done = meta.get("total"), meta.get("completed")
    if isinstance(total, int) and total > 0 and isinstance(done, int):
        parts.append(f"{fmt_bytes(done)} / {fmt_bytes(total)}")
    for key in ("status", "message", "phase"):
        if isinstance(meta.get(key), str) and meta[key]:
            parts.append(meta[key])
            break
    return " ".join(parts)


BAR_FULL, BAR_HALF = "━", "╸"


def bar_width(pane_width: int) -> int:
    """What the pane leaves after ~40 cells of words, steady: a bar that resized with its
    words would jump."""
    return max(8, min(30, pane_width - 40))


def progress_bar(fraction: float, width: int) -> tuple[str, str]:
    """(done, rest) cells of a ``width``-cell bar at half-cell resolution."""
    halves = round(max(0.0, min(1.0, fraction)) * width * 2)
    done = BAR_FULL * (halves // 2) + (BAR_HALF if halves % 2 else "")
    return done, BAR_FULL * (width - len(done))


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
        width = self.query_one("#running-jobs", Static).size.width or 40
        for i, job in enumerate(running):
            if i:
                text.append("\n")
            marker = "▶ " if job["id"] == self.tail_id else "  "
            text.append(marker, style=theme_style(self.app, "accent"))
            text.append(f"{job['id']} ", style=theme_style(self.app, "primary", bold=True))
            text.append(f"{job['lane']:<6} ")
            text.append(fmt_duration(now - (job.get("started_at") or now)).rjust(6) + " ")
            meta = job.get("meta") or {}
            fraction = progress_fraction(meta)
            if fraction is None:
                progress = progress_text(meta)
                if progress:
                    text.append(progress + " ", style=theme_style(self.app, "success"))
                text.append(job.get("name") or job.get("command") or "")
                continue
            # A measured job (a pull's download) gets its own line: the bar, then the words.
            text.append(job.get("name") or job.get("command") or "")
            words = progress_text(meta)
            done, rest = progress_bar(fraction, bar_width(width))
            text.append("\n  ")
            text.append(done, style=theme_style(self.app, "success"))
            text.append(rest, style=theme_style(self.app, "text-muted"))
            text.append(" " + words, style=theme_style(self.app, "success"))
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
