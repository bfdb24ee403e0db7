"""The lane bar keeps whose turn it is in view at 80 columns by dropping a word."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.tui.model import lane_summary
from console.tui.screens.main import MainScreen
from console.tui.widgets.lanebar import LaneBar
from tests.helpers import until
from tests.tui.fakes import STATUS, fake_app

PAUSED = {**STATUS, "local": {**STATUS["local"], "paused": True, "queued": 500},
          "remote": {**STATUS["remote"], "paused": True, "queued": 500}, "turn": None}  # fmt: skip


def test_compact_summary_drops_only_the_word_running() -> None:
    full = [text for text, _ in lane_summary(PAUSED)]
    compact = [text for text, _ in lane_summary(PAUSED, compact=True)]
    assert full[1] == "remote 0/5 running (paused) · 500 queued"
    assert compact[1] == "remote 0/5 paused · 500 queued"
    assert compact[0] == full[0] and compact[2] == full[2] == "turn -"
    held = {**STATUS, "remote": {**STATUS["remote"], "held": "rate limit"}}
    assert lane_summary(held, compact=True)[1][0] == "remote 0/5 held: rate limit · 1 queued"


@pytest.mark.parametrize("width", [80, 120])
async def test_the_turn_is_in_view(home: Path, width: int) -> None:
    app = fake_app(home)
    async with app.run_test(size=(width, 24)) as pilot:
        await until(lambda: isinstance(app.screen, MainScreen) and app.main.table.row_count == 7)
        app.fake.queue.put_nowait(("lanes", PAUSED))  # type: ignore[attr-defined]
        bar = app.screen.query_one(LaneBar)
        await until(lambda: "500 queued" in str(bar.render()), what="paused lanes")
        await pilot.pause()
        text = str(bar.render())
        assert text.rstrip().endswith("turn -") and "…" not in text
        assert ("running (paused)" in text) == (width >= 120)
