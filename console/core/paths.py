"""Where twolane keeps its data and finds its config. Environment variables override."""

from __future__ import annotations

import os
from pathlib import Path

APP = "twolane"


def data_dir() -> Path:
    """The data dir: ``TWOLANE_HOME``, else the platform's user data dir for twolane."""
    env = os.environ.get("TWOLANE_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP, appauthor=False))


def config_file() -> Path:
    """The config file: ``TWOLANE_CONFIG``, else ``config.toml`` in the user config dir."""
    env = os.environ.get("TWOLANE_CONFIG")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir(APP, appauthor=False)) / "config.toml"


def db_path(home: Path) -> Path:
    return home / "twolane.db"


def socket_path(home: Path) -> Path:
    return home / "control.sock"


def lease_path(home: Path) -> Path:
    return home / "owner.lock"


def logs_dir(home: Path) -> Path:
    return home / "logs"


def ensure_home(home: Path) -> Path:
    """Create the data dir (private to the user) and its logs folder."""
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    logs_dir(home).mkdir(exist_ok=True, mode=0o700)
    return home
