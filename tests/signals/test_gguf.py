"""The GGUF metadata reader: synthetic files of every shape it must handle, the real
SmolLM2 file, and the errors a user sees for files that are not GGUF."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from console.core.signals import gguf
from tests.signals.conftest import llama_like


def test_round_trip_of_every_value_type(tmp_path: Path) -> None:
    meta = {
        "general.architecture": "llama", "u": 7, "neg": -3, "big": 1 << 40, "f": 0.5,
        "flag": True, "s": "héllo", "ints": [1, 2, 3], "strs": ["a", "b"], "empty": [],
        "nested": [[1, 2], [3]],
    }  # fmt: skip
    path = gguf.write(tmp_path / "m.gguf", meta, [("w", [64, 2], 8)])
    f = gguf.read(path)
    assert f.version == 3
    assert f.metadata == meta
    [t] = f.tensors
    assert (t.name, t.shape, t.type_name, t.n_elements) == ("w", [64, 2], "Q8_0", 128)
    assert t.nbytes == 128 // 32 * 34
    assert f.data_offset % 32 == 0 and f.data_offset >= 24


def test_version_2_and_big_endian(tmp_path: Path) -> None:
    meta = {"general.architecture": "llama", "llama.block_count": 3}
    for name, kw in (("v2", {"version": 2}), ("be", {"big_endian": True})):
        f = gguf.read(gguf.write(tmp_path / f"{name}.gguf", meta, [("x", [32], 1)], **kw))
        assert f.metadata["llama.block_count"] == 3
        assert f.tensors[0].nbytes == 64


def test_long_arrays_keep_only_their_length(tmp_path: Path) -> None:
    path = llama_like(tmp_path / "m.gguf", n_vocab=5000)
    tokens = gguf.read(path).metadata["tokenizer.ggml.tokens"]
    assert isinstance(tokens, gguf.ArrayInfo) and len(tokens) == 5000


def test_alignment_from_metadata(tmp_path: Path) -> None:
    meta = {"general.architecture": "llama", "general.alignment": 64}
    f = gguf.read(gguf.write(tmp_path / "a.gguf", meta, [("x", [32], 0)], with_data=True))
    assert f.alignment == 64 and f.data_offset % 64 == 0
    assert f.file_size - f.data_offset == 128  # 32 f32 padded to 64


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "not a GGUF file"),
        (b"PK\x03\x04 a zip", "not a GGUF file"),
        (b"GGUF" + struct.pack("<I", 1), "GGUF version 1"),
        (b"GGUF" + struct.pack("<IQQ", 3, 1, 1) + struct.pack("<Q", 100) + b"short", "truncated"),
    ],
)
def test_bad_files_say_what_is_wrong(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    with pytest.raises(gguf.GGUFError, match=expected):
        gguf.read(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(gguf.GGUFError, match="no such GGUF file"):
        gguf.read(tmp_path / "nope.gguf")
    with pytest.raises(gguf.GGUFError, match="is a directory"):
        gguf.read(tmp_path)


def test_real_smollm2(smollm: Path) -> None:
    f = gguf.read(smollm)
    assert f.architecture == "llama"
    assert f.arch_key("block_count") == 30
    assert f.arch_key("embedding_length") == 576
    assert f.arch_key("attention.head_count") == 9
    assert f.arch_key("attention.head_count_kv") == 3
    assert f.arch_key("context_length") == 8192
    assert len(f.metadata["tokenizer.ggml.tokens"]) == 49152
    assert len(f.tensors) == 272
    types = {t.type_name for t in f.tensors}
    assert types == {"Q4_1", "F32", "Q8_0"}
    # Every tensor's computed size adds up to exactly the file's data section.
    assert f.tensor_bytes == f.file_size - f.data_offset == 96_576_768
