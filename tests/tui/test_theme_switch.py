"""Switching the theme while the console runs recolours what is already drawn."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import until
from tests.tui.fakes import fake_app


async def test_queue_state_colours_follow_a_theme_switch(home: Path) -> None:
    app = fake_app(home)
    async with app.run_test(size=(100, 30)):
        await until(lambda: "fff666" in app.main.table.ids, what="rows")

        def failed_colour() -> str:
            return str(app.main.table.row_cells("fff666")[1].style.color)

        before = failed_colour()
        app.theme = "twolane-light"
        # Styles made while the switch is under way must carry the new theme's colours.
        await until(lambda: failed_colour() != before, what="failed row recoloured")
        app.theme = "twolane-dark"
        await until(lambda: failed_colour() == before, what="back to the dark colours")
