"""Start a child process and await its exit without a thread per child.

asyncio on Python 3.11 watches each child with a thread blocked in ``waitpid`` (the
``ThreadedChildWatcher``): a thread start and two GIL hand-overs per job, about a third
of the cost of a ``true`` job in the drain benchmark. On Linux a pidfd becomes readable
when its process exits, so the event loop itself can watch it: no thread, no signal
handler, and no effect on children that other code starts. Elsewhere (macOS) the child
is started and awaited through asyncio's own subprocess support.

Where the pidfd is used, the child starts through ``os.posix_spawn`` (vfork and exec in
C): ``subprocess.Popen`` spends more Python time than the spawn itself, encoding the
environment variable by variable and building a candidate path for every ``PATH``
entry. ``posix_spawn`` cannot change directory, so a job with a working directory of
its own starts through ``Popen``.
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
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

# Python ignores SIGPIPE (and SIGXFSZ); an ignored signal stays ignored across exec, so
# the child gets them back at their defaults, as Popen's restore_signals does.
_RESTORED_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGPIPE", "SIGXFZ", "SIGXFSZ") if hasattr(signal, name)
)
_devnull_fd: int | None = None
# (program, PATH) -> the file exec runs; checked again when a spawn cannot find it.
_resolved: dict[tuple[bytes, bytes], bytes] = {}


class Child(Protocol):
    """A started process: ``pid``, ``returncode`` (None while it runs), ``await wait()``."""

    pid: int

    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int: ...


class _PidfdChild:
    def __init__(
        self, pid: int, loop: asyncio.AbstractEventLoop, popen: subprocess.Popen[bytes] | None = None
    ) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._popen = popen
        self._loop = loop
        self._waiters: list[asyncio.Future[int]] = []
        self._fd = os.pidfd_open(pid)
        loop.add_reader(self._fd, self._reap)

    def _reap(self) -> None:
        self._loop.remove_reader(self._fd)
        os.close(self._fd)
        # It has exited: waitpid returns at once.
        if self._popen is not None:
            self.returncode = self._popen.wait()
        else:
            self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(self.returncode)
        self._waiters.clear()

    async def wait(self) -> int:
        if self.returncode is not None:
            return self.returncode
        # A future per caller: a caller's timeout (wait_for) cancels only its own.
        waiter: asyncio.Future[int] = self._loop.create_future()
        self._waiters.append(waiter)
        return await waiter


class _AsyncioChild:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc
        self.pid = proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    async def wait(self) -> int:
        return await self._proc.wait()


def _fd(stream: IO[bytes] | int) -> int:
    if stream == subprocess.DEVNULL:
        return _devnull()
    return stream if isinstance(stream, int) else stream.fileno()


def _devnull() -> int:
    global _devnull_fd
    if _devnull_fd is None:
        _devnull_fd = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    return _devnull_fd


def resolve(program: str, env: Mapping[str, str] | Mapping[bytes, bytes]) -> bytes:
    """The file ``exec`` runs for ``program``, searched on the child's ``PATH`` (as
    ``execvpe`` and Popen do). Raises FileNotFoundError naming the program."""
    name = os.fsencode(program)
    if b"/" in name:
        return name
    value = env.get(b"PATH") or env.get("PATH")  # type: ignore[call-overload]
    path = os.fsencode(value) if value is not None else os.fsencode(os.defpath)
    hit = _resolved.get((name, path))
    if hit is not None:
        return hit
    for folder in path.split(b":"):
        candidate = os.path.join(folder or b".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            _resolved[(name, path)] = candidate
            return candidate
    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)


def _posix_spawn(
    argv: Sequence[str], stdout: int, stderr: int, env: Mapping[str, str] | Mapping[bytes, bytes]
) -> int:
    actions = [
        (os.POSIX_SPAWN_DUP2, _devnull(), 0),
        (os.POSIX_SPAWN_DUP2, stdout, 1),
        (os.POSIX_SPAWN_DUP2, stderr, 2),
    ]
    for attempt in (1, 2):
        program = resolve(argv[0], env)
        try:
            return os.posix_spawn(
                program, list(argv), env, file_actions=actions, setsid=True,
                setsigdef=_RESTORED_SIGNALS, setsigmask=(),
            )  # fmt: skip
        except FileNotFoundError as exc:
            if attempt == 2 or b"/" in os.fsencode(argv[0]):
                exc.filename = argv[0]
                raise
            _resolved.clear()  # the program moved since it was found: search again
    raise AssertionError("unreachable")


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
    if pidfd:
        loop = asyncio.get_running_loop()
        if cwd is None:
            return _PidfdChild(_posix_spawn(argv, _fd(stdout), _fd(stderr), env), loop)
        # Popen on the loop thread, as asyncio does itself: vfork+exec returns at once.
        popen = subprocess.Popen(  # noqa: ASYNC220
            list(argv), stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, cwd=cwd,
            env=env, start_new_session=True,
        )  # fmt: skip
        return _PidfdChild(popen.pid, loop, popen)
    kwargs: dict[str, Any] = dict(
        stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, cwd=cwd, env=env,
        start_new_session=True,
    )  # fmt: skip
    return _AsyncioChild(await asyncio.create_subprocess_exec(*argv, **kwargs))
