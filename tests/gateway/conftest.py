"""Gateway fixtures: fake upstreams on loopback and an owner running the gateway on an
ephemeral port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from console.core import config
from tests.fakes.upstream import FakeUpstream


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    """An Ollama-native fake (the default upstream kind)."""
    up = await FakeUpstream(kind="ollama").start()
    yield up
    await up.stop()


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeUpstream]:
    up = await FakeUpstream(kind="openai", models=["gpt-fake", "text-embed-fake"]).start()
    yield up
    await up.stop()


GatewayFactory = Callable[..., Awaitable[Any]]


@pytest.fixture
async def make_gateway(home: Path) -> AsyncIterator[GatewayFactory]:
    """``await make_gateway(upstreams=[...], **{"gateway.key": value})`` -> started owner with
    ``owner.gateway_url`` and ``owner.gw`` (the Gateway extension)."""
    from console.api.gateway import Gateway
    from console.owner import Owner

    started: list[Any] = []

    async def make(upstreams: list[dict[str, Any]], **settings: Any) -> Any:
        cfg = config.load()
        cfg.set("gateway.port", 0)
        cfg.set("gateway.retry_backoff", 0.01)
        cfg.set("upstreams", upstreams)
        for key, value in settings.items():
            cfg.set(key, value)
        gw = Gateway(cfg)
        own = Owner(home, cfg, extensions=[gw])
        await own.start()
        own.gw = gw  # type: ignore[attr-defined]
        started.append(own)
        return own

    yield make
    for own in started:
        await own.stop()


def local(fake: FakeUpstream, **extra: Any) -> dict[str, Any]:
    """An [[upstreams]] entry for ``fake`` in the local lane."""
    return {"name": "local", "kind": fake.kind, "base_url": fake.url, "lane": "local",
            "models": ["*"], **extra}  # fmt: skip


@pytest.fixture
async def gateway(make_gateway: GatewayFactory, fake: FakeUpstream) -> Any:
    """The default shape: one Ollama upstream in the local lane."""
    return await make_gateway([local(fake)])


@pytest.fixture
async def http(gateway: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.gateway_url, timeout=20) as client:
        yield client


async def settled(owner: Any) -> list[Any]:
    """All jobs, once none is queued or running (an answer can reach the client a moment
    before its job's final state is written)."""
    from tests.helpers import until

    await until(lambda: not owner.scheduler.running() and not owner.scheduler.queued(),
                what="jobs settled")  # fmt: skip
    return await owner.store.list_jobs()
