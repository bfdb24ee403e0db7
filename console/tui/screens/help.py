"""``?``: every key, from the same command table as the footer and the palette."""

from __future__ import annotations

from collections.abc import Mapping

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from console.tui.commands import COMMANDS, key_label


def help_table(keymap: Mapping[str, str]) -> Table:
    table = Table(box=None, show_header=True, header_style="bold", expand=True)
    table.add_column("key", no_wrap=True)
    table.add_column("what it does")
    table.add_column("id (ui.keymap)", no_wrap=True, style="dim")
    for c in COMMANDS:
        table.add_row(key_label(c, keymap), c.help, c.id)
    table.add_row("ctrl+p", "Command palette: the same actions, themes", "")
    table.add_row("esc", "Close a dialog, clear the filter", "")
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close", id="help_close")]

    def __init__(self, keymap: Mapping[str, str]) -> None:
        super().__init__()
        self.keymap = keymap

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog", classes="help"):
            yield Static("Keys", classes="title")
            yield Static(help_table(self.keymap))
            yield Static("Remap in the config file, e.g. [ui] keymap = { cancel = \"x\" }",
                         classes="hint")  # fmt: skip
