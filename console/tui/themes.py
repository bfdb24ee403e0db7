"""Themes as TOML files: the ones shipped in ``console/themes/`` and the user's in
``<data dir>/themes/``. A broken file is skipped with a message, never a crash."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from textual.theme import Theme

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "themes"
DEFAULT_THEME = "twolane-dark"
_FIELDS = {"name", "primary", "secondary", "warning", "error", "success", "accent",
           "foreground", "background", "surface", "panel", "boost", "dark", "luminosity_spread",
           "text_alpha", "variables"}  # fmt: skip


class ThemeError(ValueError):
    """A theme file that cannot be used; the message names the file and the fix."""


def load_theme_file(path: Path) -> Theme:
    """One theme from a TOML file (``name`` and ``primary`` are required)."""
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ThemeError(f"theme file {path} is not valid TOML ({exc}); fix or remove it") from None
    unknown = set(data) - _FIELDS
    if unknown:
        raise ThemeError(f"theme file {path}: unknown field(s) {sorted(unknown)}; "
                         f"allowed: {sorted(_FIELDS)}")  # fmt: skip
    if not isinstance(data.get("name"), str) or not isinstance(data.get("primary"), str):
        raise ThemeError(f"theme file {path} needs string fields 'name' and 'primary'")
    try:
        theme = Theme(**data)
        theme.to_color_system()  # parses every colour now, not on first paint
    except Exception as exc:
        raise ThemeError(f"theme file {path} has a bad value ({exc}); fix or remove it") from None
    return theme


def load_themes(*dirs: Path) -> tuple[list[Theme], list[str]]:
    """Every theme in ``dirs`` (later directories win on a name clash) and the problems."""
    themes: dict[str, Theme] = {}
    problems: list[str] = []
    for folder in dirs:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            try:
                theme = load_theme_file(path)
            except ThemeError as exc:
                problems.append(str(exc))
                continue
            themes[theme.name] = theme
    return list(themes.values()), problems
