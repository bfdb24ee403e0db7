"""An idle console repaints nothing that did not change: ticks and samples that leave a
pane's picture as it was do not redraw it (idle CPU), and ones that change it do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from console.tui.screens.main import MainScreen
from console.tui.widgets.graphs import GraphsPane
from console.tui.widgets.lanebar import LaneBar
from console.tui.widgets.running import RunningPane
from tests.helpers import until
from tests.tui.fakes import STATUS, fake_app, samples


@pytest.fixture
def updates(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many times each pane's content was replaced."""
    from textual.widgets import Static

    counts = {"graphs": 0, "lanebar": 0, "running-jobs": 0}
    real = Static.update

    def counting(self: Static, *args: Any, **kwargs: Any) -> None:
        if self.id in counts:
            counts[self.id] += 1
        real(self, *args, **kwargs)

    monkeypatch.setattr(Static, "update", counting)
    return counts


async def test_ticks_and_unchanged_samples_repaint_nothing(
    home: Path, updates: dict[str, int]
) -> None:
    app = fake_app(home)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(lambda: isinstance(app.screen, MainScreen) and app.main.table.row_count == 7)
        await pilot.pause()
        screen = app.main
        before = dict(updates)
        for _ in range(5):  # the clock stands still: every time cell and elapsed time too
            screen.tick()
        last = samples()[-1]
        app.fake.queue.put_nowait(("sample", dict(last)))  # type: ignore[attr-defined]
        app.fake.queue.put_nowait(("lanes", dict(STATUS)))  # type: ignore[attr-defined]
        await until(lambda: len(app.model.samples) == 121, what="the sample applied")
        await pilot.pause()
        assert updates == before

        app.clock.advance(1)  # type: ignore[attr-defined]
        screen.tick()  # the running job's elapsed time moves on
        assert updates["running-jobs"] == before["running-jobs"] + 1
        app.fake.queue.put_nowait(("sample", {**last, "at": last["at"] + 30, "load1": 7.5}))  # type: ignore[attr-defined]
        app.fake.queue.put_nowait(("lanes", {**STATUS, "turn": "remote"}))  # type: ignore[attr-defined]
        await until(lambda: "7.50" in str(screen.query_one(GraphsPane).render()), what="new load")
        await until(lambda: "turn remote" in str(screen.query_one(LaneBar).render()), what="turn")
        assert screen.query_one(RunningPane).tail_id == "aaa111"
