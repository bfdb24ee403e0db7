"""Start a child process and await its exit without a thread per child.

asyncio on Python 3.11 watches each child with a thread blocked in ``waitpid`` (the
``ThreadedChildWatcher``): a thread start and two GIL hand-overs per job, about a third
of the cost of a ``true`` job in the drain benchmark. On Linux a pidfd becomes readable
when its process exits, so the event loop itself can watch it: no thread, no signal
handler, and no effect on children that other code starts. Elsewhere (macOS) the child
is started and awaited through asyncio's own subprocess support.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Mapping, Sequence
from typing import IO, Any, Protocol


def _pidfd_works() -> bool:
    """pidfd_open exists on Linux 5.3+; a sandbox may still refuse the syscall."""
    if not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False
    return True


HAS_PIDFD = _pidfd_works()


class Child(Protocol):
    """A started process: ``pid``, ``returncode`` (None while it runs), ``await wait()``."""

    pid: int

    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int: ...


class _PidfdChild:
    def __init__(self, popen: subprocess.Popen[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self._popen = popen
        self.pid = popen.pid
        self.returncode = None
        self._loop = loop
        self._exited: asyncio.Future[int] = loop.create_future()
        self._fd = os.pidfd_open(popen.pid)
        loop.add_reader(self._fd, self._reap)

    def _reap(self) -> None:
        self._loop.remove_reader(self._fd)
        os.close(self._fd)
        self.returncode = self._popen.wait()  # it has exited: waitpid returns at once
        if not self._exited.done():
            self._exited.set_result(self.returncode)

    async def wait(self) -> int:
        # Shielded: a caller's timeout (wait_for) must not cancel the shared exit future.
        return await asyncio.shield(self._exited)


class _AsyncioChild:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc
        self.pid = proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    async def wait(self) -> int:
        return await self._proc.wait()


async def spawn(
    argv: Sequence[str],
    *,
    stdout: IO[bytes] | int,
    stderr: IO[bytes] | int,
    cwd: str | None,
    env: Mapping[str, str] | Mapping[bytes, bytes],
    pidfd: bool = HAS_PIDFD,
) -> Child:
    """Start ``argv`` in a new session (its own process group), stdin from /dev/null.

    Raises what ``subprocess.Popen`` raises when the program cannot start
    (FileNotFoundError, PermissionError, NotADirectoryError)."""
    kwargs: dict[str, Any] = dict(
        stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, cwd=cwd, env=env,
        start_new_session=True,
    )  # fmt: skip
    if pidfd:
        loop = asyncio.get_running_loop()
        # Popen on the loop thread, as asyncio does itself: vfork+exec returns at once.
        return _PidfdChild(subprocess.Popen(list(argv), **kwargs), loop)  # noqa: ASYNC220
    return _AsyncioChild(await asyncio.create_subprocess_exec(*argv, **kwargs))
