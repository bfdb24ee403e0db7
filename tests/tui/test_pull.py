"""Model pulls from the console: the enqueue modal's pull kind and the running pane's
progress bar, on the fake session and end to end through a real owner and a fake Ollama."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Select, Static

from console.core import config
from console.core.errors import UserError
from console.core.pull_job import pull_payload
from console.tui.app import TwolaneApp, build_app
from console.tui.screens.enqueue import EnqueueScreen, build_payload
from console.tui.screens.main import MainScreen
from console.tui.session import OwnerSession
from console.tui.widgets.running import bar_width, progress_bar, progress_fraction, progress_text
from tests.fakes.upstream import FakeUpstream
from tests.helpers import until
from tests.tui.fakes import JOBS, fake_app

SIZE = (100, 30)


async def open_pull_form(app: TwolaneApp, pilot: Any) -> EnqueueScreen:
    """``a``, then choose "pull a model" in the Kind select with the keyboard."""
    await until(lambda: app.session is not None and isinstance(app.screen, MainScreen))
    await pilot.press("a")
    await until(lambda: isinstance(app.screen, EnqueueScreen) and app.screen.query("#kind"))
    modal = app.screen
    assert isinstance(modal, EnqueueScreen)
    await pilot.press("shift+tab")  # command -> kind
    assert modal.focused is modal.query_one("#kind")
    await pilot.press("enter", "down", "enter")
    await until(lambda: modal.kind == "pull", what="pull kind chosen")
    await until(lambda: modal.focused is modal.query_one("#model"), what="model field focused")
    return modal


def running_text(app: TwolaneApp) -> str:
    return str(app.main.query_one("#running-jobs", Static).render())


# ---- the modal ----------------------------------------------------------------------


async def test_modal_enqueues_the_same_pull_the_cli_does(home: Path) -> None:
    app = fake_app(home)
    async with app.run_test(size=SIZE) as pilot:
        modal = await open_pull_form(app, pilot)
        assert not modal.query_one("#command-box").display and modal.query_one("#model-box").display
        assert not modal.query_one("#timeout-box").display  # a pull has no shell timeout
        lane = modal.query_one("#lane", Select)
        assert lane.value == "local" and lane.disabled
        await pilot.press(*"llama3.2:1b")
        await pilot.press("tab", "backspace", "3")  # model -> priority (the lane is disabled)
        await pilot.press("enter")
        await until(lambda: isinstance(app.screen, MainScreen), what="modal closed")
    (call,) = app.fake.calls  # type: ignore[attr-defined]
    assert call == ("add", {"command": [], "kind": "pull", "lane": "local", "name": "pull llama3.2:1b",
                            "priority": 3, "extra": {"model": "llama3.2:1b"}})  # fmt: skip
    assert call[1] == pull_payload("llama3.2:1b", priority=3)  # what `twolane pull` sends


async def test_modal_pull_options_name_retry_insecure(home: Path) -> None:
    app = fake_app(home)
    async with app.run_test(size=SIZE) as pilot:
        modal = await open_pull_form(app, pilot)
        modal.query_one("#model").value = "hf.co/me/tiny:Q4_K_M"
        modal.query_one("#name").value = "tiny for the evals"
        modal.query_one("#retry").value = "2"
        await pilot.click("#insecure")
        await until(lambda: modal.query_one("#insecure").value)
        await pilot.click("#ok")
        await until(lambda: isinstance(app.screen, MainScreen), what="modal closed")
    (call,) = app.fake.calls  # type: ignore[attr-defined]
    assert call[1] == {"command": [], "kind": "pull", "lane": "local", "name": "tiny for the evals",
                       "priority": 0, "extra": {"model": "hf.co/me/tiny:Q4_K_M", "insecure": True},
                       "retries": 2}  # fmt: skip


async def test_modal_pull_validates_in_place(home: Path) -> None:
    app = fake_app(home)
    async with app.run_test(size=SIZE) as pilot:
        modal = await open_pull_form(app, pilot)
        await pilot.press("enter")  # no model
        error = modal.query_one("#model-error")
        await until(lambda: "type a model name" in str(error.render()))
        await pilot.press(*"llama 3")
        await pilot.press("enter")
        await until(lambda: "no spaces" in str(error.render()))
        assert isinstance(app.screen, EnqueueScreen) and not app.fake.calls  # type: ignore[attr-defined]
        modal.query_one("#model").value = "llama3"
        await until(lambda: str(error.render()) == "", what="message cleared once valid")
        # Back to a shell command: the command field and the lane choice return.
        modal.query_one("#kind", Select).value = "shell"
        await until(lambda: modal.query_one("#command-box").display and not modal.query_one("#lane").disabled)
        assert modal.focused is modal.query_one("#command")


async def test_owner_refusing_a_pull_keeps_the_form(home: Path) -> None:
    app = fake_app(home)
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: app.session is not None)

        async def refuse(payload: dict[str, Any]) -> dict[str, Any]:
            raise UserError("'gpt-4o' is served by 'cloud' (openai); only Ollama upstreams pull models")

        app.push_screen(EnqueueScreen(refuse, kind="pull"))
        await until(lambda: isinstance(app.screen, EnqueueScreen) and app.screen.query("#model"))
        app.screen.query_one("#model").value = "gpt-4o"
        await pilot.press("enter")
        await until(lambda: "only Ollama upstreams" in str(app.screen.query_one("#form-error").render()))
        assert isinstance(app.screen, EnqueueScreen)


def test_build_payload_pull_reports_every_bad_field() -> None:
    payload, errors = build_payload({"kind": "pull", "model": "", "priority": "x", "retry": "101"}, "/")
    assert set(errors) == {"model", "priority", "retry"}
    payload, errors = build_payload({"kind": "pull", "model": " qwen2.5:0.5b ", "command": "ignored"}, "/")
    assert not errors and payload == pull_payload("qwen2.5:0.5b")


# ---- the progress bar -----------------------------------------------------------------


def test_progress_bar_cells() -> None:
    assert progress_bar(0.0, 10) == ("", "━" * 10)
    assert progress_bar(1.0, 10) == ("━" * 10, "")
    assert progress_bar(0.42, 10) == ("━━━━", "━" * 6)  # 8.4 half cells -> 8
    assert progress_bar(0.45, 10) == ("━━━━╸", "━" * 5)  # 9 half cells
    assert progress_bar(7.0, 4) == ("━" * 4, "")  # out of range is clamped


def test_progress_words() -> None:
    meta = {"progress": 0.25, "completed": 650_000_000, "total": 2_600_000_000, "status": "pulling abc"}
    assert progress_text(meta) == "25% 650 MB / 2.60 GB pulling abc"
    assert progress_text({"progress": 40}) == "40%"  # a percent is read as one
    assert progress_fraction({"progress": True}) is None
    assert progress_text({"progress": "step 2/4"}) == "step 2/4"


async def test_running_pane_bar_follows_meta_updates(home: Path) -> None:
    app = fake_app(home)
    pull = next(j for j in JOBS if j["id"] == "aaa111")
    async with app.run_test(size=SIZE):
        await until(lambda: "42% downloading" in running_text(app), what="the fake's 42%")
        for fraction, done in ((0.1, 260_000_000), (0.75, 1_950_000_000)):
            meta = {"progress": fraction, "completed": done, "total": 2_600_000_000,
                    "status": "pulling abc123"}  # fmt: skip
            app.fake.queue.put_nowait(("job", {**pull, "meta": meta}))  # type: ignore[attr-defined]
            words = progress_text(meta)
            await until(lambda w=words: w in running_text(app), what=words)  # type: ignore[misc]
            pane = app.main.query_one("#running-jobs", Static)
            done, rest = progress_bar(fraction, bar_width(pane.size.width))
            line = next(li for li in running_text(app).splitlines() if words in li)
            assert line == f"  {done}{rest} {words}"
            # The done part is drawn in the success colour, the rest muted: a real bar.
            text = pane.content
            start = str(text).index(done + rest)
            colours = {str(sp.style.color) for sp in text.spans  # type: ignore[union-attr]
                       if sp.start <= start < sp.end or sp.start <= start + len(done) < sp.end}
            assert len(colours) == 2, colours
        # The finished job leaves the running pane.
        app.fake.queue.put_nowait(("job", {**pull, "state": "succeeded", "finished_at": pull["started_at"] + 5,
                                           "meta": {"progress": 1.0, "status": "success"}}))  # type: ignore[attr-defined]
        await until(lambda: "pull llama3:70b" not in running_text(app), what="pull left the pane")


# ---- end to end: the real owner, the gateway's pull runner, a fake Ollama ---------------


@pytest.fixture
async def slow_ollama() -> Any:
    up = FakeUpstream(kind="ollama")
    up.pull_steps, up.pull_total = 40, 2_000_000_000
    up.token_delay = 0.05  # between progress lines: the console sees the bar move
    await up.start()
    yield up
    await up.stop()


def gateway_owner_app(home: Path, upstream: FakeUpstream) -> TwolaneApp:
    from console.api.gateway import Gateway
    from console.owner import Owner

    cfg = config.load()
    cfg.set("upstreams", [{"name": "ollama", "kind": "ollama", "base_url": upstream.url,
                           "lane": "local", "models": ["*"]}])  # fmt: skip

    async def factory() -> OwnerSession:
        session = OwnerSession(home, cfg, Owner(home, cfg, extensions=[Gateway(cfg)]))
        await session.start()
        return session

    return build_app(home=home, config=cfg, session_factory=factory)


@pytest.mark.e2e
async def test_pull_from_the_modal_runs_with_a_live_bar(home: Path, slow_ollama: FakeUpstream) -> None:
    app = gateway_owner_app(home, slow_ollama)
    async with app.run_test(size=SIZE) as pilot:
        await open_pull_form(app, pilot)
        await pilot.press(*"tinyllama:1.1b", "enter")
        await until(lambda: isinstance(app.screen, MainScreen), what="modal closed")
        job = next(j for j in app.model.jobs.values() if j["kind"] == "pull")
        assert (job["lane"], job["name"]) == ("local", "pull tinyllama:1.1b")

        def partly() -> bool:
            p = (app.model.jobs[job["id"]].get("meta") or {}).get("progress") or 0
            return 0 < p < 1 and "GB / 2.00 GB" in running_text(app)

        await until(partly, what="a partial download on the bar")
        await until(lambda: app.model.jobs[job["id"]]["state"] == "succeeded", what="pull finished")
        await until(lambda: "pull tinyllama" not in running_text(app))
    assert [path for path, _ in slow_ollama.calls] == ["/api/pull"]
    assert slow_ollama.calls[0][1]["model"] == "tinyllama:1.1b"


def test_cli_pull_checks_the_model_name_like_the_modal(twolane) -> None:  # type: ignore[no-untyped-def]
    bad = twolane("pull", "llama 3", "--detach")
    assert bad.returncode == 2 and "a model name has no spaces" in bad.stderr
    assert bad.stderr.count("\n") == 1  # one line naming the fix
