"""The sampler: injectable source and clock, ring buffer, bus events, listeners, and a
loop that never blocks the event loop nor overlaps readings."""

from __future__ import annotations

import threading
import time
from typing import Any

from console.core import events
from console.core.clock import ManualClock
from console.core.signals.gates import Thresholds
from console.core.signals.sampler import Sampler
from console.core.signals.sources import GIB, FakeSource, SystemSource
from tests.helpers import LoopTicks, until

CONTRACT = {"at", "load1", "load5", "load15", "cores", "mem_total", "mem_used", "mem_available",
            "swap_total", "swap_used", "pressure", "pressure_pct", "disk_free", "cpu_percent",
            "top", "thresholds", "heavy"}  # fmt: skip


async def test_readings_move_with_the_fake_source_and_clock() -> None:
    source, clock, bus = FakeSource(), ManualClock(), events.EventBus()
    sampler = Sampler(source, Thresholds(), interval=1.0, history_seconds=10, clock=clock, bus=bus)
    sub = bus.subscribe({events.SAMPLE})
    assert sampler.latest() is None and sampler.history() == []
    for i in range(15):
        source.set(swap_used=i * GIB)
        await sampler.sample_once()
        clock.advance(1.0)
    latest = sampler.latest()
    assert latest is not None and set(latest) >= CONTRACT
    assert latest["swap_used"] == 14 * GIB and latest["at"] == clock.now() - 1
    assert latest["thresholds"] == Thresholds().for_sample()
    assert [s["swap_used"] // GIB for s in sampler.history(3)] == [11, 12, 13, 14]
    assert len(sampler.history(600)) == 11  # the ring keeps history_seconds / interval + 1
    assert sub.queue.qsize() == 15
    assert (await sub.get()).data["swap_used"] == 0


async def test_processes_become_heavy_unless_they_are_twolane_jobs() -> None:
    procs = [{"pid": 5, "pgid": 5, "name": "ollama", "argv": ["ollama", "pull", "m"],
              "cmdline": "ollama pull m", "rss": 10},
             {"pid": 9, "pgid": 8, "name": "ollama", "argv": ["ollama", "run", "m"],
              "cmdline": "ollama run m", "rss": 10}]  # fmt: skip
    sampler = Sampler(FakeSource(processes=procs), Thresholds(), clock=ManualClock(),
                      exclude_pgids=lambda: [8])  # fmt: skip
    sample = await sampler.sample_once()
    assert [h["pid"] for h in sample["heavy"]] == [5]
    assert "processes" not in sample


async def test_listeners_are_told_and_a_failing_one_does_not_stop_sampling() -> None:
    seen: list[dict[str, Any]] = []

    async def bad(sample: dict[str, Any]) -> None:
        raise RuntimeError("boom")

    async def good(sample: dict[str, Any]) -> None:
        seen.append(sample)

    sampler = Sampler(FakeSource(), Thresholds(), clock=ManualClock())
    sampler.add_listener(bad)
    sampler.add_listener(good)
    await sampler.sample_once()
    assert len(seen) == 1


class SlowSource(FakeSource):
    """Blocks in read() like a slow sysctl; counts readings running at once."""

    def __init__(self) -> None:
        super().__init__()
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()

    def read(self) -> dict[str, Any]:
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        time.sleep(0.05)
        with self.lock:
            self.active -= 1
        return super().read()


async def test_loop_never_overlaps_readings_nor_blocks_the_event_loop() -> None:
    source = SlowSource()
    sampler = Sampler(source, Thresholds(), interval=0.001)
    async with LoopTicks(0.001) as ticks:
        sampler.start()
        await until(lambda: source.reads >= 4, what="four readings")
        await sampler.stop()
    assert source.max_active == 1
    # While each reading slept 50 ms in its thread the loop kept ticking.
    assert ticks.count > source.reads


async def test_the_real_machine() -> None:
    sampler = Sampler(SystemSource(["/"], [], top=3), Thresholds())
    sample = await sampler.sample_once()
    assert set(sample) >= CONTRACT
    assert sample["mem_total"] > 0 and sample["cores"] >= 1 and len(sample["top"]) == 3
    assert sample["disk_free"]["/"] > 0
