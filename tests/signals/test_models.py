"""Resolving what a user types: a GGUF path, or an Ollama model name asked of a (fake)
Ollama on 127.0.0.1: its local blob when there is one, else model_info + /api/tags."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from console.core.errors import UserError
from console.core.signals import models
from tests.signals.conftest import FakeOllama, llama_like


@pytest.fixture
def ollama() -> Iterator[FakeOllama]:
    with FakeOllama() as fake:
        yield fake


def test_gguf_path(tmp_path: Path) -> None:
    path = llama_like(tmp_path / "m.gguf", n_layer=3)
    shape, source = models.resolve(str(path), "http://127.0.0.1:9")
    assert shape.n_layer == 3 and source == str(path)


def test_ollama_name_with_local_blob(tmp_path: Path, ollama: FakeOllama) -> None:
    blob = llama_like(tmp_path / "sha256-abc", n_layer=5)
    ollama.shows["tiny:1b"] = {"modelfile": f"# Modelfile\nFROM {blob}\nTEMPLATE x\n",
                               "model_info": {"general.architecture": "llama"}}  # fmt: skip
    shape, source = models.resolve("tiny:1b", ollama.url)
    assert shape.n_layer == 5 and source == str(blob)
    assert ollama.requests[0] == ("/api/show", {"model": "tiny:1b"})


def test_ollama_name_from_model_info_and_tags(ollama: FakeOllama) -> None:
    ollama.shows["remote:7b"] = {
        "modelfile": "FROM /elsewhere/blobs/sha256-missing\n",
        "model_info": {
            "general.architecture": "qwen2", "qwen2.block_count": 28,
            "qwen2.embedding_length": 3584, "qwen2.attention.head_count": 28,
            "qwen2.attention.head_count_kv": 4, "qwen2.context_length": 32768,
            "qwen2.feed_forward_length": 18944, "tokenizer.ggml.tokens": None,
        },
    }  # fmt: skip
    ollama.tags = [{"name": "remote:7b", "size": 4_683_087_332}]
    shape, source = models.resolve("remote:7b", ollama.url)
    assert source == "ollama:remote:7b"
    assert (shape.n_layer, shape.n_head_kv[0], shape.key_length) == (28, 4, 128)
    assert shape.weights_bytes == 4_683_087_332


def test_unknown_model_names_the_fix(ollama: FakeOllama) -> None:
    with pytest.raises(UserError, match="ollama pull nope"):
        models.resolve("nope", ollama.url)


def test_ollama_not_running_names_the_fix() -> None:
    with pytest.raises(UserError, match="start Ollama, set signals.ollama_url"):
        models.resolve("llama3", "http://127.0.0.1:9", timeout=2)


@pytest.mark.parametrize(
    ("given", "base"),
    [("127.0.0.1:11434", "http://127.0.0.1:11434"), ("0.0.0.0", "http://127.0.0.1:11434"),
     ("http://box:8080/", "http://box:8080"), ("https://ollama.example", "https://ollama.example:11434")],
)  # fmt: skip
def test_ollama_host_forms(given: str, base: str) -> None:
    assert models.ollama_base(given) == base
