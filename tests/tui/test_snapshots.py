"""Snapshots at a fixed size on a fixed session and clock (fake ids, times and samples)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tui.fakes import fake_app


def test_main_screen_80x24(snap_compare, home: Path) -> None:
    assert snap_compare(fake_app(home), press=["_"], terminal_size=(80, 24))


def test_main_screen_wide(snap_compare, home: Path) -> None:
    assert snap_compare(fake_app(home), press=["_"], terminal_size=(160, 40))


def test_enqueue_modal(snap_compare, home: Path) -> None:
    assert snap_compare(fake_app(home), press=["_", "a", "_"], terminal_size=(80, 24))


def test_help_screen(snap_compare, home: Path) -> None:
    assert snap_compare(fake_app(home), press=["_", "question_mark", "_"], terminal_size=(100, 30))


@pytest.mark.parametrize("theme", ["twolane-dark", "twolane-light", "twolane-contrast"])
def test_each_theme(snap_compare, home: Path, theme: str) -> None:
    assert snap_compare(fake_app(home, theme=theme), press=["_"], terminal_size=(100, 30))
