"""The control-API payload of a model pull job, built in one place for ``twolane pull``
and the console's enqueue modal, so both queue exactly the same job."""

from __future__ import annotations

from typing import Any

from console.core.errors import UserError


def check_model_name(text: str) -> str:
    """The model name to pull, stripped; ``UserError`` naming the fix when it cannot be one."""
    name = text.strip()
    if not name:
        raise UserError("type a model name, e.g. llama3.2:1b")
    if any(ch.isspace() for ch in name):
        raise UserError(f"a model name has no spaces, e.g. llama3.2:1b (got '{name}')")
    if name.startswith("-"):
        raise UserError(f"a model name does not start with '-', e.g. llama3.2:1b (got '{name}')")
    return name


def pull_payload(model: str, *, priority: int = 0, insecure: bool = False,
                 name: str | None = None, retries: int = 0) -> dict[str, Any]:  # fmt: skip
    """A local-lane ``pull`` job for ``model``; the owner checks an Ollama upstream serves it."""
    model = check_model_name(model)
    extra: dict[str, Any] = {"model": model}
    if insecure:
        extra["insecure"] = True
    payload: dict[str, Any] = {"command": [], "kind": "pull", "lane": "local",
                               "name": (name or "").strip() or f"pull {model}",
                               "priority": priority, "extra": extra}  # fmt: skip
    if retries:
        payload["retries"] = retries
    return payload
