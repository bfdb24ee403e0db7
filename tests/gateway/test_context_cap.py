"""A local model's context is capped by what its predicted footprint fits in available
memory (minus the gates' headroom), when its GGUF is known, and never shrinks below what
already runs. A fake Ollama names a synthetic GGUF as the model's blob; the machine's
memory reading comes from a FakeSource."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from console.core import config
from console.core.signals import gguf
from console.core.signals.extension import SignalsExtension
from console.core.signals.predict import GB, MB, largest_fitting_ctx, predict, shape_from_gguf
from console.core.signals.sources import FakeSource
from tests.fakes.upstream import FakeUpstream
from tests.gateway.conftest import local
from tests.helpers import until
from tests.signals.conftest import llama_like

HEADROOM_GB = 1.0
OVERHEAD_MB = 16.0


@pytest.fixture
async def rig(home: Path, tmp_path: Path, fake: FakeUpstream) -> AsyncIterator[Any]:
    from console.api.gateway import Gateway
    from console.owner import Owner

    model = llama_like(tmp_path / "m.gguf", n_layer=8)
    fake.models.append("m")
    fake.modelfiles = {"m": str(model)}
    shape = shape_from_gguf(gguf.read(model))
    cfg = config.load()
    for key, value in {"gateway.port": 0, "upstreams": [local(fake)], "gateway.max_ctx": 0,
                       "signals.interval": 0.05, "signals.ollama_url": fake.url,
                       "gates.memory_headroom_gb": HEADROOM_GB,
                       "signals.runtime_overhead_mb": OVERHEAD_MB}.items():  # fmt: skip
        cfg.set(key, value)
    # Memory for the model at 20k tokens of context, not at 64k.
    source = FakeSource(disk_free={str(home): 100 * GB},
                        mem_available=footprint(shape, 20_000) + int(HEADROOM_GB * GB))  # fmt: skip
    own = Owner(home, cfg, extensions=[Gateway(cfg), SignalsExtension(cfg, source=source)])
    await own.start()
    own.shape, own.source = shape, source  # type: ignore[attr-defined]
    try:
        yield own
    finally:
        await own.stop()


def footprint(shape: Any, ctx: int) -> int:
    return predict(shape, model="m", source="t", ctx=ctx, overhead_bytes=int(OVERHEAD_MB * MB)).total_bytes


async def ask(own: Any, num_ctx: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=own.gateway_url, timeout=20) as http:
        reply = await http.post("/api/chat", json={"model": "m", "stream": False, "options": {"num_ctx": num_ctx},
                                                   "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    assert reply.status_code == 200, reply.text
    return (await own.scheduler.get(reply.headers["X-Twolane-Job"])).meta


async def test_the_context_is_capped_by_what_fits_and_never_shrinks(rig: Any, fake: FakeUpstream) -> None:
    budget = rig.source.reading["mem_available"] - int(HEADROOM_GB * GB)
    fits = largest_fitting_ctx(rig.shape, budget, upper=65_536, overhead_bytes=int(OVERHEAD_MB * MB))
    assert fits is not None and 20_000 <= fits < 65_536

    meta = await ask(rig, 65_536)
    assert fake.calls[-1][1]["options"]["num_ctx"] == fits == meta["num_ctx"]
    assert meta["ctx_fit_cap"] == fits
    assert footprint(rig.shape, fits) <= budget < footprint(rig.shape, fits + 1)

    # Less memory now (the model holds its share): a bigger ask gets no more, and what
    # runs is not shrunk, which would reload it.
    fake.loaded = ["m"]
    rig.source.set(mem_available=footprint(rig.shape, 4096) + int(HEADROOM_GB * GB))
    await until(lambda: rig.sampler.latest()["mem_available"] == rig.source.reading["mem_available"],
                what="a sample with less memory")  # fmt: skip
    meta = await ask(rig, 100_000)
    assert fake.calls[-1][1]["options"]["num_ctx"] == fits == meta["num_ctx"]
    meta = await ask(rig, 2048)
    assert fake.calls[-1][1]["options"]["num_ctx"] == fits


async def test_an_ask_that_fits_is_not_capped(rig: Any, fake: FakeUpstream) -> None:
    meta = await ask(rig, 8192)
    assert fake.calls[-1][1]["options"]["num_ctx"] == 8192
    assert "ctx_fit_cap" not in meta


async def test_without_a_known_gguf_only_max_ctx_caps(rig: Any, fake: FakeUpstream) -> None:
    fake.modelfiles = {}  # Ollama names no blob and lists no metadata: shape unknown
    rig.gw = next(e for e in rig.extensions if hasattr(e, "context"))
    rig.gw.context.max_ctx = 50_000
    meta = await ask(rig, 65_536)
    assert fake.calls[-1][1]["options"]["num_ctx"] == 50_000
    assert "ctx_fit_cap" not in meta
