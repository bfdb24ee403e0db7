"""The lane bar: local running / idle / held / paused, remote k of N, whose turn."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from console.tui.model import lane_summary
from console.tui.widgets.colors import CLASS_VARIABLE, theme_style


class LaneBar(Static):
    _shown: Text | None = None
    _last: tuple[dict[str, Any], str, str] | None = None

    def show(self, status: dict[str, Any], mode: str, note: str = "") -> None:
        self._last = (status, mode, note)
        text = self._text(status, mode, note, compact=False)
        if text.cell_len > self.content_size.width:  # 80 columns: keep whose turn in view
            text = self._text(status, mode, note, compact=True)
        if text != self._shown:  # one line, always: no layout pass
            self._shown = text
            self.update(text, layout=False)

    def _text(self, status: dict[str, Any], mode: str, note: str, compact: bool) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f" {mode} ", style=theme_style(self.app, "accent", bold=True))
        for part, cls in lane_summary(status, compact):
            text.append(" │ ", style=theme_style(self.app, "text-muted"))
            text.append(part, style=theme_style(self.app, CLASS_VARIABLE[cls], bold=cls != "muted"))
        if note:
            text.append(" │ ", style=theme_style(self.app, "text-muted"))
            text.append(note, style=theme_style(self.app, "warning", bold=True))
        return text

    def on_resize(self) -> None:
        if self._last is not None:
            self.show(*self._last)
