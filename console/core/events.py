"""One event bus for the owner: the TUI, the control API and the gateway subscribe.

Publishing never blocks. A slow subscriber's queue is bounded; when it overflows the
oldest events are dropped and the subscriber is told (``lagged``) so it can resync.

A listener (``listen``) is a plain function the bus calls inside ``publish``: no queue and
no task to wake, for in-process bookkeeping that is quick and never awaits (the gateway
notes each job's end this way, once per request). An error in a listener is logged, never
raised into the publisher.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

# Kinds published today. Subscribers ignore kinds they do not know.
JOB = "job"  # data: the job's dict
LANES = "lanes"  # data: lane status (see Scheduler.status)
VIOLATION = "violation"  # data: the violation's dict
SAMPLE = "sample"  # data: a metrics sample
LOG = "log"  # data: {"level", "message"}
# data: {"old", "id"}: a new job's random id was taken when it was stored, so it has a
# new one; published before any event under the new id.
RENAMED = "renamed"

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Event:
    kind: str
    data: dict[str, Any]
    at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "data": self.data, "at": self.at}


class Subscription:
    def __init__(self, bus: EventBus, maxsize: int, kinds: frozenset[str] | None,
                 where: Callable[[Event], bool] | None = None) -> None:  # fmt: skip
        self._bus = bus
        self.kinds = kinds
        self.where = where
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.lagged = 0

    def offer(self, event: Event) -> None:
        if self.kinds is not None and event.kind not in self.kinds:
            return
        if self.where is not None and not self.where(event):
            return  # not queued, so the subscriber is not woken for nothing
        if self.queue.full():
            self.queue.get_nowait()
            self.lagged += 1
        self.queue.put_nowait(event)

    async def get(self) -> Event:
        return await self.queue.get()

    def close(self) -> None:
        self._bus._subs.discard(self)
        self._bus._wanted.clear()

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            yield await self.queue.get()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Listener:
    """A function called with each matching event as it is published; see the module
    docstring. ``close()`` (or leaving its ``with`` block) stops the calls."""

    def __init__(self, bus: EventBus, kinds: frozenset[str] | None, callback: Callable[[Event], None],
                 where: Callable[[Event], bool] | None) -> None:  # fmt: skip
        self._bus = bus
        self.kinds = kinds
        self.callback = callback
        self.where = where

    def offer(self, event: Event) -> None:
        if self.kinds is not None and event.kind not in self.kinds:
            return
        if self.where is not None and not self.where(event):
            return
        try:
            self.callback(event)
        except Exception:  # a listener's bug must not fail the scheduler that published
            log.exception("event listener %r failed on a %s event", self.callback, event.kind)

    def close(self) -> None:
        self._bus._listeners.discard(self)
        self._bus._wanted.clear()

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        self._listeners: set[Listener] = set()
        self._wanted: dict[str, bool] = {}  # wanted()'s answers until (un)subscribing

    def subscribe(self, kinds: set[str] | None = None, maxsize: int = 10_000,
                  where: Callable[[Event], bool] | None = None) -> Subscription:  # fmt: skip
        """Events of ``kinds`` (all when None) for which ``where`` holds (all when None)."""
        sub = Subscription(self, maxsize, frozenset(kinds) if kinds else None, where)
        self._subs.add(sub)
        self._wanted.clear()
        return sub

    def listen(self, kinds: set[str] | None, callback: Callable[[Event], None],
               where: Callable[[Event], bool] | None = None) -> Listener:  # fmt: skip
        """Call ``callback(event)`` inside ``publish`` for events of ``kinds`` (all when
        None) for which ``where`` holds. It must be quick and must not block."""
        listener = Listener(self, frozenset(kinds) if kinds else None, callback, where)
        self._listeners.add(listener)
        self._wanted.clear()
        return listener

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        event = Event(kind, data)
        for sub in list(self._subs):
            sub.offer(event)
        if self._listeners:
            for listener in list(self._listeners):
                listener.offer(event)

    def wanted(self, kind: str) -> bool:
        """Does any subscriber or listener take ``kind``? (So a publisher can skip building
        the data.) Kept until a subscriber or listener comes or goes."""
        known = self._wanted.get(kind)
        if known is None:
            known = any(s.kinds is None or kind in s.kinds for s in (*self._subs, *self._listeners))
            self._wanted[kind] = known
        return known

    @property
    def subscribers(self) -> int:
        return len(self._subs)
