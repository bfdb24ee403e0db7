"""largest_fitting_ctx: the largest context whose predicted footprint fits a budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from console.core.errors import UserError
from console.core.signals import gguf
from console.core.signals.predict import KV_PAD, largest_fitting_ctx, predict, shape_from_gguf
from tests.signals.conftest import llama_like


def need(shape: Any, ctx: int, overhead: int = 0) -> int:
    return predict(shape, model="m", source="t", ctx=ctx, overhead_bytes=overhead).total_bytes


def test_the_answer_fits_and_one_padding_step_more_does_not(tmp_path: Path) -> None:
    shape = shape_from_gguf(gguf.read(llama_like(tmp_path / "m.gguf")))
    budget = need(shape, 10_000) + 123  # between two padded sizes
    ctx = largest_fitting_ctx(shape, budget, upper=1 << 20)
    assert ctx is not None and ctx % KV_PAD == 0  # the footprint steps with the padding
    assert need(shape, ctx) <= budget < need(shape, ctx + 1)


def test_the_ask_is_the_ceiling_and_overhead_counts(tmp_path: Path) -> None:
    shape = shape_from_gguf(gguf.read(llama_like(tmp_path / "m.gguf")))
    assert largest_fitting_ctx(shape, need(shape, 1 << 20), upper=3000) == 3000
    budget = need(shape, 8192)
    assert largest_fitting_ctx(shape, budget, upper=8192) == 8192
    overhead = need(shape, 8192) - need(shape, 4096)
    assert largest_fitting_ctx(shape, budget, upper=8192, overhead_bytes=overhead) == 4096


def test_nothing_fits_is_none(tmp_path: Path) -> None:
    shape = shape_from_gguf(gguf.read(llama_like(tmp_path / "m.gguf")))
    assert largest_fitting_ctx(shape, shape.weights_bytes // 2, upper=4096) is None
    with pytest.raises(UserError):
        largest_fitting_ctx(shape, need(shape, 1000), upper=0)
