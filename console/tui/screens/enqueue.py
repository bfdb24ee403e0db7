"""The enqueue modal: a shell command (command, lane, priority, name, timeout, retry) or a
model pull (model, priority, name, retry, insecure); validated in place. ``enter``
submits, ``esc`` closes."""

from __future__ import annotations

import os
import shlex
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from console.core.errors import UserError
from console.core.pull_job import pull_payload

FIELDS = ("command", "model", "priority", "name", "timeout", "retry")
KINDS = [("shell command", "shell"), ("pull a model", "pull")]


def build_payload(values: dict[str, Any], cwd: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The job payload for the control API, or the errors per field (one line each)."""
    if values.get("kind") == "pull":
        return _pull_payload(values)
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
    priority = _priority(values, errors)
    timeout: float | None = None
    raw = str(values.get("timeout") or "").strip()
    if raw:
        try:
            timeout = float(raw)
            if timeout <= 0:
                raise ValueError
        except ValueError:
            errors["timeout"] = "seconds, a positive number (empty for none)"
    retries = _retries(values, errors)
    lane = values.get("lane") or "local"
    payload: dict[str, Any] = {
        "command": argv, "lane": lane, "priority": priority,
        "name": str(values.get("name") or "").strip() or None,
        "timeout": timeout, "retries": retries, "shell": shell, "cwd": cwd,
    }  # fmt: skip
    return payload, errors


def _pull_payload(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """What `twolane pull MODEL` sends (plus the modal's name and retry fields)."""
    errors: dict[str, str] = {}
    priority = _priority(values, errors)
    retries = _retries(values, errors)
    try:
        payload = pull_payload(str(values.get("model") or ""), priority=priority,
                               insecure=bool(values.get("insecure")),
                               name=str(values.get("name") or ""), retries=retries)  # fmt: skip
    except UserError as exc:
        errors["model"] = str(exc)
        payload = {}
    return payload, errors


def _priority(values: dict[str, Any], errors: dict[str, str]) -> int:
    raw = str(values.get("priority") or "").strip()
    if not raw:
        return 0
    try:
        return int(raw)
    except ValueError:
        errors["priority"] = "a whole number; higher runs sooner"
        return 0


def _retries(values: dict[str, Any], errors: dict[str, str]) -> int:
    raw = str(values.get("retry") or "").strip()
    if not raw:
        return 0
    try:
        retries = int(raw)
        if not 0 <= retries <= 100:
            raise ValueError
    except ValueError:
        errors["retry"] = "extra attempts, 0..100"
        return 0
    return retries


Submit = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]



def _field(label: str, id: str, value: str = "", placeholder: str = "") -> Iterator[Widget]:
    """A labelled input with the line under it where its validation message goes."""
    yield Label(label)
    yield Input(value, placeholder=placeholder, id=id)
    yield Label("", id=f"{id}-error", classes="error")

class EnqueueScreen(ModalScreen[dict[str, Any] | None]):
    """Dismisses with the accepted job's dict, or None when closed."""

    BINDINGS = [Binding("escape", "close", "Close", id="enqueue_close")]
    AUTO_FOCUS = None  # the command or model field, whichever the kind shows (on_mount)

    def __init__(self, submit: Submit, lane: str = "local", kind: str = "shell") -> None:
        super().__init__()
        self._submit = submit
        self._lane = lane
        self._kind = kind

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            with Horizontal(classes="title-row"):
                yield Static("Enqueue a job", classes="title")
                yield Label("Kind ")
                yield Select(KINDS, value=self._kind, allow_blank=False, id="kind")
            with Vertical(id="command-box"):
                yield from _field("Command", "command", placeholder="e.g. make test")
            with Vertical(id="model-box"):
                yield from _field("Model (pulled through the Ollama upstream that serves it)",
                                  "model", placeholder="e.g. llama3.2:1b")  # fmt: skip
            with Horizontal(classes="row"):
                with Vertical():
                    yield Label("Lane", id="lane-label")
                    yield Select([("local", "local"), ("remote", "remote")], value=self._lane,
                                 allow_blank=False, id="lane")  # fmt: skip
                with Vertical():
                    yield from _field("Priority", "priority", "0")
            with Horizontal(classes="row"):
                with Vertical():
                    yield from _field("Name", "name", placeholder="(the command)")
                with Vertical(id="timeout-box"):
                    yield from _field("Timeout s", "timeout", placeholder="none")
                with Vertical():
                    yield from _field("Retry", "retry", "0")
            with Horizontal(classes="buttons"):
                yield Checkbox("shell", id="shell")
                yield Checkbox("insecure registry", id="insecure")
                yield Button("Enqueue", variant="primary", id="ok")
                yield Button("Cancel", id="close")
            yield Label("", id="form-error", classes="error")

    def on_mount(self) -> None:
        self._show_kind(self._kind)
        self._focus_first()

    def _focus_first(self) -> None:
        self.query_one("#model" if self.kind == "pull" else "#command", Input).focus()

    @property
    def kind(self) -> str:
        return str(self.query_one("#kind", Select).value)

    @on(Select.Changed, "#kind")
    def _kind_changed(self, event: Select.Changed) -> None:
        self._show_kind(str(event.value))
        self._focus_first()  # a new kind is chosen to type its main field next

    def _show_kind(self, kind: str) -> None:
        """A pull has a model instead of a command, always runs in the local lane, and its
        runner has its own time limit (no timeout field) and no shell."""
        pull = kind == "pull"
        self.query_one("#command-box").display = not pull
        self.query_one("#shell").display = not pull
        self.query_one("#timeout-box").display = not pull
        self.query_one("#model-box").display = pull
        self.query_one("#insecure").display = pull
        lane = self.query_one("#lane", Select)
        if pull:
            lane.value = "local"
        lane.disabled = pull
        self.query_one("#lane-label", Label).update("Lane (pulls run local)" if pull else "Lane")
        self.query_one("#name", Input).placeholder = "(pull MODEL)" if pull else "(the command)"
        self._show_errors({})

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: self.query_one(f"#{name}", Input).value for name in FIELDS}
        out["kind"] = self.kind
        out["lane"] = self.query_one("#lane", Select).value
        out["shell"] = self.query_one("#shell", Checkbox).value
        out["insecure"] = self.query_one("#insecure", Checkbox).value
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
