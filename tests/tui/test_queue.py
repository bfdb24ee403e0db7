"""The queue table with many jobs: rows change in place, the cursor stays on its job and
the scroll offset stays put, only rows on screen are drawn, time cells tick."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from console.tui.app import TwolaneApp
from console.tui.screens.details import DetailsScreen
from console.tui.screens.main import MainScreen
from tests.helpers import until
from tests.tui.fakes import STATUS, fake_app, job

SIZE = (100, 30)
N = 1_200


def many() -> list[dict[str, Any]]:
    """1,000 queued jobs (alternating lanes) and 200 finished ones."""
    jobs = [job(f"q{i:04d}", "queued", "local" if i % 2 else "remote", name=f"queued {i}", seq=i)
            for i in range(1_000)]  # fmt: skip
    jobs += [job(f"f{i:04d}", "succeeded", "remote", name=f"done {i}", seq=2_000 + i,
                 started=-500 + i, finished=-400 + i, exit_code=0) for i in range(200)]  # fmt: skip
    return jobs


async def loaded(app: TwolaneApp, pilot: Any) -> None:
    await until(lambda: isinstance(app.screen, MainScreen) and app.main.table.row_count > 0)
    app.fake.queue.put_nowait(("snapshot", {"jobs": many(), "status": STATUS, "violations": []}))  # type: ignore[attr-defined]
    await until(lambda: app.main.table.row_count == N, what="1,200 rows")
    await pilot.pause()


def line_of(app: TwolaneApp, job_id: str) -> str:
    """The text the table draws for ``job_id`` (it must be on screen)."""
    table = app.main.table
    y = table.get_row_index(job_id) - int(table.scroll_y) + 1
    assert 1 <= y < table.size.height, f"{job_id} is not on screen"
    return table.render_line(y).text


async def test_events_change_rows_in_place_and_cursor_and_scroll_survive(home: Path) -> None:
    app = fake_app(home)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        table = app.main.table
        table.scroll_to(y=400, animate=False)
        await until(lambda: table.scroll_y == 400)
        table.select("q0405")
        await pilot.pause()
        assert table.selected_id == "q0405" and table.scroll_y == 400

        def push(changed: dict[str, Any]) -> None:
            app.fake.queue.put_nowait(("job", changed))  # type: ignore[attr-defined]

        # A job above the cursor jumps to the top, a new running job appears above it
        # too, and a row on screen is renamed: the cursor keeps its job, the view stays.
        push(job("q0300", "queued", "remote", name="queued 300", seq=300, priority=9))
        push(job("new01", "running", "local", name="just started", seq=5_000, started=-1))
        push(job("q0410", "queued", "remote", name="renamed in place", seq=410))
        await until(lambda: "renamed in place" in line_of(app, "q0410"), what="rename drawn")
        assert table.get_row_index("q0300") == 1 and table.get_row_index("new01") == 0
        assert table.selected_id == "q0405" and table.scroll_y == 400
        assert table.row_count == N + 1

        # The cursor's own job moves far down: the cursor goes with it.
        push(job("q0405", "queued", "local", name="queued 405", seq=405, priority=-1))
        await until(lambda: table.get_row_index("q0405") > 990, what="re-sorted")
        assert table.selected_id == "q0405"


async def test_filters_keep_the_cursor_on_its_job(home: Path) -> None:
    app = fake_app(home)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        table = app.main.table
        table.select("q0501")  # a local job
        await pilot.press("l")
        await until(lambda: table.lane_filter == "local")
        assert table.row_count == 500 and table.selected_id == "q0501"
        top = int(table.scroll_y)
        assert top <= table.get_row_index("q0501") < top + table.size.height - 1  # in view
        await pilot.press("l")  # remote only: the job is gone, the cursor stays in range
        await until(lambda: table.lane_filter == "remote")
        assert table.row_count == 700 and table.selected_id is not None
        await pilot.press("l", "slash", *"q050")
        await until(lambda: table.text_filter == "q050")
        assert set(table.ids) == {f"q050{i}" for i in range(10)}


async def test_only_rows_on_screen_are_drawn(home: Path) -> None:
    app = fake_app(home)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        table = app.main.table
        assert len(table._cells) <= table.size.height
        await pilot.press("pagedown")
        await pilot.pause()
        assert table.scroll_y > 0 and len(table._cells) <= 2 * table.size.height


async def test_time_cells_tick_and_keys_move_the_cursor(home: Path) -> None:
    app = fake_app(home)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        table = app.main.table
        first = table.ids[0]
        assert "waited 1m00s" in line_of(app, first)
        app.clock.advance(60)  # type: ignore[attr-defined]
        await until(lambda: "waited 2m00s" in line_of(app, first), what="time cell ticked")
        await pilot.press("down", "down", "up")
        assert table.selected_id == table.ids[1]
        await pilot.press("end")
        assert table.selected_id == table.ids[-1] and table.scroll_y == table.max_scroll_y
        await pilot.press("home")
        assert table.selected_id == first and table.scroll_y == 0


async def test_click_moves_the_cursor_and_a_second_click_opens_details(home: Path) -> None:
    app = fake_app(home)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(lambda: isinstance(app.screen, MainScreen) and app.main.table.row_count == 7)
        table = app.main.table
        second = table.ids[1]
        await pilot.click("#queue", offset=(4, 3))  # border, header, first row, second row
        assert table.selected_id == second
        await pilot.click("#queue", offset=(4, 3))
        await until(lambda: isinstance(app.screen, DetailsScreen), what="details")
        assert app.screen.job_id == second  # type: ignore[attr-defined]
