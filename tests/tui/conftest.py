"""Console tests: no cursor blink, UTC clock faces, helpers to wait for the app."""

from __future__ import annotations

import time

import pytest
from textual.widgets import Input


@pytest.fixture(autouse=True)
def steady_ui(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Input, "cursor_blink", False)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
