"""The queue pane: both lanes in one table that draws only the rows on screen.

The rows are job ids in display order; a row's cells are made when it is first drawn and
kept until its job changes. A filter or a snapshot re-sorts ids (a millisecond for
thousands of jobs) instead of rebuilding widgets, a job event touches one row, and the
cursor stays on its job and the scroll offset stays put through every refresh.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

# The CLI's time formats, so `twolane ls` and the console read the same.
from console.cli import job_age as job_time
from console.tui.model import ConsoleModel, job_note, matches, sort_key
from console.tui.widgets.colors import STATE_VARIABLE, styled

COLUMNS = (("id", "ID", 6), ("state", "STATE", 11), ("priority", "PRI", 4),
           ("lane", "LANE", 6), ("name", "NAME", 0), ("time", "TIME", 13),
           ("note", "NOTE", 0))  # fmt: skip
TIME = 5  # index of the time column, the only one that changes while a job waits or runs
PAD = 1  # cell padding on each side
FIXED = sum(w for _, _, w in COLUMNS) + len(COLUMNS) * 2 * PAD
HEADER = 1  # lines


def column_widths(width: int) -> list[int]:
    """Every column's width for a table ``width`` cells wide: name and note share what
    the fixed columns leave (3:2), each at least 10 and 6."""
    spare = max(16, width - FIXED)
    name_w = max(10, spare * 3 // 5)
    flexible = {"name": name_w, "note": max(6, spare - name_w)}
    return [flexible.get(key, w) for key, _, w in COLUMNS]


class QueueTable(ScrollView, can_focus=True):
    """Job rows keyed by id; ``rebuild`` re-sorts, ``sync`` applies what changed."""

    DEFAULT_CSS = """
    QueueTable {
        background: $surface;
        color: $foreground;
        overflow-x: hidden;
        overflow-y: auto;
        &:focus {
            background-tint: $foreground 5%;
            & > .queue--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
            & > .queue--header {
                background-tint: $foreground 5%;
            }
        }
        & > .queue--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        & > .queue--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        & > .queue--hover {
            background: $block-hover-background;
        }
    }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {"queue--header", "queue--cursor", "queue--hover"}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home,ctrl+home", "first", "First", show=False),
        Binding("end,ctrl+end", "last", "Last", show=False),
    ]

    class Highlighted(Message):
        """The cursor moved to another job (or the table emptied: ``job_id`` None)."""

        def __init__(self, job_id: str | None) -> None:
            super().__init__()
            self.job_id = job_id

    class Selected(Message):
        """A click on the row under the cursor."""

        def __init__(self, job_id: str) -> None:
            super().__init__()
            self.job_id = job_id

    def __init__(self, model: ConsoleModel, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.text_filter = ""
        self.lane_filter: str | None = None
        self.now = 0.0
        self.cursor_row = 0
        self._ids: list[str] = []  # shown jobs in display order
        self._pos: dict[str, int] = {}  # job id -> row
        self._order: dict[str, tuple[Any, ...]] = {}  # shown job id -> sort key
        self._cells: dict[str, tuple[Any, ...]] = {}  # rows drawn so far
        self._strips: dict[tuple[str, bool, bool], Strip] = {}
        self._hover: int | None = None
        self._highlighted: str | None = None

    # ---- what is shown -----------------------------------------------------------------

    @property
    def row_count(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> list[str]:
        """The shown job ids, top to bottom."""
        return list(self._ids)

    def get_row_index(self, job_id: str) -> int:
        return self._pos[job_id]

    @property
    def selected_id(self) -> str | None:
        return self._ids[self.cursor_row] if self._ids else None

    def select(self, job_id: str) -> None:
        """Put the cursor on ``job_id`` (if shown) and scroll it into view."""
        if job_id in self._pos:
            self._move_cursor(self._pos[job_id])

    # ---- applying changes --------------------------------------------------------------

    def rebuild(self, now: float) -> None:
        """Show the model again (a new snapshot, a new filter or a new theme)."""
        self.now = now
        self._cells.clear()
        self._order = {j["id"]: sort_key(j) for j in self.model.jobs.values()
                       if matches(j, self.text_filter, self.lane_filter)}  # fmt: skip
        self._reorder(reveal=True)

    def sync(self, changed: set[str], removed: set[str], now: float) -> None:
        """Apply changed and removed jobs in place; re-sort only if the order moved."""
        self.now = now
        reorder = False
        for job_id in removed:
            self._forget(job_id)
            reorder |= self._order.pop(job_id, None) is not None
        for job_id in changed:
            job = self.model.jobs.get(job_id)
            shown = job_id in self._order
            self._forget(job_id)
            if job is None or not matches(job, self.text_filter, self.lane_filter):
                reorder |= self._order.pop(job_id, None) is not None
                continue
            order = sort_key(job)
            if not shown or order != self._order[job_id]:
                self._order[job_id] = order
                reorder = True
            else:
                self._refresh_row(self._pos[job_id])
        if reorder:
            self._reorder(reveal=False)

    def tick(self, now: float) -> None:
        """Redraw the time cell of rows on screen whose text changed (waiting, running)."""
        self.now = now
        top = int(self.scroll_y)
        for row in range(top, min(len(self._ids), top + self._body_height())):
            job_id = self._ids[row]
            cells = self._cells.get(job_id)
            job = self.model.jobs.get(job_id)
            if cells is None or job is None or job["state"] not in ("queued", "running"):
                continue
            text = job_time(job, now)
            if text != cells[TIME]:
                self._cells[job_id] = (*cells[:TIME], text, *cells[TIME + 1 :])
                self._forget_strips(job_id)
                self._refresh_row(row)

    def _forget(self, job_id: str) -> None:
        self._cells.pop(job_id, None)
        self._forget_strips(job_id)

    def _forget_strips(self, job_id: str) -> None:
        for key in [(job_id, c, h) for c in (False, True) for h in (False, True)]:
            self._strips.pop(key, None)

    def _reorder(self, *, reveal: bool) -> None:
        """Sort the shown ids; the cursor stays on its job, the scroll offset stays put
        (``reveal``: and scrolls just enough to keep the cursor in view)."""
        keep = self.selected_id
        order = self._order
        self._ids = sorted(order, key=lambda job_id: (order[job_id], job_id))
        self._pos = {job_id: i for i, job_id in enumerate(self._ids)}
        self._strips.clear()
        scroll_y = self.scroll_y
        self.virtual_size = Size(self.scrollable_content_region.width, len(self._ids) + HEADER)
        if keep in self._pos:
            self.cursor_row = self._pos[keep]
        else:
            self.cursor_row = max(0, min(self.cursor_row, len(self._ids) - 1))
        self.scroll_to(y=min(scroll_y, max(0, len(self._ids) + HEADER - self.size.height)),
                       animate=False, immediate=True)  # fmt: skip
        if reveal:
            self._reveal_cursor()
        self.refresh()
        self._post_highlighted()

    # ---- the cursor --------------------------------------------------------------------

    def _body_height(self) -> int:
        return max(1, self.scrollable_content_region.height - HEADER)

    def _move_cursor(self, row: int) -> None:
        if not self._ids:
            return
        row = max(0, min(row, len(self._ids) - 1))
        if row != self.cursor_row:
            self._refresh_row(self.cursor_row)
            self.cursor_row = row
            self._refresh_row(row)
        self._reveal_cursor()
        self._post_highlighted()

    def _reveal_cursor(self) -> None:
        top, height = int(self.scroll_y), self._body_height()
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False, immediate=True)
        elif self.cursor_row >= top + height:
            self.scroll_to(y=self.cursor_row - height + 1, animate=False, immediate=True)

    def _post_highlighted(self) -> None:
        if self.selected_id != self._highlighted:
            self._highlighted = self.selected_id
            self.post_message(self.Highlighted(self._highlighted))

    def action_cursor(self, delta: int) -> None:
        self._hover = None
        self._move_cursor(self.cursor_row + delta)

    def action_page(self, pages: int) -> None:
        self._hover = None
        self._move_cursor(self.cursor_row + pages * self._body_height())

    def action_first(self) -> None:
        self._move_cursor(0)

    def action_last(self) -> None:
        self._move_cursor(len(self._ids) - 1)

    def _row_at(self, event: events.MouseEvent) -> int | None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y < HEADER:
            return None
        row = int(self.scroll_y) + offset.y - HEADER
        return row if row < len(self._ids) else None

    def on_click(self, event: events.Click) -> None:
        row = self._row_at(event)
        if row is None:
            return
        event.stop()
        if row == self.cursor_row:
            self.post_message(self.Selected(self._ids[row]))
        self._move_cursor(row)

    def on_mouse_move(self, event: events.MouseMove) -> None:
        row = self._row_at(event)
        if row != self._hover:
            for old in (self._hover, row):
                if old is not None:
                    self._refresh_row(old)
            self._hover = row

    def on_leave(self) -> None:
        if self._hover is not None:
            self._refresh_row(self._hover)
            self._hover = None

    # ---- drawing -----------------------------------------------------------------------

    def on_resize(self) -> None:
        self._strips.clear()
        self.virtual_size = Size(self.scrollable_content_region.width, len(self._ids) + HEADER)

    def on_focus(self) -> None:
        self._strips.clear()

    def on_blur(self) -> None:
        self._strips.clear()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()

    def _refresh_row(self, row: int) -> None:
        top = int(self.scroll_y)
        if top <= row < top + self._body_height():
            self.refresh(Region(0, row - top + HEADER, self.size.width, 1))

    def row_cells(self, job_id: str) -> tuple[Any, ...]:
        """The cells ``job_id``'s row draws (made on first use, kept until the job changes)."""
        cells = self._cells.get(job_id)
        if cells is None:
            job = self.model.jobs[job_id]
            state = job["state"]
            cells = self._cells[job_id] = (
                job["id"],
                styled(self.app, state, STATE_VARIABLE.get(state, "foreground"), bold=state == "running"),
                str(job.get("priority", 0)),
                job["lane"],
                job.get("name") or job.get("command") or "",
                job_time(job, self.now),
                job_note(job),
            )  # fmt: skip
        return cells

    def _line(self, cells: tuple[Any, ...] | list[str], style: Style) -> Strip:
        """One row: every cell cut or padded to its column, ``style`` under the cells'."""
        width = self.scrollable_content_region.width
        line = Text(no_wrap=True, end="")
        pad = " " * PAD
        for cell, cell_width in zip(cells, column_widths(width), strict=True):
            text = cell.copy() if isinstance(cell, Text) else Text(str(cell))
            text.truncate(cell_width, overflow="ellipsis", pad=True)
            line.append(pad)
            line.append_text(text)
            line.append(pad)
        segments = Segment.apply_style(line.render(self.app.console), style)
        return Strip(segments).crop_extend(0, width, style)

    def render_line(self, y: int) -> Strip:
        base = self.rich_style
        if y < HEADER:
            header = self.get_component_rich_style("queue--header")
            return self._line([label for _, label, _ in COLUMNS], base + header)
        row = int(self.scroll_y) + y - HEADER
        if row >= len(self._ids):
            return Strip.blank(self.scrollable_content_region.width, base)
        job_id = self._ids[row]
        key = (job_id, row == self.cursor_row, row == self._hover)
        strip = self._strips.get(key)
        if strip is None:
            style = base
            if key[2]:
                style += self.get_component_rich_style("queue--hover")
            strip = self._line(self.row_cells(job_id), style)
            if key[1]:  # the cursor's colours win over the cells' own, like a DataTable's
                cursor = self.get_component_rich_style("queue--cursor")
                strip = Strip(Segment.apply_style(strip, post_style=cursor))
            if len(self._strips) > 500:
                self._strips.clear()
            self._strips[key] = strip
        return strip
