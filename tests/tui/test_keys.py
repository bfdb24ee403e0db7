"""Pilot tests for every key flow, on a real in-process owner (the app owns it)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from console.core import config
from console.core.errors import UserError
from console.tui.app import TwolaneApp, build_app
from console.tui.screens.confirm import ConfirmScreen
from console.tui.screens.details import DetailsScreen
from console.tui.screens.enqueue import EnqueueScreen
from console.tui.screens.help import HelpScreen
from console.tui.screens.main import MainScreen
from console.tui.screens.quit import QuitScreen
from console.tui.session import OwnerSession
from tests.helpers import until

SIZE = (100, 30)
PY = sys.executable


def owner_app(home: Path, **settings: Any) -> TwolaneApp:
    """The console owning ``home`` with no extensions (what `twolane` does, minus plugins)."""
    from console.owner import Owner

    cfg = config.load()
    for key, value in settings.items():
        cfg.set(key, value)

    async def factory() -> OwnerSession:
        session = OwnerSession(home, cfg, Owner(home, cfg, extensions=[]))
        await session.start()
        return session

    return build_app(home=home, config=cfg, session_factory=factory)


async def ready(app: TwolaneApp) -> None:
    await until(lambda: app.session is not None and app.model.status, what="session")
    await until(lambda: isinstance(app.screen, MainScreen), what="main screen")


def state(app: TwolaneApp, job_id: str) -> str | None:
    job = app.model.jobs.get(job_id)
    return job["state"] if job else None


async def add(app: TwolaneApp, *argv: str, lane: str = "local", **kw: Any) -> str:
    assert app.session is not None
    job = await app.session.add({"command": list(argv), "lane": lane, "cwd": "/", **kw})
    await until(lambda: job["id"] in app.main.table.ids, what=f"row {job['id']}")
    return job["id"]


async def select(app: TwolaneApp, pilot: Any, job_id: str) -> None:
    app.main.table.select(job_id)
    await pilot.pause()
    assert app.main.table.selected_id == job_id


async def test_enqueue_from_the_keyboard_runs_and_finishes(home: Path) -> None:
    app = owner_app(home)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        await pilot.press("a")
        await until(lambda: isinstance(app.screen, EnqueueScreen))
        await pilot.press(*"echo hi-there")
        await pilot.press("tab", "tab")  # lane select -> priority
        await pilot.press("backspace", "7")
        await pilot.press("enter")
        await until(lambda: isinstance(app.screen, MainScreen), what="modal closed")
        job = next(j for j in app.model.jobs.values() if j["command"] == "echo hi-there")
        assert job["priority"] == 7
        await until(lambda: state(app, job["id"]) == "succeeded", what="job finished")
        await until(lambda: app.main.table.selected_id == job["id"], what="new row selected")
        await pilot.press("q")
    assert not (home / "control.sock").exists()


async def test_enqueue_validates_in_place_and_esc_closes(home: Path) -> None:
    app = owner_app(home)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        await pilot.press("a")
        await until(lambda: isinstance(app.screen, EnqueueScreen))
        await pilot.press("enter")  # empty command
        modal = app.screen
        assert "type a command" in str(modal.query_one("#command-error").render())
        modal.query_one("#command").value = "true"
        modal.query_one("#timeout").value = "-3"
        await pilot.press("enter")
        assert isinstance(app.screen, EnqueueScreen)
        assert "positive" in str(modal.query_one("#timeout-error").render())
        assert not app.model.jobs
        await pilot.press("escape")
        await until(lambda: isinstance(app.screen, MainScreen))
        assert not app.model.jobs


async def test_cancel_asks_then_cancels(home: Path) -> None:
    app = owner_app(home)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        await app.session.pause("local")
        job_id = await add(app, "sleep", "30")
        await select(app, pilot, job_id)
        await pilot.press("c")
        await until(lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await until(lambda: isinstance(app.screen, MainScreen))
        assert state(app, job_id) == "queued"
        await pilot.press("c")
        await until(lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(lambda: state(app, job_id) == "cancelled", what="cancelled")


async def test_cancel_a_running_job(home: Path) -> None:
    app = owner_app(home)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        job_id = await add(app, "sleep", "30")
        await until(lambda: state(app, job_id) == "running")
        await select(app, pilot, job_id)
        await pilot.press("c", "y")
        await until(lambda: state(app, job_id) == "cancelled", what="cancelled")


async def test_plus_minus_reprioritize_and_cursor_follows(home: Path) -> None:
    app = owner_app(home)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        await app.session.pause("all")
        first = await add(app, "true")
        second = await add(app, "true")
        await select(app, pilot, second)
        await pilot.press("plus")
        await until(lambda: app.model.jobs[second]["priority"] == 1)
        table = app.main.table
        await until(lambda: table.get_row_index(second) < table.get_row_index(first),
                    what="row moved up")  # fmt: skip
        assert table.selected_id == second  # the cursor stays on the job, not the index
        await pilot.press("minus", "minus")
        await until(lambda: app.model.jobs[second]["priority"] == -1)
        await until(lambda: table.get_row_index(second) > table.get_row_index(first))
        assert table.selected_id == second


async def test_retry_and_details(home: Path) -> None:
    app = owner_app(home)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        job_id = await add(app, "sh", "-c", "echo out-line; exit 3")
        await until(lambda: state(app, job_id) == "failed")
        await select(app, pilot, job_id)
        await pilot.press("enter")
        await until(lambda: isinstance(app.screen, DetailsScreen))
        screen = app.screen
        await until(lambda: "out-line" in "\n".join(screen.query_one("#full-log").lines),
                    what="log in details")  # fmt: skip
        assert screen.job is not None and screen.job["exit_code"] == 3
        await pilot.press("escape")
        await until(lambda: isinstance(app.screen, MainScreen))
        await pilot.press("r")
        await until(lambda: app.model.jobs[job_id]["attempts"] == 2, what="second attempt")


async def test_pause_lane_and_all(home: Path) -> None:
    app = owner_app(home)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        job_id = await add(app, "true", lane="remote")
        await until(lambda: state(app, job_id) == "succeeded")
        await select(app, pilot, job_id)
        await pilot.press("p")
        await until(lambda: app.model.status["remote"]["paused"])
        assert not app.model.status["local"]["paused"]
        await pilot.press("p")
        await until(lambda: not app.model.status["remote"]["paused"])
        await pilot.press("P")
        await until(lambda: app.model.status["remote"]["paused"] and app.model.status["local"]["paused"])
        await pilot.press("P")
        await until(lambda: not app.model.status["remote"]["paused"]
                    and not app.model.status["local"]["paused"])  # fmt: skip


async def test_filter_and_lane_filter(home: Path) -> None:
    app = owner_app(home)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        await app.session.pause("all")
        a = await add(app, "true", name="alpha", lane="local")
        b = await add(app, "true", name="beta", lane="remote")
        table = app.main.table
        await pilot.press("slash", *"alp")
        await until(lambda: set(table.ids) == {a}, what="text filter")
        await pilot.press("q")  # typing: q goes into the filter, the app stays
        assert app.is_running and table.text_filter == "alpq"
        await pilot.press("escape")
        await until(lambda: set(table.ids) == {a, b}, what="filter cleared")
        await pilot.press("l")
        await until(lambda: set(table.ids) == {a})
        await pilot.press("l")
        await until(lambda: set(table.ids) == {b})
        await pilot.press("l")
        await until(lambda: set(table.ids) == {a, b})


def rich_text(renderable: Any) -> str:
    from rich.console import Console

    console = Console(width=140, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(renderable)
    return console.export_text()


async def test_help_lists_every_binding_with_remapped_keys(home: Path) -> None:
    from console.tui.commands import COMMANDS
    from console.tui.screens.help import help_table

    app = owner_app(home, **{"ui.keymap": {"cancel": "x"}})
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        await pilot.press("question_mark")
        await until(lambda: isinstance(app.screen, HelpScreen))
        out = rich_text(help_table(app.screen.keymap))
        for command in COMMANDS:
            assert command.id in out and command.help in out
        assert any(line.split()[:2] == ["x", "Cancel"] for line in out.splitlines())
        await pilot.press("escape")
        await until(lambda: isinstance(app.screen, MainScreen))


async def test_keymap_remaps_a_binding(home: Path) -> None:
    app = owner_app(home, **{"ui.keymap": {"cancel": "x"}})
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        await app.session.pause("local")
        job_id = await add(app, "true")
        await select(app, pilot, job_id)
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)  # c no longer cancels
        await pilot.press("x")
        await until(lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(lambda: state(app, job_id) == "cancelled")


async def test_bad_keymap_entry_is_reported_not_fatal(home: Path) -> None:
    app = owner_app(home, **{"ui.keymap": {"nonsense": "x"}})
    async with app.run_test(size=SIZE):
        await ready(app)
        assert any("unknown binding 'nonsense'" in p for p in app.problems)


async def test_palette_runs_the_same_actions(home: Path) -> None:
    app = owner_app(home)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        await pilot.press("ctrl+p")
        await pilot.press(*"Pause all")
        await until(lambda: app.screen.query("CommandList") and
                    app.screen.query_one("CommandList").option_count > 0, what="hits")  # fmt: skip
        await pilot.press("enter")
        await until(lambda: app.model.status["local"]["paused"] and app.model.status["remote"]["paused"])


@pytest.mark.parametrize(("key", "ends_as"), [("s", "interrupted"), ("c", "cancelled")])
async def test_quit_with_running_jobs_asks_then_stops_or_cancels_them(
    home: Path, key: str, ends_as: str
) -> None:
    app = owner_app(home)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        job_id = await add(app, "sleep", "30")
        await until(lambda: state(app, job_id) == "running")
        await pilot.press("q")
        await until(lambda: isinstance(app.screen, QuitScreen))
        await pilot.press("escape")  # stay
        await until(lambda: isinstance(app.screen, MainScreen))
        assert app.is_running
        await pilot.press("q")
        await until(lambda: isinstance(app.screen, QuitScreen))
        await pilot.press(key)
        await until(lambda: not app.is_running, what="app exited")
    assert await stored_state(home, job_id) == ends_as


async def test_quit_dialog_recounts_running_jobs_while_it_is_open(home: Path, tmp_path: Path) -> None:
    gates = [tmp_path / "one", tmp_path / "two"]
    app = owner_app(home)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        # Two remote jobs run at once; each ends when its file appears.
        ids = [await add(app, "sh", "-c", f"while [ ! -e {g} ]; do sleep 0.05; done", lane="remote")
               for g in gates]  # fmt: skip
        await until(lambda: all(state(app, j) == "running" for j in ids))
        await pilot.press("q")
        await until(lambda: isinstance(app.screen, QuitScreen))

        def question() -> str:
            return str(app.screen.query_one(".question").render())

        assert question().startswith("2 jobs are running")
        gates[0].touch()
        await until(lambda: question().startswith("1 job is running"), what="one ended")
        gates[1].touch()
        await until(lambda: question().startswith("No job is running now"), what="both ended")
        await pilot.press("escape")  # stay: still here
        await until(lambda: isinstance(app.screen, MainScreen))
        assert app.is_running
        await pilot.press("q")  # nothing runs: no question, it quits
        await until(lambda: not app.is_running, what="app exited")
    assert [await stored_state(home, j) for j in ids] == ["succeeded", "succeeded"]


async def test_quit_wait_lets_running_jobs_finish_and_keeps_the_queue(home: Path, tmp_path: Path) -> None:
    gate = tmp_path / "go"
    app = owner_app(home)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        job_id = await add(app, "sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.05; done")
        await until(lambda: state(app, job_id) == "running")
        later = await add(app, "true")
        await pilot.press("q")
        await until(lambda: isinstance(app.screen, QuitScreen))
        await pilot.press("w")
        await until(lambda: app.model.status["local"]["paused"], what="nothing new starts")
        assert app.is_running
        gate.touch()
        await until(lambda: not app.is_running, what="app exited after the job")
    assert await stored_state(home, job_id) == "succeeded"
    assert await stored_state(home, later) == "queued"
    from console.core.store import Store

    store = await Store.open(home / "twolane.db", "normal")
    try:
        assert not any((await store.paused_lanes()).values())  # our pause is undone
    finally:
        await store.close()


async def stored_state(home: Path, job_id: str) -> str:
    from console.core.store import Store

    store = await Store.open(home / "twolane.db", "normal")
    try:
        return str((await store.get_job(job_id)).state)
    finally:
        await store.close()


async def test_violation_event_reaches_the_pane(home: Path) -> None:
    from console.core.models import Severity, Violation
    from console.tui.widgets.violations import ViolationsTable

    app = owner_app(home)
    async with app.run_test(size=SIZE):
        await ready(app)
        owner = app.session.owner  # type: ignore[attr-defined]
        await owner.scheduler.record_violation(
            Violation(rule="swap_used", message="swap over limit", severity=Severity.CRITICAL)
        )
        pane = app.main.query_one(ViolationsTable)
        await until(lambda: pane.row_count == 1, what="violation row")


async def test_owner_shutdown_request_closes_the_console(home: Path) -> None:
    app = owner_app(home)
    async with app.run_test(size=SIZE):
        await ready(app)
        app.session.owner.request_stop()  # type: ignore[attr-defined]
        await until(lambda: not app.is_running, what="exit on /shutdown")
    assert not (home / "control.sock").exists()


async def test_a_second_console_attaches_and_never_stops_the_owner(home: Path, owner: Any) -> None:
    app = build_app(home=home)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        assert app.session.mode == "attached"
        await owner.scheduler.pause(list(owner.scheduler._paused))
        job_id = await add(app, "true", name="from-attached")
        assert (await owner.scheduler.get(job_id)).name == "from-attached"
        await select(app, pilot, job_id)
        await pilot.press("plus")
        await until(lambda: app.model.jobs[job_id]["priority"] == 1)
        assert (await owner.scheduler.get(job_id)).priority == 1
        await pilot.press("c", "y")
        await until(lambda: state(app, job_id) == "cancelled")
        await pilot.press("q")
        await until(lambda: not app.is_running)
    assert owner.scheduler.accepting  # the owner still runs
    assert (home / "control.sock").exists()


async def test_enqueue_rejected_by_the_owner_keeps_the_form(home: Path) -> None:
    app = owner_app(home)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)

        async def refuse(payload: dict[str, Any]) -> dict[str, Any]:
            raise UserError("the owner refused: quota")

        app.push_screen(EnqueueScreen(refuse))
        await until(lambda: isinstance(app.screen, EnqueueScreen) and app.screen.query("#command"))
        app.screen.query_one("#command").value = "true"
        await pilot.press("enter")
        await until(lambda: "quota" in str(app.screen.query_one("#form-error").render()))
        assert isinstance(app.screen, EnqueueScreen)


@pytest.mark.parametrize("theme", ["twolane-dark", "twolane-light", "twolane-contrast"])
async def test_theme_from_config(home: Path, theme: str) -> None:
    app = owner_app(home, **{"ui.theme": theme})
    async with app.run_test(size=SIZE):
        await ready(app)
        assert app.theme == theme


async def test_broken_theme_file_falls_back_with_a_message(home: Path) -> None:
    (home / "themes").mkdir(parents=True)
    (home / "themes" / "mine.toml").write_text('name = "mine"\nprimary = "not a colour"\n')
    app = owner_app(home, **{"ui.theme": "mine"})
    async with app.run_test(size=SIZE):
        await ready(app)
        assert app.theme == "twolane-dark"
        assert any("mine.toml" in p for p in app.problems)
        assert any("no theme named 'mine'" in p for p in app.problems)


async def test_user_theme_file_loads(home: Path) -> None:
    (home / "themes").mkdir(parents=True)
    (home / "themes" / "mine.toml").write_text('name = "mine"\nprimary = "#ff0000"\ndark = true\n')
    app = owner_app(home, **{"ui.theme": "mine"})
    async with app.run_test(size=SIZE):
        await ready(app)
        assert app.theme == "mine"
