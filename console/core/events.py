"""One event bus for the owner: the TUI, the control API and the gateway subscribe.

Publishing never blocks. A slow subscriber's queue is bounded; when it overflows the
oldest events are dropped and the subscriber is told (``lagged``) so it can resync.
"""

from __future__ import annotations

import asyncio
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

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            yield await self.queue.get()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    def __init__(self) -> None:
        self._subs: set[Subscription] = set()

    def subscribe(self, kinds: set[str] | None = None, maxsize: int = 10_000,
                  where: Callable[[Event], bool] | None = None) -> Subscription:  # fmt: skip
        """Events of ``kinds`` (all when None) for which ``where`` holds (all when None)."""
        sub = Subscription(self, maxsize, frozenset(kinds) if kinds else None, where)
        self._subs.add(sub)
        return sub

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        event = Event(kind, data)
        for sub in list(self._subs):
            sub.offer(event)

    def wanted(self, kind: str) -> bool:
        """Does any subscriber take ``kind``? (So a publisher can skip building the data.)"""
        return any(sub.kinds is None or kind in sub.kinds for sub in self._subs)

    @property
    def subscribers(self) -> int:
        return len(self._subs)
