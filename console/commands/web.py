"""``twolane web [--port N]``: the console in a browser on localhost (textual-serve).

Every browser session runs ``twolane`` attached to the owner; if no owner runs, this
process becomes the owner first, so there is never a second scheduler.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import Any

from console.cli import CliError


def register(sub: Any) -> None:
    p = sub.add_parser("web", help="serve the console to a browser on localhost")
    p.add_argument("--port", type=int, default=8123, help="TCP port on 127.0.0.1 (default 8123)")
    p.set_defaults(func=cmd_web)


def cmd_web(args: argparse.Namespace) -> int:
    try:
        from textual_serve.server import Server
    except ImportError:
        raise CliError("twolane web needs textual-serve: pip install -e '.[web]'") from None

    from console.client import owner_client
    from console.core import config, paths
    from console.tui.app import ATTACH_ONLY_ENV

    home = paths.data_dir()
    cfg = config.load()
    os.environ[ATTACH_ONLY_ENV] = "1"  # browser sessions inherit this: attach, never own
    command = f"{shlex.quote(sys.executable)} -m console"

    class ConsoleServer(Server):
        owner: Any = None

        async def on_startup(self, app: Any) -> None:
            if owner_client(home, 5.0) is None:
                from console.owner import Owner

                self.owner = Owner(home, cfg)
                await self.owner.start()
            await super().on_startup(app)

        async def on_shutdown(self, app: Any) -> None:
            if self.owner is not None:
                await self.owner.stop()

    ConsoleServer(command, host="127.0.0.1", port=args.port, title="twolane").serve()
    return 0
