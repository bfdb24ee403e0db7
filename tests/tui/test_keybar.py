"""The footer shows every key of the command table at 80 columns and up, in the words
that fit; remapped keys show as remapped; a click on a key runs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.tui.commands import COMMANDS, key_label
from console.tui.screens.main import MainScreen
from console.tui.widgets.keybar import COMPACT, KeyBar, forms, width
from tests.helpers import until
from tests.tui.fakes import fake_app


def shown_keys(text: str) -> list[str]:
    """Every key the bar shows: "+/- Pri" shows both + and -."""
    words = text.split()
    keys: list[str] = []
    for word in words:
        keys += word.split("/") if "/" in word and word != "/" else [word]
    return keys


@pytest.mark.parametrize("size", [(80, 24), (100, 30), (120, 40), (200, 50)])
async def test_every_key_is_in_the_footer(home: Path, size: tuple[int, int]) -> None:
    app = fake_app(home)
    async with app.run_test(size=size) as pilot:
        await until(lambda: isinstance(app.screen, MainScreen))
        await pilot.pause()
        bar = app.screen.query_one(KeyBar)
        text = bar.text
        assert len(text) <= size[0]
        keys = shown_keys(text)
        for command in COMMANDS:
            if not command.footer and size[0] < 100:  # only where it fits with the rest
                continue
            label = key_label(command, {})
            assert COMPACT.get(label, label) in keys or label in keys, (command.id, text)
        assert "^p" in keys
        if size[0] >= 120:  # room for every title
            assert all(c.title in text for c in COMMANDS), text


async def test_remapped_keys_show_and_filtering_says_what_keys_do(home: Path) -> None:
    app = fake_app(home, keymap={"cancel": "x", "lane_filter": "v"})
    async with app.run_test(size=(80, 24)) as pilot:
        await until(lambda: isinstance(app.screen, MainScreen))
        await pilot.pause()
        bar = app.screen.query_one(KeyBar)
        assert "x Cancel" in bar.text and "v Lane" in bar.text and "c Cancel" not in bar.text
        await pilot.press("slash")
        await until(lambda: "esc clear" in bar.text, what="filter keys")
        await pilot.press("escape")
        await until(lambda: "x Cancel" in bar.text, what="keys back")


async def test_a_click_on_a_key_runs_it(home: Path) -> None:
    app = fake_app(home)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(lambda: isinstance(app.screen, MainScreen) and app.main.table.row_count == 7)
        bar = app.screen.query_one(KeyBar)
        await until(lambda: "l Lane" in bar.text)
        await pilot.click(KeyBar, offset=(bar.text.index("l Lane") + 2, 0))
        await until(lambda: app.main.table.lane_filter == "local", what="lane filter by click")


def test_the_narrowest_form_fits_80_columns_with_every_footer_key() -> None:
    items, hint = forms({})[-1]
    assert width(items, hint, 1) <= 80
    firsts = {c.group: c.action for c in reversed(COMMANDS) if c.group}  # a group's first
    wanted = {c.action for c in COMMANDS if c.footer and not c.group} | set(firsts.values())
    assert {action for _, _, action in items} == wanted


async def test_keys_typed_right_after_slash_go_into_the_filter(home: Path) -> None:
    """A terminal delivers '/r' in one read: the 'r' is text, not the retry key."""
    from textual import events

    app = fake_app(home)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(lambda: isinstance(app.screen, MainScreen) and app.main.table.row_count == 7)
        for key, char in (("slash", "/"), ("r", "r"), ("e", "e")):
            app.post_message(events.Key(key, char))
        await until(lambda: app.main.table.text_filter == "re", what="'re' in the filter")
        await pilot.pause()
        assert app.fake.calls == []  # type: ignore[attr-defined]


async def test_the_filter_key_is_text_inside_the_filter(home: Path) -> None:
    app = fake_app(home)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(lambda: isinstance(app.screen, MainScreen) and app.main.table.row_count == 7)
        await pilot.press("slash", "a", "slash", "b")
        await until(lambda: app.main.table.text_filter == "a/b", what="'a/b' in the filter")
