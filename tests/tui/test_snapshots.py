"""Snapshots at a fixed size on a fixed session and clock (fake ids, times and samples).

Each snapshot first waits until the screen shows everything the fake session serves:
the log tail arrives on a refresh tick, so a snapshot taken before that tick would
depend on how fast the machine is.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from console.tui.widgets.running import RunningPane
from tests.tui.fakes import KNEE_STEPS, SMOOTH_STEPS, fake_app, ladder_job, write_ladder_run


async def shown(pilot: Pilot, condition: Callable[[], bool], what: str) -> None:
    """Wait (in app time, at most 500 pauses) until ``condition`` holds, then one more
    pause so the frame that shows it is drawn."""
    for _ in range(500):
        if condition():
            break
        await pilot.pause(0.01)
    else:
        raise AssertionError(f"{what} never showed")
    await pilot.pause()


async def settled(pilot: Pilot) -> None:
    """Wait for the running job's log tail to be on screen."""

    def tail() -> bool:
        panes = pilot.app.screen.query(RunningPane)
        return bool(panes) and panes.first().tail_offset > 0

    await shown(pilot, tail, "the running pane's fake log tail")


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


# Ladder runs live at a fixed path: the view shows each run's folder.
LADDER_RUNS = Path("/tmp/twolane-snapshots/ladder")


async def ladder_settled(pilot: Pilot) -> None:
    """Open the ladder view and wait until the selected run's table and chart are drawn
    at their final size."""
    from textual.widgets import DataTable

    from console.tui.ladder_runs import chart_height
    from console.tui.screens.ladder import LadderScreen

    await settled(pilot)
    await pilot.press("L")

    def run_shown() -> bool:
        screen = pilot.app.screen
        if not isinstance(screen, LadderScreen) or screen.query_one("#ladder-steps", DataTable).row_count != 3:
            return False
        chart = screen.query_one("#ladder-chart")
        want = chart_height(chart.content_size.height, knee=True)
        return bool(chart.content_size.height and screen._chart_key and screen._chart_key[2] == want)

    await shown(pilot, run_shown, "the ladder view's run")


def test_ladder_view(snap_compare, home: Path) -> None:
    knee = write_ladder_run(LADDER_RUNS / "20231114-220820-llama3.2-1b", "llama3.2:1b", KNEE_STEPS,
                            planned=[1, 2, 4, 8], knee=4)  # fmt: skip
    smooth = write_ladder_run(LADDER_RUNS / "20231114-190000-qwen2.5-0.5b", "qwen2.5:0.5b", SMOOTH_STEPS,
                              planned=[1, 2, 4, 8], started=-11600)  # fmt: skip
    jobs = [ladder_job("lad001", "succeeded", knee, "llama3.2:1b", seq=8, created=-300, started=-300,
                       finished=-200, exit_code=0),
            ladder_job("lad000", "succeeded", smooth, "qwen2.5:0.5b", seq=0, created=-11600, started=-11600,
                       finished=-11500, exit_code=0)]  # fmt: skip
    app = fake_app(home, jobs=jobs)
    assert snap_compare(app, run_before=ladder_settled, terminal_size=(100, 30))
