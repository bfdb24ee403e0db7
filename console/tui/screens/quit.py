"""Quitting the owner console while jobs run: wait for them, stop them, or cancel them."""

from __future__ import annotations

from collections.abc import Callable

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

REFRESH_EVERY = 0.5  # seconds between re-counts of the running jobs


class QuitScreen(ModalScreen[str | None]):
    """Dismisses with "wait", "stop", "cancel", or None to stay. The count of running jobs
    is read again while it is open: a job that ends meanwhile is not still announced."""

    BINDINGS = [
        Binding("w", "choose('wait')", "Wait", id="quit_wait"),
        Binding("s", "choose('stop')", "Stop", id="quit_stop"),
        Binding("c", "choose('cancel')", "Cancel jobs", id="quit_cancel"),
        Binding("escape", "choose(None)", "Stay", id="quit_stay"),
    ]

    def __init__(self, running: Callable[[], int]) -> None:
        super().__init__()
        self.running = running
        self._shown = -1

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="small"):
            yield Static(self._question(), classes="question")
            with Horizontal(classes="buttons"):
                yield Button("Wait (w)", id="wait", variant="primary")
                yield Button("Stop (s)", id="stop", variant="warning")
                yield Button("Cancel (c)", id="cancel", variant="error")
                yield Button("Stay (esc)", id="stay")

    def on_mount(self) -> None:
        self.set_interval(REFRESH_EVERY, self._recount)

    def _question(self) -> str:
        count = self._shown = self.running()
        if count == 0:
            head = "No job is running now: any choice but Stay quits at once."
        else:
            jobs = "1 job is" if count == 1 else f"{count} jobs are"
            head = f"{jobs} running and this console owns the scheduler."
        return (f"{head}\n"
                "wait: nothing new starts; quit when they finish\n"
                "stop: end them now, recorded interrupted (retry later)\n"
                "cancel: end them now, recorded cancelled")  # fmt: skip

    def _recount(self) -> None:
        if self.running() != self._shown:
            self.query_one(".question", Static).update(self._question())

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None if event.button.id == "stay" else event.button.id)

    def action_choose(self, choice: str | None) -> None:
        self.dismiss(choice)
