"""The owner's event loop: uvloop where it imports, asyncio's own otherwise.

The owner (``twolane serve`` and the console) serves the gateway from its loop; uvloop
(libuv, in C) does the loop's own work (polling, transports, timers, callbacks) with about
a tenth fewer instructions per gateway request than asyncio's selector loop.
``owner.loop = "asyncio"`` (or ``TWOLANE__OWNER__LOOP=asyncio``) keeps the stock loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from console.core.config import ConfigError

T = TypeVar("T")
LOOPS = ("uvloop", "asyncio")


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """A factory for ``asyncio.Runner``: uvloop's for ``"uvloop"`` when it imports, else
    None (asyncio's default loop)."""
    if choice not in LOOPS:
        raise ConfigError(
            f"config key 'owner.loop' must be one of {', '.join(LOOPS)}, got {choice!r}"
        )
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:  # no wheel for this platform: the stock loop does the same work
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], choice: str) -> T:
    """``asyncio.run(main)`` on the loop ``choice`` names (``owner.loop``)."""
    try:
        factory = loop_factory(choice)
    except BaseException:
        main.close()  # never awaited: no warning on top of the config error
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def loop_name(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """``"uvloop"`` or ``"asyncio"``: which loop runs ``loop`` (default: the running one)."""
    loop = loop or asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.split(".")[0] == "uvloop" else "asyncio"
