"""The ladder view (``L``): runs from their jobs and the data dir, the per-concurrency table
with each step's gate, the core's chart, live progress; on the fake session."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, ProgressBar, Static

from console.core.ladder.report import load_run, terminal_chart
from console.tui import ladder_runs as lr
from console.tui.app import TwolaneApp, build_app
from console.tui.screens.details import DetailsScreen
from console.tui.screens.ladder import LadderScreen
from console.tui.screens.main import MainScreen
from tests.fakes.upstream import FakeUpstream
from tests.helpers import until
from tests.tui.fakes import (
    KNEE_STEPS,
    SMOOTH_STEPS,
    fake_app,
    ladder_job,
    ladder_step,
    write_ladder_run,
)  # fmt: skip

SIZE = (100, 30)


def runs_table(app: TwolaneApp) -> DataTable:
    return app.screen.query_one("#ladder-runs", DataTable)


def table_rows(table: DataTable) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def text_of(app: TwolaneApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def open_ladder(app: TwolaneApp, pilot, rows: int) -> LadderScreen:  # type: ignore[no-untyped-def]
    await until(lambda: app.session is not None and isinstance(app.screen, MainScreen))
    await pilot.press("L")
    await until(lambda: isinstance(app.screen, LadderScreen), what="ladder screen")
    await until(lambda: runs_table(app).row_count == rows, what=f"{rows} ladder runs")
    return app.screen  # type: ignore[return-value]


# ---- pilot ------------------------------------------------------------------------------


async def test_finished_run_shows_its_table_gates_and_the_core_chart(home: Path) -> None:
    folder = write_ladder_run(home / "ladder" / "run-a", "llama3.2:1b", KNEE_STEPS, planned=[1, 2, 4, 8], knee=4)
    app = fake_app(home, jobs=[ladder_job("lad001", "succeeded", folder, "llama3.2:1b", seq=8, created=-200,
                                          started=-200, finished=-100, exit_code=0)])  # fmt: skip
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_ladder(app, pilot, rows=1)
        assert table_rows(runs_table(app)) == [["lad001", "succeeded", "llama3.2:1b", "3/4", "c=4", "11-14 22:10"]]
        steps = screen.query_one("#ladder-steps", DataTable)
        await until(lambda: steps.row_count == 3, what="step rows")
        assert table_rows(steps) == [
            ["1", "8", "0.0%", "2.00", "128.0", "0.800", "0.900", "0.945", "pass"],
            ["2", "8", "0.0%", "4.00", "256.0", "0.850", "1.000", "1.050", "pass"],
            ["4", "8", "0.0%", "4.00", "256.0", "3.600", "3.960", "4.158", "FAIL p95 4.4x"],
        ]
        status = text_of(app, "#ladder-status")
        assert status.startswith("knee at concurrency 4: p95 end-to-end 3.960s")
        assert status.splitlines()[1] == "SLO p95_ratio fail · error_rate pass · swap_gb pass"
        assert not screen.query_one("#ladder-progress-row").has_class("shown")  # not running
        # The chart is the core's text chart, drawn to fit the pane.
        chart = text_of(app, "#ladder-chart")
        height = screen.query_one("#ladder-chart").content_size.height
        assert chart == terminal_chart(load_run(folder), lr.chart_height(height, knee=True))
        assert "▲ knee" in chart and "● e2e p95" in chart and "┄ SLO 3x baseline p95" in chart
        assert len(chart.splitlines()) <= height
        assert screen.query_one("#ladder-run").border_title == "llama3.2:1b at http://127.0.0.1:11434"
        # enter: the run's job in full; esc back, esc again to the main screen.
        await pilot.press("enter")
        await until(lambda: isinstance(app.screen, DetailsScreen), what="job details")
        await pilot.press("escape")
        await until(lambda: isinstance(app.screen, LadderScreen))
        await pilot.press("escape")
        await until(lambda: isinstance(app.screen, MainScreen))


async def test_runs_from_jobs_and_folders_newest_first_and_selectable(home: Path) -> None:
    old = write_ladder_run(home / "ladder" / "old", "qwen2.5:0.5b", SMOOTH_STEPS, planned=[1, 2, 4, 8], started=-9000)
    folder = write_ladder_run(home / "ladder" / "run-a", "llama3.2:1b", KNEE_STEPS, planned=[1, 2, 4, 8], knee=4)
    app = fake_app(home, jobs=[ladder_job("lad001", "succeeded", folder, "llama3.2:1b", seq=8, created=-200)])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_ladder(app, pilot, rows=2)
        rows = table_rows(runs_table(app))
        assert [r[:5] for r in rows] == [["lad001", "succeeded", "llama3.2:1b", "3/4", "c=4"],
                                         ["-", "done", "qwen2.5:0.5b", "4/4", "none"]]  # fmt: skip
        await pilot.press("down")
        await until(lambda: screen.selected is not None and screen.selected.folder == old)
        await until(lambda: text_of(app, "#ladder-status").startswith("no knee: all 4 steps"))
        assert screen.query_one("#ladder-steps", DataTable).row_count == 4
        assert "▲ knee" not in text_of(app, "#ladder-chart")
        await pilot.press("o")  # a folder-only run has no job to open: says where its files are
        await until(lambda: any(str(old) in str(n.message) for n in app._notifications))
        assert isinstance(app.screen, LadderScreen)


async def test_running_ladder_shows_live_progress_and_new_steps(home: Path) -> None:
    folder = home / "ladder" / "live"
    write_ladder_run(folder, "llama3.2:1b", SMOOTH_STEPS[:1], planned=[1, 2, 4, 8], finished=False,
                     current={"step": 2, "concurrency": 2, "done": 3, "total": 8})  # fmt: skip
    job = ladder_job("lad002", "running", folder, "llama3.2:1b", seq=9, created=-30, started=-30)
    app = fake_app(home, jobs=[job])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_ladder(app, pilot, rows=1)
        bar = screen.query_one("#ladder-progress", ProgressBar)
        await until(lambda: screen.query_one("#ladder-progress-row").has_class("shown"), what="progress row")
        assert bar.progress == (1 + 3 / 8) / 4
        assert text_of(app, "#ladder-progress-words") == "step 2 of 4 · concurrency 2 · 3/8 requests"
        assert text_of(app, "#ladder-status") == "climbing; stops when p95 > 3x step 1's, errors > 1% or swap grows > 2 GB"
        steps = screen.query_one("#ladder-steps", DataTable)
        assert table_rows(steps)[-1] == ["2", "3/8", *["…"] * 6, "measuring"]

        # The ladder finishes step 2 and starts step 3: the view follows the file.
        write_ladder_run(folder, "llama3.2:1b", SMOOTH_STEPS[:2], planned=[1, 2, 4, 8], finished=False,
                         current={"step": 3, "concurrency": 4, "done": 0, "total": 8})  # fmt: skip
        await until(lambda: table_rows(steps)[-1][:2] == ["4", "0/8"], what="step 3 measuring")
        assert table_rows(steps)[1][0:2] == ["2", "8"] and bar.progress == 0.5
        assert table_rows(runs_table(app))[0][3] == "2/4"

        # It ends: the job event says succeeded and summary.json holds the run.
        write_ladder_run(folder, "llama3.2:1b", SMOOTH_STEPS, planned=[1, 2, 4, 8])
        app.fake.queue.put_nowait(("job", {**job, "state": "succeeded"}))  # type: ignore[attr-defined]
        await until(lambda: table_rows(runs_table(app))[0][1:5] == ["succeeded", "llama3.2:1b", "4/4", "none"])
        await until(lambda: not screen.query_one("#ladder-progress-row").has_class("shown"))
        assert table_rows(steps)[-1][-1] == "pass" and steps.row_count == 4


async def test_queued_and_unreadable_runs_say_why(home: Path) -> None:
    queued = home / "elsewhere" / "q"
    queued.mkdir(parents=True)
    (queued / "spec.json").write_text(json.dumps({"url": "http://127.0.0.1:8080", "model": "m", "steps": [1, 2]}))
    gone = home / "elsewhere" / "gone"
    app = fake_app(home, jobs=[
        ladder_job("lad003", "queued", queued, "m", seq=10, created=-5, held="load 7.9 > 6.0"),
        ladder_job("lad004", "failed", gone, "m", seq=11, created=-50, error="exit 1"),
    ])  # fmt: skip
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_ladder(app, pilot, rows=2)
        await until(lambda: text_of(app, "#ladder-status") == "queued in the local lane · held: load 7.9 > 6.0")
        assert table_rows(runs_table(app))[0][:4] == ["lad003", "queued", "m", "0/2"]
        assert text_of(app, "#ladder-chart") == "the chart starts once the first step is measured"
        await pilot.press("down")
        await until(lambda: "holds no ladder run" in text_of(app, "#ladder-status"))
        assert screen.query_one("#ladder-steps", DataTable).row_count == 0


async def test_no_runs_says_how_to_start_one(home: Path) -> None:
    app = fake_app(home)
    async with app.run_test(size=SIZE) as pilot:
        await open_ladder(app, pilot, rows=0)
        await until(lambda: "twolane ladder --url URL --model M" in text_of(app, "#ladder-status"))


async def test_ladder_key_is_remappable_and_in_the_palette(home: Path) -> None:
    app = fake_app(home, keymap={"ladder": "g"})
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: app.session is not None and isinstance(app.screen, MainScreen))
        await pilot.press("g")
        await until(lambda: isinstance(app.screen, LadderScreen))
        await pilot.press("escape")
        await until(lambda: isinstance(app.screen, MainScreen))
        await pilot.press("ctrl+p")
        await pilot.press(*"Ladder runs")
        await until(lambda: app.screen.query("CommandList") and
                    app.screen.query_one("CommandList").option_count > 0, what="hits")  # fmt: skip
        await pilot.press("enter")
        await until(lambda: isinstance(app.screen, LadderScreen), what="ladder from the palette")


# ---- the view's data, on its own --------------------------------------------------------


def test_step_rows_mark_gates_and_the_step_being_measured() -> None:
    view = {"slo": {"p95_ratio": 3.0, "error_rate": 0.01, "swap_gb": 2.0},
            "steps": [ladder_step(1, 0.5, 0.5), ladder_step(2, 0.5, 0.6, errors=1)],
            "current": {"step": 3, "concurrency": 4, "done": 5, "total": None}, "finished": False}  # fmt: skip
    rows = lr.step_rows(view)
    assert [(cells[0], cells[-1], cls) for cells, cls in rows] == [
        ("1", "pass", "success"), ("2", "FAIL errors", "error"), ("4", "measuring", "accent")]
    assert rows[2][0][1] == "5"  # a --duration step counts requests without a total
    assert lr.progress(view) is None  # no plan known: no bar
    assert lr.progress({**view, "planned": [1, 2, 4, 8]}) == (0.5, "step 3 of 4 · concurrency 4 · 5 requests")
    assert lr.progress({**view, "planned": [1, 2, 4, 8], "finished": True}) is None


def test_merge_runs_keeps_known_runs_and_prefers_jobs(tmp_path: Path) -> None:
    known: dict[str, lr.LadderRun] = {}
    a = tmp_path / "a"
    job = {"id": "j1", "state": "running", "created_at": 10.0, "spec": {"extra": {"ladder_out": str(a)}}}
    runs = lr.newest_first(lr.merge_runs(known, [job, {"id": "x", "state": "queued", "spec": {"extra": {}}}],
                                         [a, tmp_path / "b"]))  # fmt: skip
    assert [r.key for r in runs] == [str(a), str(tmp_path / "b")] and runs[0].job is job
    assert runs[0].stale()  # live: read again every time
    lr.merge_runs(known, [{**job, "state": "succeeded"}])
    assert known[str(a)].state == "succeeded" and len(known) == 2


def test_chart_height_fits_the_pane() -> None:
    assert lr.chart_height(20, knee=True) == 16 and lr.chart_height(11, knee=False) == 8
    assert lr.chart_height(2, knee=True) == 3


async def test_a_theme_change_recolours_the_view(home: Path) -> None:
    folder = write_ladder_run(home / "ladder" / "run-a", "llama3.2:1b", KNEE_STEPS, planned=[1, 2, 4, 8], knee=4)
    app = fake_app(home, jobs=[ladder_job("lad001", "succeeded", folder, "llama3.2:1b", seq=8, created=-200)])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_ladder(app, pilot, rows=1)
        steps = screen.query_one("#ladder-steps", DataTable)
        await until(lambda: steps.row_count == 3)

        def gate_colour() -> str:
            return str(steps.get_row_at(2)[-1].style.color)

        before = gate_colour()
        app.theme = "twolane-light"
        await until(lambda: gate_colour() != before, what="gate cell recoloured")
        assert runs_table(app).row_count == 1 and steps.row_count == 3


# ---- end to end: a real `twolane ladder` job, watched from an attached console -----------


@pytest.mark.e2e
async def test_attached_console_follows_a_real_ladder_to_its_knee(home: Path, owner: Any) -> None:
    fake = FakeUpstream(kind="openai")
    fake.tokens = ["tok "] * 8
    fake.token_delay, fake.capacity, fake.slowdown = 0.04, 2, 20.0  # knee at concurrency 4
    await fake.start()
    try:
        app = build_app(home=home)
        async with app.run_test(size=SIZE) as pilot:
            await until(lambda: app.session is not None and isinstance(app.screen, MainScreen))
            assert app.session.mode == "attached"
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "console", "ladder", "--url", fake.url, "--model", "llama3.2:1b",
                "--steps", "1,2,4,8", "--requests", "4", "--max-tokens", "8", "--slo", "p95_ratio=4",
                "--detach", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await proc.communicate()
            assert proc.returncode == 0, err
            job_id = out.decode().split()[0]
            screen = await open_ladder(app, pilot, rows=1)
            # Live: the bar shows while it climbs, with the step being measured.
            await until(lambda: screen.query_one("#ladder-progress-row").has_class("shown")
                        and "step" in text_of(app, "#ladder-progress-words"), what="live progress")  # fmt: skip
            assert table_rows(runs_table(app))[0][:2] == [job_id, "running"]
            await until(lambda: table_rows(runs_table(app))[0][1] == "succeeded", timeout=60, what="ladder done")
            await until(lambda: table_rows(runs_table(app))[0][3:5] == ["3/4", "c=4"], what="knee row")
            steps = screen.query_one("#ladder-steps", DataTable)
            await until(lambda: steps.row_count == 3)
            assert [r[0] for r in table_rows(steps)] == ["1", "2", "4"]
            assert table_rows(steps)[2][-1].startswith("FAIL p95")
            assert "▲ knee" in text_of(app, "#ladder-chart")
            assert not screen.query_one("#ladder-progress-row").has_class("shown")
    finally:
        await fake.stop()
