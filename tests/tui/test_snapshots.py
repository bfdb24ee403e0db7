"""Snapshots at a fixed size on a fixed session and clock (fake ids, times and samples).

Each snapshot first waits until the screen shows everything the fake session serves:
the log tail arrives on a refresh tick, so a snapshot taken before that tick would
depend on how fast the machine is.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot

from console.tui.widgets.running import RunningPane
from tests.tui.fakes import fake_app


async def settled(pilot: Pilot) -> None:
    """Wait (in app time, bounded) for the running job's log tail to be on screen."""
    for _ in range(500):
        panes = pilot.app.screen.query(RunningPane)
        if panes and panes.first().tail_offset > 0:
            break
        await pilot.pause(0.01)
    else:
        raise AssertionError("the running pane never showed the fake log tail")
    await pilot.pause()


def test_main_screen_80x24(snap_compare, home: Path) -> None:
    assert snap_compare(fake_app(home), run_before=settled, terminal_size=(80, 24))


def test_main_screen_wide(snap_compare, home: Path) -> None:
    assert snap_compare(fake_app(home), run_before=settled, terminal_size=(160, 40))


def test_enqueue_modal(snap_compare, home: Path) -> None:
    assert snap_compare(fake_app(home), run_before=settled, press=["a", "_"], terminal_size=(80, 24))


def test_help_screen(snap_compare, home: Path) -> None:
    assert snap_compare(
        fake_app(home), run_before=settled, press=["question_mark", "_"], terminal_size=(100, 30)
    )


@pytest.mark.parametrize("theme", ["twolane-dark", "twolane-light", "twolane-contrast"])
def test_each_theme(snap_compare, home: Path, theme: str) -> None:
    assert snap_compare(fake_app(home, theme=theme), run_before=settled, terminal_size=(100, 30))
