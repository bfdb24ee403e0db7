"""``twolane`` with no sub-command: the full-screen console.

The app becomes the owner of the data dir when none answers on the control socket, else
it attaches to the running owner. ``build_app`` makes the app without running it (tests
and snapshots); ``run(args)`` is what the CLI calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from textual.app import App

from console.core import config as config_mod
from console.core import paths
from console.core.clock import Clock, SystemClock
from console.core.config import Config, ConfigError
from console.core.errors import OwnerRunning, UserError
from console.tui.commands import Command, ConsoleCommands, check_keymap
from console.tui.model import ConsoleModel
from console.tui.screens.main import Changed, MainScreen
from console.tui.screens.quit import QuitScreen
from console.tui.session import GRAPH_SECONDS, Session, open_session, stored_snapshot
from console.tui.themes import DEFAULT_THEME, SHIPPED_DIR, load_themes

SessionFactory = Callable[[], Awaitable[Session]]
ATTACH_ONLY_ENV = "TWOLANE_ATTACH_ONLY"  # set by `twolane web`: browser sessions never own
RECONNECT_EVERY = 2.0

DEMO_JOBS: list[dict[str, Any]] = [
    {"command": ["sleep", "4"], "lane": "local", "name": "demo: load a model (sleep 4)"},
    {"command": ["echo", "hello from the local lane"], "lane": "local", "name": "demo: echo"},
    {"command": ["sh", "-c", "for i in 1 2 3 4 5 6; do echo step $i; sleep 1; done"],
     "lane": "local", "name": "demo: local job with a log"},
    {"command": ["sleep", "3"], "lane": "remote", "name": "demo: API batch 1 (sleep 3)"},
    {"command": ["sleep", "5"], "lane": "remote", "name": "demo: API batch 2 (sleep 5)"},
    {"command": ["echo", "hello from the remote lane"], "lane": "remote", "name": "demo: echo"},
    {"command": ["sleep", "30"], "lane": "local", "priority": -1,
     "name": "demo: long job (cancel me with c)"},
]  # fmt: skip


class TwolaneApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "twolane"
    COMMANDS = App.COMMANDS | {ConsoleCommands}
    ENABLE_COMMAND_PALETTE = True

    def __init__(
        self,
        config: Config,
        session_factory: SessionFactory,
        *,
        clock: Clock | None = None,
        user_theme_dir: Path | None = None,
        on_ready: Callable[[Session], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.clock = clock or SystemClock()
        self.model = ConsoleModel()
        self.session: Session | None = None
        self.refresh_interval = float(config.get("ui.refresh_interval"))
        self._factory = session_factory
        self._on_ready = on_ready
        self._session_closed = False
        self.problems: list[str] = []
        self._setup_themes(user_theme_dir)
        self.keymap, bad = check_keymap(config.get("ui.keymap"))
        self.problems += bad
        self.set_keymap(self.keymap)

    def now(self) -> float:
        return self.clock.now()

    def _setup_themes(self, user_dir: Path | None) -> None:
        themes, problems = load_themes(SHIPPED_DIR, *([user_dir] if user_dir else []))
        for theme in themes:
            self.register_theme(theme)
        self.problems += problems
        wanted = self.config.get("ui.theme")
        if wanted not in self.available_themes:
            self.problems.append(f"ui.theme: no theme named '{wanted}'; using {DEFAULT_THEME} "
                                 f"(known: {', '.join(sorted(t.name for t in themes))})")  # fmt: skip
            wanted = DEFAULT_THEME if DEFAULT_THEME in self.available_themes else "textual-dark"
        self.theme = wanted

    # ---- life cycle --------------------------------------------------------------------

    @property
    def main(self) -> MainScreen:
        return self.get_screen("main")  # type: ignore[return-value]

    def on_mount(self) -> None:
        self.install_screen(MainScreen(), "main")
        self.push_screen("main")
        for problem in self.problems:
            self.notify(problem, severity="warning", timeout=10)
        self.run_worker(self._connect(), name="session", group="session")

    async def _connect(self) -> None:
        try:
            self.session = await self._factory()
        except ConfigError as exc:  # an extension refused a value: the CLI's exit code for it
            self.exit(2, return_code=2, message=f"twolane: {exc}")
            return
        except (OwnerRunning, UserError, OSError) as exc:
            self.exit(3, return_code=3, message=f"twolane: {exc}")
            return
        if self.session.mode == "owner":
            owner = getattr(self.session, "owner", None)
            if owner is not None:  # `POST /shutdown` or a signal asks the owner to stop
                self.run_worker(self._watch_stop_request(owner), group="stop")
        with contextlib.suppress(Exception):
            self.model.load_samples(await self.session.samples(GRAPH_SECONDS))
        if self._on_ready is not None:
            await self._on_ready(self.session)
        await self._pump()

    async def _pump(self) -> None:
        """Fold session events into the model; reconnect if an owner goes away."""
        from console.client import OwnerGone

        while not self._session_closed and self.session is not None:
            try:
                async for kind, data in self.session.events():
                    self.model.apply(kind, data)
                    self.main.post_message(Changed())
                    if self.main.note:
                        self.main.set_note("")
            except (OwnerGone, OSError, UserError) as exc:
                self.log.warning(f"event stream ended: {exc}")
            except Exception as exc:  # httpx read errors when the owner dies
                self.log.warning(f"event stream failed: {exc!r}")
            if self.session.mode == "owner" or self._session_closed:
                return
            self.main.set_note("owner gone: reconnecting…")
            await asyncio.sleep(RECONNECT_EVERY)

    async def _watch_stop_request(self, owner: Any) -> None:
        await owner.wait_for_stop_request()
        await self._quit_with("stop")

    async def request_quit(self) -> None:
        """``q``: attached consoles just leave; the owner asks about running jobs."""
        session = self.session
        if session is None or session.mode != "owner":
            await self._quit_with("leave")
            return
        running = session.running_count if hasattr(session, "running_count") else self.model.running_count
        if not running():
            await self._quit_with("stop")
            return

        def chosen(choice: str | None) -> None:
            if choice:
                self._begin_shutdown(choice)

        self.push_screen(QuitScreen(running), chosen)

    def _begin_shutdown(self, choice: str) -> None:
        # exclusive: a new choice replaces a wait in progress
        self.run_worker(self._quit_with(choice), name="quit", group="quit", exclusive=True)

    async def _quit_with(self, how: str) -> None:
        if how == "wait":
            self.main.set_note("quitting when the running jobs finish (q to choose again)")
        elif how in ("stop", "cancel"):
            self.main.set_note("stopping…")
        await self._close_session(how)
        self.exit(0)

    async def _close_session(self, how: str) -> None:
        if self._session_closed:
            return
        if how != "wait":
            self._session_closed = True
        session = self.session
        if session is not None:
            await session.close(how)
        self._session_closed = True

    async def action_quit(self) -> None:
        await self.request_quit()

    async def on_unmount(self) -> None:
        # The app is going away without a chosen quit (terminal closed, ctrl+c): an owner
        # still records its running jobs interrupted rather than leaving them orphaned.
        if not self._session_closed and self.session is not None:
            await self._close_session("stop" if self.session.mode == "owner" else "leave")

    def run_command(self, command: Command) -> None:
        """Run a command table entry (from the palette) on the main screen."""
        self.call_later(self.run_action, command.action, self.main)


def build_app(
    *,
    home: Path | None = None,
    config: Config | None = None,
    session_factory: SessionFactory | None = None,
    clock: Clock | None = None,
    attach_only: bool = False,
    on_ready: Callable[[Session], Awaitable[None]] | None = None,
) -> TwolaneApp:
    """The console app for ``home`` (never run here)."""
    home = home or paths.data_dir()
    cfg = config or config_mod.load()

    async def factory() -> Session:
        return await open_session(home, cfg, attach_only=attach_only)

    return TwolaneApp(cfg, session_factory or factory, clock=clock,
                      user_theme_dir=home / "themes", on_ready=on_ready)  # fmt: skip


def preload(app: TwolaneApp, home: Path) -> None:
    """Put what the database holds in the model before the app starts, so the first frame
    shows the jobs; the session's snapshot replaces it a moment later (owner start-up
    takes ~0.5 s)."""
    snapshot = stored_snapshot(home, app.config)
    if snapshot is not None:
        app.model.apply("snapshot", snapshot)


async def add_demo_jobs(session: Session) -> None:
    """A few harmless jobs in both lanes so a newcomer sees the lanes at work."""
    for payload in DEMO_JOBS:
        await session.add({**payload, "cwd": str(session.home)})


def run(args: Any) -> int:
    """Open the console (the CLI's default command)."""
    if getattr(args, "demo", False):
        with tempfile.TemporaryDirectory(prefix="twolane-demo-") as tmp:
            home = Path(tmp)
            os.environ["TWOLANE_HOME"] = tmp  # jobs and sub-commands see the demo dir too
            app = build_app(home=home, on_ready=add_demo_jobs)
            code = _run_app(app)
        print(f"twolane: demo data dir {tmp} removed")
        return int(code or 0)
    app = build_app(attach_only=bool(os.environ.get(ATTACH_ONLY_ENV)))
    preload(app, paths.data_dir())
    code = _run_app(app)
    return int(code or 0)


def _run_app(app: TwolaneApp) -> int | None:
    """``app.run()`` on the owner's loop (``owner.loop``): the console may be the owner."""
    from console import eventloop

    return eventloop.run(app.run_async(), app.config.get("owner.loop"))
