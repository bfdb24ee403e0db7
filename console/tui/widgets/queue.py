"""The queue pane: both lanes in one table, updated row by row so the cursor and the
scroll position survive every refresh."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import DataTable

# The CLI's time formats, so `twolane ls` and the console read the same.
from console.cli import job_age as job_time
from console.tui.model import ConsoleModel, job_note, matches, sort_key
from console.tui.widgets.colors import STATE_VARIABLE, styled

COLUMNS = (("id", "ID", 6), ("state", "STATE", 11), ("priority", "PRI", 4),
           ("lane", "LANE", 6), ("name", "NAME", 0), ("time", "TIME", 13),
           ("note", "NOTE", 0))  # fmt: skip
FIXED = sum(w for _, _, w in COLUMNS) + len(COLUMNS) * 2  # cell padding


class QueueTable(DataTable[Any]):
    """Rows keyed by job id; ``sync`` applies only what changed."""

    def __init__(self, model: ConsoleModel, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self.model = model
        self.text_filter = ""
        self.lane_filter: str | None = None
        self._cells: dict[str, tuple[Any, ...]] = {}
        self._order: dict[str, tuple[Any, ...]] = {}

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            self.add_column(label, key=key, width=width or 10)
        self._fit_columns()

    def on_resize(self) -> None:
        self._fit_columns()

    def _fit_columns(self) -> None:
        spare = max(16, self.size.width - FIXED - 2)
        name_w = max(10, spare * 3 // 5)
        for key, width in (("name", name_w), ("note", max(6, spare - name_w))):
            column = self.columns.get(key)  # type: ignore[call-overload]
            if column is not None and column.width != width:
                column.width = width
                column.auto_width = False
        self.refresh()

    # ---- which job is selected ---------------------------------------------------------

    @property
    def selected_id(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)
        except Exception:  # the cursor sits past the last row while the table shrinks
            return None

    def select(self, job_id: str) -> None:
        if job_id in self._cells:
            self.move_cursor(row=self.get_row_index(job_id), animate=False)

    # ---- applying changes --------------------------------------------------------------

    def _row(self, job: dict[str, Any], now: float) -> tuple[Any, ...]:
        state = job["state"]
        name = job.get("name") or job.get("command") or ""
        return (
            job["id"],
            styled(self.app, state, STATE_VARIABLE.get(state, "foreground"), bold=state == "running"),
            str(job.get("priority", 0)),
            job["lane"],
            Text(name, no_wrap=True, overflow="ellipsis"),
            job_time(job, now),
            Text(job_note(job), no_wrap=True, overflow="ellipsis"),
        )

    def rebuild(self, now: float) -> None:
        """Redraw every row (a new snapshot, a new filter or a new theme)."""
        keep = self.selected_id
        scroll = self.scroll_y
        self.clear()
        self._cells.clear()
        self._order.clear()
        for job in self.model.visible(self.text_filter, self.lane_filter):
            self._add(job, now)
        if keep in self._cells:
            self.select(keep)
        self.scroll_y = min(scroll, self.max_scroll_y)

    def _add(self, job: dict[str, Any], now: float) -> None:
        cells = self._row(job, now)
        self.add_row(*cells, key=job["id"])
        self._cells[job["id"]] = cells
        self._order[job["id"]] = sort_key(job)

    def sync(self, changed: set[str], removed: set[str], now: float) -> None:
        """Apply changed and removed jobs in place; re-sort only if the order moved."""
        keep = self.selected_id
        reorder = False
        for job_id in removed:
            if job_id in self._cells:
                self._drop(job_id)
        for job_id in changed:
            job = self.model.jobs.get(job_id)
            shown = job_id in self._cells
            if job is None or not matches(job, self.text_filter, self.lane_filter):
                if shown:
                    self._drop(job_id)
                continue
            if not shown:
                self._add(job, now)
                reorder = True
                continue
            cells = self._row(job, now)
            old = self._cells[job_id]
            for (key, _, _), new, was in zip(COLUMNS, cells, old, strict=True):
                if new != was:
                    self.update_cell(job_id, key, new)
            self._cells[job_id] = cells
            order = sort_key(job)
            if order != self._order[job_id]:
                self._order[job_id] = order
                reorder = True
        if reorder:
            scroll = self.scroll_y
            self.sort("id", key=lambda job_id: self._order[str(job_id)])
            if keep in self._cells:
                self.select(keep)
            self.scroll_y = min(scroll, self.max_scroll_y)

    def _drop(self, job_id: str) -> None:
        self.remove_row(job_id)
        del self._cells[job_id]
        del self._order[job_id]

    def tick(self, now: float) -> None:
        """Refresh the time column of the rows on screen that are still counting."""
        top = int(self.scroll_y)
        rows = self.ordered_rows[top : top + self.size.height]
        for row in rows:
            job = self.model.jobs.get(str(row.key.value))
            if job is None or job["state"] not in ("queued", "running"):
                continue
            text = job_time(job, now)
            cells = self._cells[job["id"]]
            if cells[5] != text:
                self.update_cell(row.key, "time", text)
                self._cells[job["id"]] = (*cells[:5], text, cells[6])
