"""``L``: the ladder view. Ladder runs (from their jobs and the data dir's run folders),
and for the selected run its per-concurrency table with each step's gate, the core's
latency-versus-concurrency chart, and live progress while it climbs. ``enter`` or ``o``
opens the run's job (its full log); ``esc`` goes back."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, ProgressBar, Static

from console.core.ladder.report import terminal_chart
from console.tui import ladder_runs as lr
from console.tui.screens.details import DetailsScreen
from console.tui.widgets.colors import CLASS_VARIABLE, theme_style

if TYPE_CHECKING:
    from console.tui.app import TwolaneApp

RUN_COLUMNS = (("job", "JOB", 6), ("state", "STATE", 10), ("model", "MODEL", 24),
               ("steps", "STEPS", 5), ("knee", "KNEE", 5), ("started", "STARTED", 11))  # fmt: skip


def _load_all(runs: list[lr.LadderRun]) -> None:
    for run in runs:
        run.load()


class LadderChart(Static):
    """The chart fits its height: redrawn whenever its box changes size."""

    def on_resize(self) -> None:
        screen = self.screen
        if isinstance(screen, LadderScreen):
            screen.draw_chart()


class LadderScreen(Screen[None]):
    CSS = """
    LadderScreen { layout: vertical; }
    #ladder-runs {
        height: auto; max-height: 7; min-height: 4;
        border: round $primary 50%; border-title-color: $text;
    }
    #ladder-runs:focus { border: round $primary; }
    #ladder-run {
        height: 1fr; padding: 0 1;
        border: round $secondary 50%; border-title-color: $text; border-subtitle-color: $text-muted;
    }
    #ladder-status { height: auto; max-height: 2; text-wrap: nowrap; text-overflow: ellipsis; }
    #ladder-progress-row { height: 1; display: none; }
    #ladder-progress-row.shown { display: block; }
    #ladder-progress { width: auto; margin-right: 1; }
    #ladder-progress Bar { width: 20; }
    #ladder-progress-words { width: 1fr; color: $accent; text-wrap: nowrap; text-overflow: ellipsis; }
    #ladder-steps { height: auto; max-height: 10; scrollbar-size-horizontal: 1; }
    #ladder-chart { height: 1fr; min-height: 6; margin-top: 1; text-wrap: nowrap; }
    """
    BINDINGS = [
        Binding("escape,q,L", "close", "Back", id="ladder_close"),
        Binding("o", "job", "Job log", id="ladder_job"),  # enter on a run does the same
    ]

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[lr.LadderRun] = []
        self._known: dict[str, lr.LadderRun] = {}
        self._loading = False
        self._scanned = False
        self._chart_key: tuple[Any, ...] | None = None
        self._run_key: tuple[Any, ...] | None = None

    @property
    def tapp(self) -> TwolaneApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield DataTable(id="ladder-runs", cursor_type="row", zebra_stripes=False)
        with Vertical(id="ladder-run"):
            yield Static(id="ladder-status")
            with Horizontal(id="ladder-progress-row"):
                yield ProgressBar(total=1.0, show_eta=False, id="ladder-progress")
                yield Static(id="ladder-progress-words")
            yield DataTable(id="ladder-steps", cursor_type="none", zebra_stripes=False)
            yield LadderChart(id="ladder-chart")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        runs = self.query_one("#ladder-runs", DataTable)
        for key, label, width in RUN_COLUMNS:
            runs.add_column(label, key=key, width=width)
        steps = self.query_one("#ladder-steps", DataTable)
        for label in lr.STEP_COLUMNS:
            steps.add_column(label, key=label)
        runs.border_title = "Ladder runs"
        self.query_one("#ladder-run").border_title = "Ladder"
        runs.focus()
        self.set_interval(self.tapp.refresh_interval, self.refresh_runs)
        self.watch(self.app, "theme", self._retheme, init=False)
        self.refresh_runs()

    def _retheme(self) -> None:
        """Colours come from the theme when drawn: draw everything again."""
        self._run_key = None
        self.query_one("#ladder-runs", DataTable).clear()
        self._draw()

    # ---- data -----------------------------------------------------------------------

    def refresh_runs(self) -> None:
        """Pick up new ladder jobs and re-read live runs' folders (in a thread)."""
        if not self._loading:
            self._loading = True
            self._load()

    @work(group="ladder-load")
    async def _load(self) -> None:
        try:
            session = self.tapp.session
            jobs = [j for j in self.tapp.model.jobs.values() if lr.ladder_out(j)]
            folders: list[Any] = []
            if not self._scanned and session is not None:
                folders = await asyncio.to_thread(lr.run_folders, session.home)
                self._scanned = True
            runs = lr.merge_runs(self._known, jobs, folders)
            stale = [run for run in runs if run.stale()]
            if stale:
                await asyncio.to_thread(_load_all, stale)
            self.runs = lr.newest_first(runs)
            self._draw()
        finally:
            self._loading = False

    # ---- drawing --------------------------------------------------------------------

    @property
    def selected(self) -> lr.LadderRun | None:
        table = self.query_one("#ladder-runs", DataTable)
        if not table.row_count:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:  # the cursor sits past the last row
            return None
        return self._known.get(str(key))

    def _draw(self) -> None:
        table = self.query_one("#ladder-runs", DataTable)
        keys = [run.key for run in self.runs]
        shown = [str(row.value) for row in table.rows]
        if keys != shown:
            selected = self.selected
            table.clear()
            for run in self.runs:
                table.add_row(*self._run_cells(run), key=run.key)
            # Keep the selection; the first time, show the run that is climbing (or the newest).
            target = selected.key if selected else next((r.key for r in self.runs if r.live), None)
            if target in keys:
                table.move_cursor(row=keys.index(target))
        else:
            for run in self.runs:
                for (col, _, _), cell in zip(RUN_COLUMNS, self._run_cells(run), strict=True):
                    if str(table.get_cell(run.key, col)) != str(cell):
                        table.update_cell(run.key, col, cell)
        table.border_subtitle = f"{len(self.runs)} run{'s' if len(self.runs) != 1 else ''}"
        self._draw_run()

    def _run_cells(self, run: lr.LadderRun) -> list[Any]:
        cells: list[Any] = list(lr.run_row(run))
        variable = {"running": "primary", "queued": "text-muted", "succeeded": "success",
                    "done": "success", "failed": "error"}.get(run.state, "warning")  # fmt: skip
        cells[1] = Text(cells[1], style=theme_style(self.app, variable))
        return cells

    @on(DataTable.RowHighlighted, "#ladder-runs")
    def _highlighted(self) -> None:
        self._draw_run()

    def _draw_run(self) -> None:
        run = self.selected
        # Redraw only what changed: this runs on every refresh tick.
        key = None if run is None else (run.key, run.version, run.state, (run.job or {}).get("held_reason"))
        if key == self._run_key and key is not None:
            return
        self._run_key = key
        box = self.query_one("#ladder-run")
        status = self.query_one("#ladder-status", Static)
        steps = self.query_one("#ladder-steps", DataTable)
        row = self.query_one("#ladder-progress-row")
        if run is None:
            box.border_title, box.border_subtitle = "Ladder", ""
            status.update(Text(lr.EMPTY, style=theme_style(self.app, "text-muted")))
            steps.clear()
            row.remove_class("shown")
            self._chart_key = None
            self.query_one("#ladder-chart", Static).update("")
            return
        view = run.view or {}
        url = (view.get("server") or {}).get("url")
        box.border_title = f"{view.get('model') or run.folder.name}" + (f" at {url}" if url else "")
        box.border_subtitle = str(run.folder)
        words, style = lr.status_text(run)
        status.update(Text(words, style=theme_style(self.app, CLASS_VARIABLE.get(style, "text")),
                           no_wrap=True, overflow="ellipsis"))  # fmt: skip
        moving = lr.progress(view) if run.live else None
        row.set_class(moving is not None, "shown")
        if moving is not None:
            self.query_one("#ladder-progress", ProgressBar).update(progress=moving[0])
            self.query_one("#ladder-progress-words", Static).update(moving[1])
        steps.clear()
        for cells, cls in lr.step_rows(view):
            numbers = (Text(cell, justify="right") for cell in cells[:-1])
            gate = Text(cells[-1], style=theme_style(self.app, CLASS_VARIABLE[cls]))
            steps.add_row(*numbers, gate)
        self.draw_chart()

    def draw_chart(self) -> None:
        run = self.selected
        chart = self.query_one("#ladder-chart", Static)
        if run is None or not run.view:
            return
        view = run.view
        knee = bool((view.get("knee") or {}).get("concurrency"))
        height = lr.chart_height(chart.content_size.height, knee)
        key = (run.key, run.version, height)
        if key == self._chart_key:
            return
        self._chart_key = key
        if not view.get("steps") and not view.get("finished"):
            words = "the chart starts once the first step is measured"
            chart.update(Text(words, style=theme_style(self.app, "text-muted")))
            return
        chart.update(Text(terminal_chart(view, height), no_wrap=True))

    # ---- keys -----------------------------------------------------------------------

    @on(DataTable.RowSelected, "#ladder-runs")
    def _selected(self) -> None:
        self.action_job()

    def action_job(self) -> None:
        run = self.selected
        session = self.tapp.session
        if run is None or session is None:
            return
        if run.job is None:
            self.notify(f"no job of this run in the console (run with --now, or long gone); "
                        f"its files are in {run.folder}", severity="warning")  # fmt: skip
            return
        self.app.push_screen(DetailsScreen(run.job["id"], session.job, session.log_chunk,
                                           self.tapp.refresh_interval))  # fmt: skip

    def action_close(self) -> None:
        self.dismiss()
