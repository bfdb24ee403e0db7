"""The graphs pane draws in every session: owner with or without the signals extension,
attached to an owner with or without it. Without one, the core sampler reads this
machine and no gate lines are drawn (nothing enforces them)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from console.core import config
from console.core.signals.extension import SignalsExtension
from console.core.signals.sampler import Sampler
from console.core.signals.sources import FakeSource
from console.owner import Owner
from console.tui.app import TwolaneApp, build_app
from console.tui.session import OwnerSession
from console.tui.widgets.graphs import GraphsPane
from tests.helpers import until
from tests.tui.test_keys import owner_app, ready

SIZE = (100, 30)


async def graphs(app: TwolaneApp, *needles: str) -> str:
    """The graphs pane's text once it shows a sample and every one of ``needles``."""
    await ready(app)
    pane = app.main.query_one(GraphsPane)

    def drawn() -> bool:
        text = str(pane.render())
        return "load" in text and all(n in text for n in needles)

    await until(drawn, what=f"graphs with {needles}")
    return str(pane.render())


def signals_owner(home: Path, load: float) -> Owner:
    cfg = config.load()
    return Owner(home, cfg, extensions=[SignalsExtension(cfg, source=FakeSource(load1=load))])


@pytest.fixture
async def signals_owner_running(home: Path) -> AsyncIterator[Owner]:
    own = signals_owner(home, 3.25)
    await own.start()
    try:
        yield own
    finally:
        await own.stop()


async def test_owner_without_signals_samples_this_machine(home: Path) -> None:
    app = owner_app(home)
    async with app.run_test(size=SIZE):
        text = await graphs(app)
        assert "gate" not in text
        assert isinstance(app.session.owner.sampler, Sampler)  # type: ignore[union-attr]


async def test_owner_with_signals_draws_its_samples_and_gates(home: Path) -> None:
    cfg = config.load()

    async def factory() -> OwnerSession:
        session = OwnerSession(home, cfg, signals_owner(home, 3.25))
        await session.start()
        return session

    app = build_app(home=home, config=cfg, session_factory=factory)
    async with app.run_test(size=SIZE):
        text = await graphs(app, "3.25 / 8 cores", "gate")
        assert "swap" in text and "memory" in text


async def test_attached_to_an_owner_without_signals_samples_here(home: Path, owner: Any) -> None:
    app = build_app(home=home)
    async with app.run_test(size=SIZE):
        text = await graphs(app)
        assert app.session.mode == "attached" and "gate" not in text  # type: ignore[union-attr]


async def test_attached_draws_the_owners_samples(home: Path, signals_owner_running: Owner) -> None:
    app = build_app(home=home)
    async with app.run_test(size=SIZE):
        text = await graphs(app, "3.25 / 8 cores", "gate")
        assert app.session.mode == "attached" and "swap" in text  # type: ignore[union-attr]
