"""The owner's start-up: what it leaves for the garbage collector."""

from __future__ import annotations

import gc
from pathlib import Path

from console.core import config


async def test_the_owner_moves_what_it_loaded_out_of_the_collectors_sight(home: Path):
    """A full collection walked every module, config and app object (22-24 ms with the
    gateway's libraries loaded: the gateway's p99 from 4 clients up). Once the owner has
    started they are frozen, so a full collection walks only what was made since."""
    from console.owner import Owner

    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    own = Owner(home, config.load(), extensions=[])
    await own.start()
    try:
        assert gc.get_freeze_count() > 1000
    finally:
        await own.stop()
