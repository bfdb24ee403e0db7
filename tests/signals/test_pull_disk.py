"""A pull is checked against the model disk as soon as Ollama names its size: a layer that
does not fit ends the pull before it fills the disk, and the size is kept so a retry is
held by the free-disk gate before it starts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from console.core import config, jobs
from console.core.models import JobState
from console.core.signals.extension import SignalsExtension
from console.core.signals.gates import GB
from console.core.signals.sources import FakeSource
from tests.fakes.upstream import FakeUpstream
from tests.helpers import until


@pytest.fixture
async def rig(home: Path, tmp_path: Path) -> AsyncIterator[tuple[Any, FakeSource, FakeUpstream]]:
    from console.api.gateway import Gateway
    from console.owner import Owner

    fake = await FakeUpstream(kind="ollama").start()
    models = tmp_path / "models"
    models.mkdir()
    cfg = config.load()
    cfg.set("gateway.port", 0)
    cfg.set("upstreams", [{"name": "ollama", "kind": "ollama", "base_url": fake.url,
                           "lane": "local", "models": ["*"]}])  # fmt: skip
    cfg.set("signals.interval", 0.05)
    cfg.set("signals.model_dirs", [str(models)])
    cfg.set("gates.min_free_disk_gb", 10.0)
    source = FakeSource(disk_free={str(home): 500 * GB, str(models): 30 * GB})
    own = Owner(home, cfg, extensions=[Gateway(cfg), SignalsExtension(cfg, source=source)])
    await own.start()
    own.models_dir = str(models)  # type: ignore[attr-defined]
    try:
        yield own, source, fake
    finally:
        await own.stop()
        await fake.stop()


def pull_job(model: str) -> Any:
    return jobs.new_job([], lane="local", kind="pull", name=f"pull {model}", extra={"model": model})


async def test_a_layer_that_does_not_fit_stops_the_pull_and_a_retry_is_held(rig) -> None:  # type: ignore[no-untyped-def]
    owner, source, fake = rig
    # The fake's first progress line has a quarter done: 26.25 GB left + 10 GB > 30 GB free.
    fake.pull_total = int(35 * GB)
    job = await owner.scheduler.submit(pull_job("huge:70b"))
    done = await asyncio.wait_for(owner.scheduler.wait_done(job.id), 30)
    assert done.state is JobState.FAILED
    assert done.error.startswith("not enough disk for huge:70b: 26.2 GB to download, 30.0 GB free")
    assert done.meta["size_bytes"] == int(35 * GB)
    stored = await owner.store.get_job(job.id)
    assert stored.meta["size_bytes"] == int(35 * GB)  # kept for the retry's gate
    # A retry now knows the size before it starts: the disk gate holds the lane.
    await owner.scheduler.retry(job.id)
    await until(lambda: owner.scheduler.status()["local"]["held"] is not None, what="held")
    assert "disk" in owner.scheduler.status()["local"]["held"]
    assert (await owner.scheduler.get(job.id)).state is JobState.QUEUED
    # Room is made: the held retry starts and downloads.
    source.set(disk_free={str(owner.home): 500 * GB, owner.models_dir: 100 * GB})
    done = await asyncio.wait_for(owner.scheduler.wait_done(job.id), 30)
    assert done.state is JobState.SUCCEEDED and done.meta["progress"] == 1.0


async def test_a_pull_that_fits_records_its_size(rig) -> None:  # type: ignore[no-untyped-def]
    owner, _, fake = rig
    fake.pull_total = int(4 * GB)
    job = await owner.scheduler.submit(pull_job("small:1b"))
    done = await asyncio.wait_for(owner.scheduler.wait_done(job.id), 30)
    assert done.state is JobState.SUCCEEDED, done.error
    assert done.meta["size_bytes"] == int(4 * GB) and done.meta["progress"] == 1.0
