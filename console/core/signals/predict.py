"""Model footprint prediction from GGUF metadata, following llama.cpp's own arithmetic.

- weights: the sum of every tensor's ggml_nbytes (llama.cpp's "model buffer size").
- KV cache, per layer ``il``: ``kv_cells(il) x n_head_kv(il) x (key_length + value_length)
  x bytes per element of the cache type`` (llama.cpp's "KV buffer size"). ``kv_cells`` is
  ``parallel x pad256(ctx)``: each parallel sequence gets its own ``ctx`` (as Ollama's
  OLLAMA_NUM_PARALLEL does, and as llama.cpp's default non-unified cache keeps one stream
  per sequence); a sliding-window layer keeps ``parallel x pad256(min(ctx,
  sliding_window + n_ubatch))``.
- compute buffer: an estimate of llama.cpp's graph scratch with flash attention (its
  default), ``14 x n_ubatch x (n_embd + n_ff) + 2 x n_ubatch x pad256(ctx) + 4 x n_vocab x
  parallel`` bytes (activations, the f16 attention mask, the logits).
- runtime overhead: a fixed allowance for the process itself (configurable).

The decision whether it fits is ``fits()``: pure arithmetic against available memory
minus the configured headroom (memory is unified on Apple Silicon, so weights and KV
cache draw on the same pool).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from console.core.errors import UserError
from console.core.signals.gguf import GGML_TYPE_IDS, GGUFFile, row_bytes

GB = 1e9
MB = 1e6
KV_TYPES = ("f16", "q8_0", "q4_0")
N_UBATCH = 512  # llama.cpp's default micro-batch
KV_PAD = 256  # llama.cpp pads the cache to a multiple of 256 cells
DEFAULT_CTX = 4096  # llama.cpp's and Ollama's default context

# Architectures that interleave sliding-window layers without saying so in metadata:
# llama.cpp's set_swa_pattern(n) makes layer il sliding when il % n < n - 1.
SWA_PERIOD = {"gemma2": 2, "gemma3": 6, "gemma3n": 5, "cohere2": 4, "gpt-oss": 2, "llama4": 4}


@dataclass(slots=True)
class ModelShape:
    """What the arithmetic needs, from GGUF metadata or Ollama's /api/show ``model_info``."""

    arch: str
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: list[int]  # per layer
    key_length: int
    value_length: int
    n_vocab: int
    n_ff: int
    sliding_window: int
    swa_layers: list[bool]  # per layer
    weights_bytes: int
    context_length: int


@dataclass(slots=True)
class Prediction:
    model: str
    source: str  # the GGUF path read, or "ollama:<name>"
    arch: str
    ctx: int
    parallel: int
    kv_type: str
    n_layer: int
    swa_layer_count: int
    weights_bytes: int
    kv_bytes: int
    compute_bytes: int
    overhead_bytes: int
    context_length: int

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_bytes + self.compute_bytes + self.overhead_bytes

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_bytes": self.total_bytes}

    def summary(self) -> str:
        """``5.1 GB (weights 4.4 + KV 0.5 + compute 0.1 + overhead 0.3)``."""
        parts = (self.weights_bytes, self.kv_bytes, self.compute_bytes, self.overhead_bytes)
        w, k, c, o = (gb(p) for p in parts)
        return f"{gb(self.total_bytes)} GB (weights {w} + KV {k} + compute {c} + overhead {o})"


def gb(n: float) -> str:
    """Bytes as GB with enough digits to be useful for small and large models."""
    value = n / GB
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _per_layer(value: Any, n_layer: int, default: int) -> list[int]:
    if isinstance(value, list | tuple) and value:
        vals = [int(v) for v in value]
        return (vals + [vals[-1]] * n_layer)[:n_layer]
    return [int(value if value is not None else default)] * n_layer


