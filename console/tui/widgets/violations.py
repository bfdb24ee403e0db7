"""The violations pane: a timestamped log of rule breaks with their severity."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from console.tui.model import VIOLATIONS_KEPT
from console.tui.widgets.colors import SEVERITY_VARIABLE, styled


def fmt_clock(at: float, now: float) -> str:
    """``14:03:07`` today, ``Nov 21 14:03`` before."""
    t, today = time.localtime(at), time.localtime(now)
    if t[:3] == today[:3]:
        return time.strftime("%H:%M:%S", t)
    return time.strftime("%b %d %H:%M", t)


class ViolationsTable(DataTable[Any]):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", show_cursor=False, **kwargs)
        self._count = 0

    def on_mount(self) -> None:
        self.add_column("WHEN", key="at", width=12)
        self.add_column("SEV", key="severity", width=8)
        self.add_column("RULE", key="rule", width=16)
        self.add_column("WHAT", key="message", width=20)
        self._fit()

    def on_resize(self) -> None:
        self._fit()

    def _fit(self) -> None:
        # The message takes what the fixed columns leave, so nothing scrolls sideways.
        column = self.columns.get("message")  # type: ignore[call-overload]
        width = max(10, self.size.width - 12 - 8 - 16 - 8 - 1)
        if column is not None and column.width != width:
            column.width = width
            column.auto_width = False
            self.refresh()

    def reset(self) -> None:
        self.clear()
        self._count = 0

    def append(self, items: list[dict[str, Any]], now: float) -> None:
        at_end = self.scroll_y >= self.max_scroll_y
        for v in items:
            sev = str(v.get("severity", "warning"))
            self.add_row(
                fmt_clock(float(v.get("at") or 0.0), now),
                styled(self.app, sev, SEVERITY_VARIABLE.get(sev, "warning"), bold=sev == "critical"),
                Text(str(v.get("rule", "")), no_wrap=True, overflow="ellipsis"),
                Text(str(v.get("message", "")), no_wrap=True, overflow="ellipsis"),
            )
            self._count += 1
        while self.row_count > VIOLATIONS_KEPT:
            self.remove_row(self.ordered_rows[0].key)
        if at_end:
            self.scroll_end(animate=False)
