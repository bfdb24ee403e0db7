"""Errors a user can cause. The message is one line that names the fix."""

from __future__ import annotations


class UserError(ValueError):
    """Bad input: shown as-is, exit code 2 on the CLI, HTTP 400 on the APIs."""

    status = 400


class NotFound(UserError):
    status = 404


class Conflict(UserError):
    """The request is valid but the job's state does not allow it."""

    status = 409


class OwnerRunning(RuntimeError):
    """Another process holds the data dir's lease."""

    def __init__(self, pid: int | None, lease: str) -> None:
        who = f"pid {pid}" if pid else "another process"
        super().__init__(
            f"another twolane owner ({who}) holds {lease}; run `twolane` to attach to it, "
            "or stop it first"
        )
        self.pid = pid