def shape_from_metadata(meta: dict[str, Any], weights_bytes: int) -> ModelShape:
    """Read the hyper-parameters llama.cpp uses. Raises UserError if essentials are missing."""
    arch = str(meta.get("general.architecture") or "")

    def key(name: str, default: Any = None) -> Any:
        return meta.get(f"{arch}.{name}", default)

    n_layer = key("block_count")
    n_embd = key("embedding_length")
    head = key("attention.head_count")
    if not arch or n_layer is None or n_embd is None or head is None:
        raise UserError(
            f"model metadata lacks {arch or '?'}.block_count/embedding_length/attention.head_count;"
            " twolane cannot predict its footprint"
        )
    n_layer, n_embd = int(n_layer), int(n_embd)
    n_heads = _per_layer(head, n_layer, 1)
    n_head = max(n_heads) or 1
    n_head_kv = _per_layer(key("attention.head_count_kv"), n_layer, n_head)
    key_length = int(key("attention.key_length") or n_embd // n_head)
    value_length = int(key("attention.value_length") or key_length)
    vocab = key("vocab_size")
    if vocab is None:
        tokens = meta.get("tokenizer.ggml.tokens")
        vocab = len(tokens) if tokens is not None else 32000
    n_ff = key("feed_forward_length", 4 * n_embd)
    n_ff = max(n_ff) if isinstance(n_ff, list) and n_ff else int(n_ff or 4 * n_embd)
    window = int(key("attention.sliding_window") or 0)
    pattern = key("attention.sliding_window_pattern")
    if isinstance(pattern, list) and pattern:
        swa = [bool(p) for p in (pattern * n_layer)[:n_layer]]
    elif window:
        period = int(pattern) if isinstance(pattern, int) and pattern > 0 else SWA_PERIOD.get(arch, 0)
        # A window with no pattern means every layer slides (e.g. Mistral v0.1).
        swa = [il % period < period - 1 if period else True for il in range(n_layer)]
    else:
        swa = [False] * n_layer
    return ModelShape(
        arch=arch, n_layer=n_layer, n_embd=n_embd, n_head=n_head, n_head_kv=n_head_kv,
        key_length=key_length, value_length=value_length, n_vocab=int(vocab), n_ff=n_ff,
        sliding_window=window, swa_layers=swa, weights_bytes=int(weights_bytes),
        context_length=int(key("context_length") or 0),
    )  # fmt: skip


def shape_from_gguf(f: GGUFFile) -> ModelShape:
    return shape_from_metadata(f.metadata, f.tensor_bytes)


def _pad(n: int) -> int:
    return (n + KV_PAD - 1) // KV_PAD * KV_PAD


def kv_cells(shape: ModelShape, il: int, ctx: int, parallel: int) -> int:
    """Cells layer ``il`` keeps: one padded stream per parallel sequence, of the context,
    or of the window plus one micro-batch for a sliding layer."""
    per_seq = ctx
    if shape.swa_layers[il] and shape.sliding_window:
        per_seq = min(ctx, shape.sliding_window + N_UBATCH)
    return parallel * _pad(per_seq)


def kv_cache_bytes(shape: ModelShape, ctx: int, parallel: int = 1, kv_type: str = "f16") -> int:
    """llama.cpp's KV buffer size: K and V rows per layer, GQA-aware, window-aware."""
    tid = check_kv_type(kv_type)
    total = 0
    for il in range(shape.n_layer):
        cells = kv_cells(shape, il, ctx, parallel)
        k = row_bytes(tid, shape.n_head_kv[il] * shape.key_length)
        v = row_bytes(tid, shape.n_head_kv[il] * shape.value_length)
        total += cells * (k + v)
    return total


def compute_bytes(shape: ModelShape, ctx: int, parallel: int = 1) -> int:
    """Estimate of llama.cpp's compute buffer with flash attention (its default): one
    micro-batch of f32 activations, the f16 attention mask over one sequence's cells, and
    a row of logits per sequence."""
    activations = 14 * N_UBATCH * (shape.n_embd + shape.n_ff)
    mask = 2 * N_UBATCH * _pad(ctx)
    return activations + mask + 4 * shape.n_vocab * parallel


def check_kv_type(kv_type: str) -> int:
    if kv_type not in KV_TYPES:
        raise UserError(f"unknown KV cache type '{kv_type}'; use one of {', '.join(KV_TYPES)}")
    return GGML_TYPE_IDS[kv_type.upper()]


def check_ctx(ctx: Any, name: str = "ctx") -> int:
    if isinstance(ctx, bool) or not isinstance(ctx, int) or not 1 <= ctx <= 1 << 24:
        raise UserError(f"{name} must be a whole number of tokens from 1 to 16777216, got {ctx!r}")
    return ctx


def predict(
    shape: ModelShape,
    *,
    model: str,
    source: str,
    ctx: int = DEFAULT_CTX,
    parallel: int = 1,
    kv_type: str = "f16",
    overhead_bytes: int = 0,
) -> Prediction:
    """The footprint of running ``shape`` with this context, parallelism and cache type."""
    check_ctx(ctx)
    check_ctx(parallel, "parallel")
    return Prediction(
        model=model, source=source, arch=shape.arch, ctx=ctx, parallel=parallel,
        kv_type=kv_type, n_layer=shape.n_layer, swa_layer_count=sum(shape.swa_layers),
        weights_bytes=shape.weights_bytes, kv_bytes=kv_cache_bytes(shape, ctx, parallel, kv_type),
        compute_bytes=compute_bytes(shape, ctx, parallel), overhead_bytes=int(overhead_bytes),
        context_length=shape.context_length,
    )  # fmt: skip


@dataclass(slots=True)
class Fit:
    fits: bool
    need_bytes: int
    available_bytes: int
    headroom_bytes: int

    @property
    def budget_bytes(self) -> int:
        return self.available_bytes - self.headroom_bytes

    def reason(self, model: str) -> str:
        return (
            f"gate model: {model} needs {gb(self.need_bytes)} GB > {gb(max(0, self.budget_bytes))} GB"
            f" budget ({gb(self.available_bytes)} GB available - {gb(self.headroom_bytes)} GB headroom)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "budget_bytes": self.budget_bytes}


def fits(prediction: Prediction, available_bytes: int, headroom_bytes: int) -> Fit:
    """Does the prediction fit in available memory minus the headroom?"""
    need = prediction.total_bytes
    return Fit(need <= available_bytes - headroom_bytes, need, int(available_bytes), int(headroom_bytes))


def largest_fitting_ctx(
    shape: ModelShape,
    budget_bytes: int,
    *,
    upper: int,
    parallel: int = 1,
    kv_type: str = "f16",
    overhead_bytes: int = 0,
) -> int | None:
    """The largest context up to ``upper`` whose predicted footprint fits in
    ``budget_bytes``; None when none does. The footprint only grows with the context (in
    steps of llama.cpp's 256-cell padding), so a binary search finds it."""
    check_ctx(upper, "upper")

    def fits_at(ctx: int) -> bool:
        need = predict(shape, model="", source="", ctx=ctx, parallel=parallel, kv_type=kv_type,
                       overhead_bytes=overhead_bytes).total_bytes  # fmt: skip
        return need <= budget_bytes

    if not fits_at(1):
        return None
    lo, hi = 1, upper
    while lo < hi:  # invariant: lo fits
        mid = (lo + hi + 1) // 2
        if fits_at(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo
