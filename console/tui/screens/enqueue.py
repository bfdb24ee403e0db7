"""The enqueue modal: command, lane, priority, name, timeout, retry; validated in place.
``enter`` submits, ``esc`` closes."""

from __future__ import annotations

import os
import shlex
from collections.abc import Awaitable, Callable
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from console.core.errors import UserError

FIELDS = ("command", "priority", "name", "timeout", "retry")


def build_payload(values: dict[str, Any], cwd: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The job payload for the control API, or the errors per field (one line each)."""
    errors: dict[str, str] = {}
    command_text = str(values.get("command") or "").strip()
    shell = bool(values.get("shell"))
    argv: list[str] = []
    if not command_text:
        errors["command"] = "type a command, e.g. make test"
    elif shell:
        argv = [command_text]
    else:
        try:
            argv = shlex.split(command_text)
        except ValueError as exc:
            errors["command"] = f"{exc}; close the quote or tick 'shell'"
    priority = 0
    raw = str(values.get("priority") or "").strip()
    if raw:
        try:
            priority = int(raw)
        except ValueError:
            errors["priority"] = "a whole number; higher runs sooner"
    timeout: float | None = None
    raw = str(values.get("timeout") or "").strip()
    if raw:
        try:
            timeout = float(raw)
            if timeout <= 0:
                raise ValueError
        except ValueError:
            errors["timeout"] = "seconds, a positive number (empty for none)"
    retries = 0
    raw = str(values.get("retry") or "").strip()
    if raw:
        try:
            retries = int(raw)
            if not 0 <= retries <= 100:
                raise ValueError
        except ValueError:
            errors["retry"] = "extra attempts, 0..100"
    lane = values.get("lane") or "local"
    payload: dict[str, Any] = {
        "command": argv, "lane": lane, "priority": priority,
        "name": str(values.get("name") or "").strip() or None,
        "timeout": timeout, "retries": retries, "shell": shell, "cwd": cwd,
    }  # fmt: skip
    return payload, errors


Submit = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class EnqueueScreen(ModalScreen[dict[str, Any] | None]):
    """Dismisses with the accepted job's dict, or None when closed."""

    BINDINGS = [Binding("escape", "close", "Close", id="enqueue_close")]

    def __init__(self, submit: Submit, lane: str = "local") -> None:
        super().__init__()
        self._submit = submit
        self._lane = lane

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static("Enqueue a job", classes="title")
            yield Label("Command")
            yield Input(placeholder="e.g. make test", id="command")
            yield Label("", id="command-error", classes="error")
            with Horizontal(classes="row"):
                with Vertical():
                    yield Label("Lane")
                    yield Select([("local", "local"), ("remote", "remote")], value=self._lane,
                                 allow_blank=False, id="lane")  # fmt: skip
                with Vertical():
                    yield Label("Priority")
                    yield Input("0", id="priority")
                    yield Label("", id="priority-error", classes="error")
            with Horizontal(classes="row"):
                with Vertical():
                    yield Label("Name")
                    yield Input(placeholder="(the command)", id="name")
                    yield Label("", id="name-error", classes="error")
                with Vertical():
                    yield Label("Timeout s")
                    yield Input(placeholder="none", id="timeout")
                    yield Label("", id="timeout-error", classes="error")
                with Vertical():
                    yield Label("Retry")
                    yield Input("0", id="retry")
                    yield Label("", id="retry-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Checkbox("shell", id="shell")
                yield Button("Enqueue", variant="primary", id="ok")
                yield Button("Cancel", id="close")
            yield Label("", id="form-error", classes="error")

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: self.query_one(f"#{name}", Input).value for name in FIELDS}
        out["lane"] = self.query_one("#lane", Select).value
        out["shell"] = self.query_one("#shell", Checkbox).value
        return out

    def _show_errors(self, errors: dict[str, str]) -> None:
        for name in FIELDS:
            self.query_one(f"#{name}-error", Label).update(errors.get(name, ""))
        self.query_one("#form-error", Label).update(errors.get("form", ""))

    @on(Input.Changed)
    def _revalidate(self, event: Input.Changed) -> None:
        # Clear a field's message as soon as it becomes valid; never nag while typing.
        _, errors = build_payload(self.values(), os.getcwd())
        field = event.input.id or ""
        if field in FIELDS and field not in errors:
            self.query_one(f"#{field}-error", Label).update("")

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    async def action_submit(self) -> None:
        payload, errors = build_payload(self.values(), os.getcwd())
        self._show_errors(errors)
        if errors:
            self.query_one(f"#{next(iter(errors))}", Input).focus()
            return
        try:
            job = await self._submit(payload)
        except UserError as exc:  # the owner refused it: say why, keep the form
            self._show_errors({"form": str(exc)})
            return
        self.dismiss(job)

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss(None)
