"""The gateway's feed of the latency_p95 rule: requests that shared their upstream against
the same model's single-stream baseline; pure bookkeeping, then through a real gateway."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from console.core import config
from console.core.signals.latency import MIN_BASELINE, MIN_SHARED, LatencyWatch
from tests.fakes.upstream import FakeUpstream
from tests.helpers import until

KEY = ("cloud", "gpt-fake", "chat")


def alone(watch: LatencyWatch, job_id: str, ms: float, upstream: str = "cloud") -> Any:
    watch.started(job_id, upstream)
    return watch.ended(job_id, (upstream, "gpt-fake", "chat"), ms)


def together(watch: LatencyWatch, prefix: str, latencies: list[float]) -> list[Any]:
    """Requests that all run at once (each one overlaps the others)."""
    ids = [f"{prefix}{i}" for i in range(len(latencies))]
    for job_id in ids:
        watch.started(job_id, "cloud")
    return [watch.ended(job_id, KEY, ms) for job_id, ms in zip(ids, latencies, strict=True)]


def test_shared_requests_slower_than_three_times_the_baseline_breach_once() -> None:
    watch = LatencyWatch(factor=3.0)
    for i in range(MIN_BASELINE):
        assert alone(watch, f"a{i}", 100.0 + i) is None
    # Shared but within 3x: nothing.
    assert together(watch, "ok", [250.0] * MIN_SHARED) == [None] * MIN_SHARED
    found = [b for b in together(watch, "slow", [900.0] * MIN_SHARED) if b is not None]
    [breach] = found  # once per episode, not once per slow request
    assert breach.baseline_ms == pytest.approx(103.8)  # p95 of 100..104
    # The first slow one already lifts the p95 of 11 (ten at 250, one at 900) past 3 x 103.8.
    assert breach.p95_ms == pytest.approx(575.0) and breach.job_ids == ["slow0"]
    assert breach.source == "gateway chat gpt-fake on cloud: last 11 requests sharing the upstream vs 5 alone"
    # Back under the factor, then over again: a new episode.
    together(watch, "calm", [120.0] * 20)
    assert [b for b in together(watch, "again", [900.0] * 20) if b is not None]


def test_nothing_without_enough_of_both() -> None:
    watch = LatencyWatch(factor=3.0)
    assert together(watch, "s", [900.0] * 30) == [None] * 30  # no baseline yet
    for i in range(MIN_BASELINE - 1):
        alone(watch, f"a{i}", 10.0)
    assert together(watch, "t", [900.0] * 30) == [None] * 30  # one baseline short


def test_overlap_is_per_upstream_and_failures_do_not_count() -> None:
    watch = LatencyWatch(factor=3.0)
    watch.started("x", "cloud")
    watch.started("y", "other")  # another upstream: x and y are both alone
    watch.started("y", "other")  # a progress event repeats the start
    watch.ended("y", ("other", "gpt-fake", "chat"), 5.0)
    watch.ended("x", KEY, 5.0)
    for i in range(MIN_BASELINE - 1):
        alone(watch, f"a{i}", 10.0)
    # A failed request (no latency) and one never seen starting add nothing.
    watch.started("f", "cloud")
    assert watch.ended("f", KEY, None) is None
    assert watch.ended("ghost", KEY, 10.0) is None
    for i in range(MIN_SHARED // 2 - 1):
        assert together(watch, f"s{i}-", [900.0, 900.0]) == [None, None]
    # The tenth shared request breaches: the baseline has its five (x alone, y's upstream
    # apart; f and ghost not counted).
    assert together(watch, "last", [900.0, 900.0])[1] is not None


def test_a_request_that_outlives_another_is_shared_too() -> None:
    watch = LatencyWatch(factor=3.0)
    for i in range(MIN_BASELINE):
        alone(watch, f"a{i}", 10.0)
    watch.started("long", "cloud")
    watch.started("short", "cloud")
    watch.ended("short", KEY, 10.0)
    watch.ended("long", KEY, 10.0)  # it shared the upstream while "short" ran
    watch.forget_running()
    for i in range(MIN_SHARED - 2):
        together(watch, f"s{i}-", [900.0])  # one at a time: alone, baseline
    assert len(watch._series[KEY].shared) == 2
    assert len(watch._series[KEY].baseline) == MIN_BASELINE + MIN_SHARED - 2


# ---- through a real gateway: a fake remote upstream that slows down when shared -------


@pytest.fixture
async def remote(home: Path) -> AsyncIterator[tuple[Any, FakeUpstream]]:
    from console.api.gateway import Gateway
    from console.core.signals.extension import SignalsExtension
    from console.core.signals.sources import FakeSource
    from console.owner import Owner

    fake = await FakeUpstream(kind="openai", models=["gpt-fake"]).start()
    cfg = config.load()
    cfg.set("gateway.port", 0)
    cfg.set("upstreams", [{"name": "cloud", "kind": "openai", "base_url": fake.url,
                           "lane": "remote", "models": ["*"]}])  # fmt: skip
    own = Owner(home, cfg, extensions=[Gateway(cfg), SignalsExtension(cfg, source=FakeSource())])
    await own.start()
    try:
        yield own, fake
    finally:
        await own.stop()
        await fake.stop()


async def test_shared_requests_far_slower_than_alone_record_latency_p95(remote: Any) -> None:
    owner, fake = remote
    fake.token_delay = 0.002
    fake.capacity, fake.slowdown = 1, 150.0  # shared: every chunk waits 150x longer

    async with httpx.AsyncClient(base_url=owner.gateway_url, timeout=60) as http:

        async def ask() -> None:
            r = await http.post("/v1/chat/completions", json={
                "model": "gpt-fake", "stream": True, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
            assert r.status_code == 200

        for _ in range(MIN_BASELINE):
            await ask()  # one at a time: the single-stream baseline
        await asyncio.gather(*(ask() for _ in range(MIN_SHARED)))  # five at once (the lane's cap)

    async def latency_violations() -> list[Any]:
        return [v for v in await owner.store.list_violations() if v.rule == "latency_p95"]

    await until(lambda: _nonempty(latency_violations()), what="a latency_p95 violation")
    [v] = await latency_violations()
    assert v.threshold == 3.0 and v.reading > 3.0 and v.job_ids
    assert "gateway chat gpt-fake on cloud" in v.message
    assert fake.max_active > 1


async def _nonempty(coro: Any) -> bool:
    return bool(await coro)
