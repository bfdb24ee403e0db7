"""The one table of console commands. It feeds the key bindings, the footer (KeyBar),
the help screen and the command palette, so the four never drift apart."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from console.tui.app import TwolaneApp


@dataclass(frozen=True, slots=True)
class Command:
    id: str  # the binding id users remap in `ui.keymap`
    key: str  # Textual key name(s), comma separated
    action: str  # action on the main screen
    title: str
    help: str
    group: str = ""  # a narrow footer shows a group's keys under one word: "+/- Pri"
    footer: bool = True  # False: in the footer only where it fits with every other key
    # Runs as the key arrives, before keys behind it are routed (they go to the box it opens).
    priority: bool = False


COMMANDS: tuple[Command, ...] = (
    Command("enqueue", "a", "enqueue", "Add", "Enqueue a job: a shell command or a model pull"),
    Command("cancel", "c", "cancel", "Cancel", "Cancel the selected job (asks first)"),
    Command("priority_up", "plus", "priority(1)", "Pri+", "Raise the selected queued job's priority", group="Pri"),
    Command("priority_down", "minus", "priority(-1)", "Pri-", "Lower the selected queued job's priority", group="Pri"),
    Command("retry", "r", "retry", "Retry", "Queue the selected finished job again"),
    Command("details", "enter", "details", "Info", "The selected job: full log, timings, attempts, exit code"),
    Command("pause", "p", "pause_lane", "Pause", "Pause or resume the selected job's lane", group="Pause"),
    Command("pause_all", "P", "pause_all", "Pause all", "Pause or resume all lanes", group="Pause"),
    Command("filter", "slash", "filter", "Filter", "Filter the queue by text (esc clears)", priority=True),
    Command("lane_filter", "l", "cycle_lane", "Lane", "Cycle the lane filter: all, local, remote"),
    Command("ladder", "L", "ladder", "Ladder", "Ladder runs: step table, gates and chart, live", footer=False),
    Command("help", "question_mark", "help", "Help", "Show every key"),
    Command("quit", "q", "quit", "Quit", "Quit (an owner console asks about running jobs)"),
)

_DISPLAY = {"plus": "+", "minus": "-", "slash": "/", "question_mark": "?", "enter": "enter"}


def bindings() -> list[Binding]:
    """The main screen's bindings, each with an id so `ui.keymap` can remap it."""
    return [
        Binding(c.key, c.action, c.title, id=c.id, key_display=_DISPLAY.get(c.key),
                priority=c.priority)
        for c in COMMANDS
    ]  # fmt: skip


def key_label(command: Command, keymap: Mapping[str, str]) -> str:
    """The keys a person presses for ``command`` after remapping."""
    keys = keymap.get(command.id, command.key)
    return ", ".join(_DISPLAY.get(k.strip(), k.strip()) for k in keys.split(","))


def check_keymap(keymap: Mapping[str, object]) -> tuple[dict[str, str], list[str]]:
    """The usable part of ``ui.keymap`` and one message per bad entry."""
    known = {c.id for c in COMMANDS}
    good: dict[str, str] = {}
    problems: list[str] = []
    for binding_id, keys in keymap.items():
        if binding_id not in known:
            problems.append(f"ui.keymap: unknown binding '{binding_id}'; known: {', '.join(sorted(known))}")
        elif not isinstance(keys, str) or not keys.strip():
            problems.append(f"ui.keymap: '{binding_id}' needs a key string such as \"x\"")
        else:
            good[binding_id] = keys
    return good, problems


class ConsoleCommands(Provider):
    """The command palette's view of the same commands (ctrl+p)."""

    def _entries(self) -> list[tuple[str, str, Command]]:
        app: TwolaneApp = self.app  # type: ignore[assignment]
        return [
            (f"{c.title}: {c.help}", key_label(c, app.keymap), c)
            for c in COMMANDS
        ]

    def _run(self, command: Command) -> None:
        app: TwolaneApp = self.app  # type: ignore[assignment]
        app.run_command(command)

    async def discover(self) -> Hits:
        for text, keys, command in self._entries():
            yield DiscoveryHit(text, partial(self._run, command), help=f"key: {keys}")

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, keys, command in self._entries():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), partial(self._run, command),
                          help=f"key: {keys}")  # fmt: skip
