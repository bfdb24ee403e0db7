"""A minimal machine sampler for the graphs pane, used only while the owner has no
``sampler`` of its own (the signals feature provides the real one with gates).

It reads psutil's cheap counters (load average, memory, swap) without blocking, keeps a
ring buffer, and schedules the next read only after the previous one finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from collections.abc import Callable
from typing import Any

Sample = dict[str, Any]


def read_psutil(now: float) -> Sample:
    """One sample with the signals contract's keys, from psutil."""
    import psutil

    load1, load5, load15 = psutil.getloadavg()
    vm = psutil.virtual_memory()
    sw = psutil.swap_memory()
    return {
        "at": now,
        "load1": load1,
        "load5": load5,
        "load15": load15,
        "cores": os.cpu_count() or 1,
        "mem_total": vm.total,
        "mem_used": vm.total - vm.available,
        "mem_available": vm.available,
        "swap_total": sw.total,
        "swap_used": sw.used,
        "pressure": None,
        "pressure_pct": None,
        "thresholds": {},
    }


class FallbackSampler:
    """``history(seconds)`` / ``latest()`` like the owner's sampler; calls ``on_sample``."""

    def __init__(
        self,
        on_sample: Callable[[Sample], None] | None = None,
        *,
        interval: float = 2.0,
        keep_seconds: float = 600.0,
        source: Callable[[float], Sample] = read_psutil,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.on_sample = on_sample
        self.interval = interval
        self.source = source
        self.clock = clock
        self._ring: deque[Sample] = deque(maxlen=max(2, int(keep_seconds / interval) + 1))
        self._task: asyncio.Task[None] | None = None

    def sample_once(self) -> Sample:
        sample = self.source(self.clock())
        self._ring.append(sample)
        if self.on_sample is not None:
            self.on_sample(sample)
        return sample

    def history(self, seconds: float) -> list[Sample]:
        since = self.clock() - seconds
        return [s for s in self._ring if s["at"] >= since]

    def latest(self) -> Sample | None:
        return self._ring[-1] if self._ring else None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="twolane-tui-sampler")

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(Exception):  # a failed read leaves a gap, no worse
                self.sample_once()
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
