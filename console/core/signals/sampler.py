"""The sampler: one reading of the machine every ``signals.interval`` seconds, kept in a
ring buffer for the graphs and published on the event bus as ``sample``.

Readings run in a worker thread (never on the event loop), and the next one is scheduled
only after the last finished, so slow readings never pile up. A sample is a dict:
``at``, ``load1``, ``load5``, ``load15``, ``cores``, ``mem_total``, ``mem_used``,
``mem_available``, ``swap_total``, ``swap_used`` (bytes), ``pressure``
(``normal``|``warning``|``critical``), ``pressure_pct`` (float or None), ``disk_free``
({path: bytes}), ``cpu_percent`` (per core), ``top`` ([{pid, name, rss}]), ``heavy``
(heavy processes outside twolane) and ``thresholds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from console.core import events
from console.core.clock import Clock, SystemClock
from console.core.signals.gates import Thresholds, heavy_processes
from console.core.signals.sources import Source

log = logging.getLogger(__name__)

Listener = Callable[[dict[str, Any]], Awaitable[None]]


class Sampler:
    def __init__(
        self,
        source: Source,
        thresholds: Thresholds,
        *,
        interval: float = 1.0,
        history_seconds: float = 600.0,
        clock: Clock | None = None,
        bus: events.EventBus | None = None,
        exclude_pgids: Callable[[], Iterable[int]] = tuple,
    ) -> None:
        self.source = source
        self.thresholds = thresholds
        self.interval = interval
        self.clock = clock or SystemClock()
        self.bus = bus
        self.exclude_pgids = exclude_pgids
        self._ring: deque[dict[str, Any]] = deque(maxlen=math.ceil(history_seconds / interval) + 1)
        self._listeners: list[Listener] = []
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def add_listener(self, listener: Listener) -> None:
        """``await listener(sample)`` after every sample (the rules engine)."""
        self._listeners.append(listener)

    def latest(self) -> dict[str, Any] | None:
        return self._ring[-1] if self._ring else None

    def history(self, seconds: float = 600) -> list[dict[str, Any]]:
        """Samples of the last ``seconds``, oldest first."""
        if not self._ring:
            return []
        since = self._ring[-1]["at"] - seconds
        return [s for s in self._ring if s["at"] >= since]

    async def sample_once(self) -> dict[str, Any]:
        """Take one reading now (in a thread), keep it, publish it, tell the listeners."""
        async with self._lock:  # the loop and a gate asking for a fresh one never overlap
            reading = await asyncio.to_thread(self.source.read)
            sample = self.build(reading)
            self._ring.append(sample)
        if self.bus is not None:
            self.bus.publish(events.SAMPLE, sample)
        for listener in self._listeners:
            try:
                await listener(sample)
            except Exception:
                log.exception("sample listener failed")
        return sample

    def build(self, reading: dict[str, Any]) -> dict[str, Any]:
        processes = reading.pop("processes", [])
        sample = {"at": self.clock.now(), **reading}
        sample["heavy"] = heavy_processes(
            processes, self.thresholds, sample.get("mem_total", 0),
            exclude_pgids=self.exclude_pgids(), exclude_pids=(os.getpid(),),
        )  # fmt: skip
        sample["thresholds"] = self.thresholds.for_sample()
        return sample

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="twolane-sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            started = self.clock.monotonic()
            try:
                await self.sample_once()
            except Exception:  # a failed reading must not end sampling
                log.exception("sampling failed")
            elapsed = self.clock.monotonic() - started
            await asyncio.sleep(max(self.interval * 0.1, self.interval - elapsed))
