"""The main screen: lane bar, queue, running, graphs, violations, footer. Keys post
intents to the session; everything drawn comes from the model."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Input

from console.client import OwnerGone
from console.core.errors import UserError
from console.tui.commands import bindings
from console.tui.model import LANE_FILTERS
from console.tui.screens.confirm import ConfirmScreen
from console.tui.screens.details import DetailsScreen
from console.tui.screens.enqueue import EnqueueScreen
from console.tui.screens.help import HelpScreen
from console.tui.widgets.graphs import GraphsPane
from console.tui.widgets.keybar import KeyBar
from console.tui.widgets.lanebar import LaneBar
from console.tui.widgets.queue import QueueTable
from console.tui.widgets.running import RunningPane
from console.tui.widgets.violations import ViolationsTable

if TYPE_CHECKING:
    from console.tui.app import TwolaneApp

WIDE = 140  # columns from which the side panes move next to the queue


class Changed(Message):
    """The model changed; a burst of these collapses into one repaint."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, Changed)


class FilterInput(Input):
    BINDINGS = [Binding("escape", "clear", "Clear filter", id="filter_clear")]

    def action_clear(self) -> None:
        self.value = ""
        self.screen.query_one(QueueTable).focus()


class MainScreen(Screen[None]):
    BINDINGS = bindings()

    def __init__(self) -> None:
        super().__init__()
        self.note = ""

    @property
    def tapp(self) -> TwolaneApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield LaneBar(id="lanebar")
        yield FilterInput(placeholder="filter: text in id, name, command, state, note (esc clears)",
                          id="filter")  # fmt: skip
        with Container(id="body"):
            yield QueueTable(self.tapp.model, id="queue")
            with Container(id="side"):
                yield RunningPane(id="running")
                yield GraphsPane(id="graphs")
                yield ViolationsTable(id="violations")
        yield KeyBar(self.tapp.keymap, id="keys")

    def on_mount(self) -> None:
        self.query_one("#running").border_title = "Running"
        self.query_one("#graphs").border_title = "Graphs · 10 min"
        self.query_one("#violations").border_title = "Violations"
        self._title_queue()
        self.query_one(QueueTable).focus()
        self.set_interval(self.tapp.refresh_interval, self.tick)
        self.watch(self.app, "theme", self._retheme, init=False)
        self.refresh_all()

    def on_resize(self) -> None:
        self.set_class(self.size.width >= WIDE, "wide")

    # ---- drawing -----------------------------------------------------------------------

    @property
    def table(self) -> QueueTable:
        return self.query_one(QueueTable)

    def _title_queue(self) -> None:
        table = self.table
        parts = ["Queue", table.lane_filter or "all lanes"]
        if table.text_filter:
            parts.append(f"filter “{table.text_filter}”")
        table.border_title = " · ".join(parts)
        shown = self.tapp.model
        table.border_subtitle = f"{table.row_count} shown · last {shown.finished_cap} finished kept"

    def set_note(self, note: str) -> None:
        self.note = note
        self._draw_lanes()

    def _draw_lanes(self) -> None:
        mode = self.tapp.session.mode if self.tapp.session else "starting"
        self.query_one(LaneBar).show(self.tapp.model.status, mode, self.note)

    def _retheme(self) -> None:
        self.refresh_all()

    def refresh_all(self) -> None:
        model = self.tapp.model
        model.take_dirty()
        self.table.rebuild(self.tapp.now())
        self.query_one(ViolationsTable).reset()
        self.query_one(ViolationsTable).append(list(model.violations), self.tapp.now())
        model.new_violations = []
        self.query_one(GraphsPane).show(model.samples)
        model.samples_dirty = model.lanes_dirty = False
        self._draw_lanes()
        self._draw_running()
        self._title_queue()

    @on(Changed)
    def flush(self) -> None:
        """Apply what changed in the model since the last repaint."""
        model = self.tapp.model
        now = self.tapp.now()
        reset, changed, removed = model.take_dirty()
        if reset:
            self.table.rebuild(now)
            self.query_one(ViolationsTable).reset()
        elif changed or removed:
            self.table.sync(changed, removed, now)
        if changed or removed or reset:
            self._title_queue()
            self._draw_running()
        if model.new_violations:
            self.query_one(ViolationsTable).append(model.new_violations, now)
            model.new_violations = []
        if model.lanes_dirty:
            model.lanes_dirty = False
            self._draw_lanes()
        if model.samples_dirty:
            model.samples_dirty = False
            self.query_one(GraphsPane).show(model.samples)

    def _draw_running(self) -> None:
        pane = self.query_one(RunningPane)
        running = self.tapp.model.running()
        selected = self.table.selected_id
        ids = [j["id"] for j in running]
        target = selected if selected in ids else (ids[0] if ids else pane.tail_id)
        pane.follow(target)
        pane.show(running, self.tapp.now())

    def tick(self) -> None:
        """Every ``ui.refresh_interval``: time columns on screen, running pane, log tail."""
        now = self.tapp.now()
        self.table.tick(now)
        self._draw_running()
        if self.query_one(RunningPane).tail_id is not None:
            self._fetch_tail()

    @work(group="tail", exclusive=True)
    async def _fetch_tail(self) -> None:
        pane = self.query_one(RunningPane)
        job_id = pane.tail_id
        if job_id is None or self.tapp.session is None:
            return
        try:
            data = await self.tapp.session.log_chunk(job_id, pane.tail_offset)
        except Exception as exc:  # a tail is best effort: the owner may be stopping
            self.log.warning(f"log tail of {job_id}: {exc!r}")
            return
        pane.feed(job_id, data)

    @on(QueueTable.Highlighted)
    def _highlighted(self) -> None:
        self._draw_running()

    @on(QueueTable.Selected)
    def _selected(self) -> None:
        self.run_worker(self.action_details(), group="details", exclusive=True)

    # ---- intents -----------------------------------------------------------------------

    def _selected_job(self) -> dict[str, Any] | None:
        job_id = self.table.selected_id
        job = self.tapp.model.jobs.get(job_id) if job_id else None
        if job is None:
            self.notify("no job selected", severity="warning")
        return job

    async def _call(self, what: Awaitable[Any], done: str | None = None) -> Any:
        try:
            result = await what
        except (UserError, OwnerGone) as exc:
            self.notify(str(exc), severity="error", timeout=6)
            return None
        if done:
            self.notify(done)
        return result

    def _ready(self) -> bool:
        if self.tapp.session is None:
            self.notify("still connecting…", severity="warning")
            return False
        return True

    def action_enqueue(self) -> None:
        if not self._ready():
            return
        job = self._selected_job_quiet()
        lane = self.table.lane_filter or (job["lane"] if job else "local")

        def done(created: dict[str, Any] | None) -> None:
            if created:
                self.notify(f"queued {created['id']} on the {created['lane']} lane")
                self.call_after_refresh(self.table.select, created["id"])

        self.app.push_screen(EnqueueScreen(self.tapp.session.add, lane), done)

    def _selected_job_quiet(self) -> dict[str, Any] | None:
        job_id = self.table.selected_id
        return self.tapp.model.jobs.get(job_id) if job_id else None

    def action_cancel(self) -> None:
        if not self._ready() or (job := self._selected_job()) is None:
            return
        if job["state"] not in ("queued", "running"):
            self.notify(f"{job['id']} already {job['state']}", severity="warning")
            return
        verb = "Stop the running" if job["state"] == "running" else "Cancel the queued"

        async def answer(yes: bool | None) -> None:
            if yes:
                await self._call(self.tapp.session.cancel(job["id"]), f"cancelled {job['id']}")

        self.app.push_screen(
            ConfirmScreen(f"{verb} job {job['id']} ({job.get('name') or job.get('command')})?",
                          yes="Cancel job"), answer)  # fmt: skip

    async def action_priority(self, delta: int) -> None:
        if not self._ready() or (job := self._selected_job()) is None:
            return
        if job["state"] != "queued":
            self.notify(f"only queued jobs can change priority ({job['id']} is {job['state']})",
                        severity="warning")  # fmt: skip
            return
        await self._call(self.tapp.session.priority(job["id"], int(job.get("priority", 0)) + delta))

    async def action_retry(self) -> None:
        if not self._ready() or (job := self._selected_job()) is None:
            return
        await self._call(self.tapp.session.retry(job["id"]), f"queued {job['id']} again")

    async def action_details(self) -> None:
        if not self._ready() or (job := self._selected_job()) is None:
            return
        session = self.tapp.session
        self.app.push_screen(
            DetailsScreen(job["id"], session.job, session.log_chunk, self.tapp.refresh_interval)
        )

    async def action_pause_lane(self) -> None:
        if not self._ready():
            return
        job = self._selected_job_quiet()
        lane = job["lane"] if job else (self.table.lane_filter or "local")
        await self._toggle_pause([lane])

    async def action_pause_all(self) -> None:
        if self._ready():
            await self._toggle_pause(["local", "remote"])

    async def _toggle_pause(self, lanes: list[str]) -> None:
        status = self.tapp.model.status
        paused = all(status.get(lane, {}).get("paused") for lane in lanes)
        target = "all" if len(lanes) > 1 else lanes[0]
        if paused:
            await self._call(self.tapp.session.resume(target), f"resumed {target}")
        else:
            await self._call(self.tapp.session.pause(target),
                             f"paused {target}: running jobs finish, nothing new starts")  # fmt: skip

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # The filter key is a priority binding; in the filter box it is just text.
        return not (action == "filter" and isinstance(self.focused, Input))

    def action_filter(self) -> None:
        box = self.query_one(FilterInput)
        box.add_class("shown")
        # Now, not after a refresh: keys typed right behind "/" are text for the box,
        # not commands (a terminal often delivers "/re" in one read).
        self.set_focus(box)

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.table.text_filter = event.value.strip()
        self.table.rebuild(self.tapp.now())
        self._title_queue()

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self.table.focus()

    @on(Input.Blurred, "#filter")
    def _filter_left(self, event: Input.Blurred) -> None:
        if not event.input.value:
            event.input.remove_class("shown")

    def action_cycle_lane(self) -> None:
        table = self.table
        table.lane_filter = LANE_FILTERS[(LANE_FILTERS.index(table.lane_filter) + 1) % len(LANE_FILTERS)]
        table.rebuild(self.tapp.now())
        self._title_queue()

    def action_ladder(self) -> None:
        from console.tui.screens.ladder import LadderScreen  # loaded on first use

        self.app.push_screen(LadderScreen())

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(self.tapp.keymap))

    async def action_quit(self) -> None:
        await self.tapp.request_quit()
