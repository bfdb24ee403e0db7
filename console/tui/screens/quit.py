"""Quitting the owner console while jobs run: wait for them, stop them, or cancel them."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class QuitScreen(ModalScreen[str | None]):
    """Dismisses with "wait", "stop", "cancel", or None to stay."""

    BINDINGS = [
        Binding("w", "choose('wait')", "Wait", id="quit_wait"),
        Binding("s", "choose('stop')", "Stop", id="quit_stop"),
        Binding("c", "choose('cancel')", "Cancel jobs", id="quit_cancel"),
        Binding("escape", "choose(None)", "Stay", id="quit_stay"),
    ]

    def __init__(self, running: int) -> None:
        super().__init__()
        self.running = running

    def compose(self) -> ComposeResult:
        jobs = "1 job is" if self.running == 1 else f"{self.running} jobs are"
        with Vertical(id="dialog", classes="small"):
            yield Static(
                f"{jobs} running and this console owns the scheduler.\n"
                "wait: nothing new starts; quit when they finish\n"
                "stop: end them now, recorded interrupted (retry later)\n"
                "cancel: end them now, recorded cancelled",
                classes="question",
            )
            with Horizontal(classes="buttons"):
                yield Button("Wait (w)", id="wait", variant="primary")
                yield Button("Stop (s)", id="stop", variant="warning")
                yield Button("Cancel (c)", id="cancel", variant="error")
                yield Button("Stay (esc)", id="stay")

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None if event.button.id == "stay" else event.button.id)

    def action_choose(self, choice: str | None) -> None:
        self.dismiss(choice)
