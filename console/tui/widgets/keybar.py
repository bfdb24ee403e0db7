"""The footer: the keys of the command table on one line, in the words that fit.

From the widest form down: each key with its title; pairs sharing one word (``+/- Pri``,
``p/P Pause``); then ``⏎`` for enter and a bare ``^p``; last, the same without commands
marked ``footer=False`` (issue 3's keys all fit 80 columns). Narrower terminals cut the
line with an ellipsis. A key is a link: a click runs its action. While the filter box has
focus the bar says what keys do there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.style import Style
from rich.text import Text
from textual.widgets import Input, Static

from console.tui.commands import COMMANDS, Command, key_label
from console.tui.widgets.colors import theme_style

Item = tuple[str, str, str | None]  # keys, label, action a click runs
COMPACT = {"enter": "⏎"}
FILTERING: list[Item] = [("type", "to filter", None), ("enter", "done", None),
                         ("esc", "clear", None)]  # fmt: skip


def forms(keymap: Mapping[str, str]) -> list[tuple[list[Item], str]]:
    """The bar's forms, widest first: (items, palette hint). Every form has every key
    but the last, which leaves out commands marked ``footer=False``."""

    def grouped(commands: list[Command]) -> list[Item]:
        out: list[Item] = []
        seen: dict[str, int] = {}
        for c in commands:
            keys = key_label(c, keymap)
            if c.group and c.group in seen:  # join the first of its group: "+/- Pri"
                i = seen[c.group]
                first_keys, label, action = out[i]
                out[i] = (f"{first_keys}/{keys}", label, action)
                continue
            if c.group:
                seen[c.group] = len(out)
            out.append((keys, c.group or c.title, c.action))
        return out

    def compact(items: list[Item]) -> list[Item]:
        return [(COMPACT.get(k, k), label, action) for k, label, action in items]

    every = list(COMMANDS)
    core = [c for c in COMMANDS if c.footer]
    full = [(key_label(c, keymap), c.title, c.action) for c in every]
    return [(full, "^p palette"), (grouped(every), "^p palette"),
            (compact(grouped(every)), "^p"), (compact(grouped(core)), "^p")]  # fmt: skip


def width(items: list[Item], hint: str, gap: int) -> int:
    return sum(len(k) + 1 + len(label) for k, label, _ in items) + gap * len(items) + len(hint)


class KeyBar(Static):
    """One line of keys for ``keymap``; redrawn on resize, focus change and theme."""

    DEFAULT_CSS = """
    KeyBar {
        height: 1;
        dock: bottom;
        background: $footer-background;
        text-wrap: nowrap;
        text-overflow: ellipsis;
        link-style: none;
        link-style-hover: bold;
        link-background-hover: $accent 30%;
    }
    """

    def __init__(self, keymap: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.keymap = keymap
        self._forms = forms(keymap)
        self._shown: Text | None = None

    @property
    def text(self) -> str:
        """What the bar shows, as plain text."""
        return self._shown.plain if self._shown is not None else ""

    def on_mount(self) -> None:
        self.watch(self.screen, "focused", self.draw, init=False)
        self.watch(self.app, "theme", self.draw, init=False)

    def on_resize(self) -> None:
        self.draw()

    def layout_for(self, cells: int) -> tuple[list[Item], str, int]:
        """The widest form that fits ``cells`` (two spaces between keys if they fit)."""
        for items, hint in self._forms:
            for gap in (2, 1):
                if width(items, hint, gap) <= cells:
                    return items, hint, gap
        items, hint = self._forms[-1]
        return items, hint, 1

    def draw(self) -> None:
        cells = self.size.width
        if isinstance(self.screen.focused, Input):
            items, hint, gap = FILTERING, "", 2
        else:
            items, hint, gap = self.layout_for(cells)
        key_style = theme_style(self.app, "accent", bold=True)
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        for keys, label, action in items:
            link = Style(meta={"@click": f"screen.{action}"}) if action else Style()
            text.append(keys, style=key_style + link)
            text.append(f" {label}" + " " * gap, style=link)
        if hint:
            pad = max(0, cells - text.cell_len - len(hint))
            text.append(" " * pad)
            text.append(hint, style=theme_style(self.app, "text-muted"))
        if text != self._shown:
            self._shown = text
            self.update(text, layout=False)
