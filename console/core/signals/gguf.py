"""A GGUF metadata reader: header, key/value metadata and tensor infos. No weights are
read: the reader stops where the tensor data begins.

Format (little-endian; big-endian files are recognised by their version word):
``GGUF`` magic, u32 version (2 or 3), u64 tensor count, u64 KV count, the KV pairs
(string key, u32 type, value), then per tensor: name, u32 n_dims, u64 dims[n_dims],
u32 ggml type, u64 offset relative to the data section, which starts at the next
multiple of ``general.alignment`` (default 32).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from console.core.errors import UserError

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
# Arrays longer than this (the tokenizer's vocabulary) keep only their length and type.
MAX_KEPT_ARRAY = 1024

# GGUF value types.
_UINT8, _INT8, _UINT16, _INT16, _UINT32, _INT32, _FLOAT32, _BOOL, _STRING, _ARRAY = range(10)
_UINT64, _INT64, _FLOAT64 = 10, 11, 12
_SCALAR_FORMATS = {
    _UINT8: "B", _INT8: "b", _UINT16: "H", _INT16: "h", _UINT32: "I", _INT32: "i",
    _FLOAT32: "f", _BOOL: "?", _UINT64: "Q", _INT64: "q", _FLOAT64: "d",
}  # fmt: skip

# ggml tensor types: id -> (name, elements per block, bytes per block).
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 36),
    10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74), 18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50), 20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82), 23: ("IQ4_XS", 256, 136), 24: ("I8", 1, 1), 25: ("I16", 1, 2),
    26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8), 29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66), 39: ("MXFP4", 32, 17),
}  # fmt: skip
GGML_TYPE_IDS = {name: tid for tid, (name, _, _) in GGML_TYPES.items()}


class GGUFError(UserError):
    """Not a GGUF file, or a truncated/corrupt one; the message says which and where."""


@dataclass(frozen=True, slots=True)
class ArrayInfo:
    """A long array whose elements were skipped (e.g. ``tokenizer.ggml.tokens``)."""

    type: int
    length: int

    def __len__(self) -> int:
        return self.length


@dataclass(slots=True)
class TensorInfo:
    name: str
    shape: list[int]
    type: int
    offset: int

    @property
    def type_name(self) -> str:
        return GGML_TYPES.get(self.type, (f"type{self.type}", 1, 0))[0]

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        """Bytes of this tensor's data, as ggml_nbytes computes them."""
        return row_bytes(self.type, self.n_elements)


@dataclass(slots=True)
class GGUFFile:
    path: Path
    version: int
    metadata: dict[str, Any]
    tensors: list[TensorInfo] = field(default_factory=list)
    alignment: int = DEFAULT_ALIGNMENT
    data_offset: int = 0
    file_size: int = 0

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    def arch_key(self, name: str, default: Any = None) -> Any:
        """``{arch}.name`` from the metadata, e.g. ``arch_key("block_count")``."""
        return self.metadata.get(f"{self.architecture}.{name}", default)

    @property
    def tensor_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)


def row_bytes(ggml_type: int, n_elements: int) -> int:
    """ggml_row_size: bytes for ``n_elements`` of a (possibly block-quantised) type."""
    try:
        _, block, size = GGML_TYPES[ggml_type]
    except KeyError:
        raise GGUFError(f"unknown ggml tensor type {ggml_type}; twolane does not know its size") from None
    return n_elements * size // block


class _Reader:
    def __init__(self, fh: BinaryIO, path: Path, endian: str) -> None:
        self.fh = fh
        self.path = path
        self.e = endian

    def raw(self, n: int) -> bytes:
        data = self.fh.read(n)
        if len(data) != n:
            raise GGUFError(f"{self.path} is truncated (wanted {n} bytes at {self.fh.tell()})")
        return data

    def scalar(self, vtype: int) -> Any:
        fmt = self.e + _SCALAR_FORMATS[vtype]
        return struct.unpack(fmt, self.raw(struct.calcsize(fmt)))[0]

    def u32(self) -> int:
        return int(self.scalar(_UINT32))

    def u64(self) -> int:
        return int(self.scalar(_UINT64))

    def string(self) -> str:
        n = self.u64()
        if n > 1 << 30:
            raise GGUFError(f"{self.path} is corrupt (string of {n} bytes at {self.fh.tell()})")
        return self.raw(n).decode("utf-8", errors="replace")

    def skip_string(self) -> None:
        n = self.u64()
        self.fh.seek(n, 1)

    def value(self, vtype: int) -> Any:
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            etype, count = self.u32(), self.u64()
            return self.array(etype, count)
        if vtype in _SCALAR_FORMATS:
            return self.scalar(vtype)
        raise GGUFError(f"{self.path} is corrupt (unknown value type {vtype} at {self.fh.tell()})")

    def array(self, etype: int, count: int) -> list[Any] | ArrayInfo:
        if etype in _SCALAR_FORMATS:
            fmt = self.e + _SCALAR_FORMATS[etype]
            size = struct.calcsize(fmt)
            if count > MAX_KEPT_ARRAY:
                self.fh.seek(size * count, 1)
                return ArrayInfo(etype, count)
            data = self.raw(size * count)
            return [v[0] for v in struct.iter_unpack(fmt, data)]
        if etype == _STRING:
            if count > MAX_KEPT_ARRAY:
                for _ in range(count):
                    self.skip_string()
                return ArrayInfo(etype, count)
            return [self.string() for _ in range(count)]
        if count > MAX_KEPT_ARRAY:
            raise GGUFError(f"{self.path}: nested array of {count} elements is not supported")
        return [self.value(etype) for _ in range(count)]


def read(path: str | Path) -> GGUFFile:
    """Read a GGUF file's metadata and tensor infos (not its weights)."""
    path = Path(path).expanduser()
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        raise GGUFError(f"no such GGUF file: {path}") from None
    except IsADirectoryError:
        raise GGUFError(f"{path} is a directory; give the .gguf file inside it") from None
    with fh:
        magic = fh.read(4)
        if magic != MAGIC:
            raise GGUFError(f"{path} is not a GGUF file (its first bytes are {magic!r})")
        version_raw = fh.read(4)
        if len(version_raw) != 4:
            raise GGUFError(f"{path} is truncated (no version)")
        # A big-endian file reads as a huge little-endian version number.
        endian = "<" if struct.unpack("<I", version_raw)[0] < 0x10000 else ">"
        version = struct.unpack(endian + "I", version_raw)[0]
        if version not in (2, 3):
            raise GGUFError(f"{path} is GGUF version {version}; twolane reads versions 2 and 3")
        r = _Reader(fh, path, endian)
        n_tensors, n_kv = r.u64(), r.u64()
        if n_tensors > 1 << 24 or n_kv > 1 << 24:
            raise GGUFError(f"{path} is corrupt ({n_tensors} tensors, {n_kv} keys)")
        metadata: dict[str, Any] = {}
        for _ in range(n_kv):
            key = r.string()
            metadata[key] = r.value(r.u32())
        tensors = []
        for _ in range(n_tensors):
            name = r.string()
            n_dims = r.u32()
            if n_dims > 8:
                raise GGUFError(f"{path} is corrupt (tensor {name} has {n_dims} dimensions)")
            shape = [r.u64() for _ in range(n_dims)]
            tensors.append(TensorInfo(name, shape, r.u32(), r.u64()))
        alignment = int(metadata.get("general.alignment", DEFAULT_ALIGNMENT) or DEFAULT_ALIGNMENT)
        pos = fh.tell()
        data_offset = (pos + alignment - 1) // alignment * alignment
        fh.seek(0, 2)
        size = fh.tell()
    return GGUFFile(path, version, metadata, tensors, alignment, data_offset, size)


# ---- writing (tests and tools make small synthetic models with this) -------------------


def _pack_value(e: str, value: Any) -> tuple[int, bytes]:
    if isinstance(value, bool):
        return _BOOL, struct.pack(e + "?", value)
    if isinstance(value, int):
        if value < 0:
            return _INT32, struct.pack(e + "i", value)
        return (_UINT32, struct.pack(e + "I", value)) if value < 1 << 32 else (
            _UINT64, struct.pack(e + "Q", value))  # fmt: skip
    if isinstance(value, float):
        return _FLOAT32, struct.pack(e + "f", value)
    if isinstance(value, str):
        raw = value.encode()
        return _STRING, struct.pack(e + "Q", len(raw)) + raw
    if isinstance(value, list):
        if not value:
            return _ARRAY, struct.pack(e + "IQ", _UINT32, 0)
        parts = [_pack_value(e, v) for v in value]
        etype = parts[0][0]
        return _ARRAY, struct.pack(e + "IQ", etype, len(value)) + b"".join(p[1] for p in parts)
    raise TypeError(f"cannot write {type(value).__name__} to GGUF")


def write(
    path: str | Path,
    metadata: dict[str, Any],
    tensors: list[tuple[str, list[int], int]],
    *,
    version: int = 3,
    big_endian: bool = False,
    with_data: bool = False,
) -> Path:
    """Write a GGUF file with the given metadata and tensor infos (name, shape, type).

    Tensor data is written as zeros only when ``with_data``; otherwise the file ends at
    the data section, which the reader never needs.
    """
    e = ">" if big_endian else "<"
    path = Path(path)
    alignment = int(metadata.get("general.alignment", DEFAULT_ALIGNMENT))
    out = bytearray(MAGIC + struct.pack(e + "IQQ", version, len(tensors), len(metadata)))
    for key, value in metadata.items():
        raw = key.encode()
        vtype, payload = _pack_value(e, value)
        out += struct.pack(e + "Q", len(raw)) + raw + struct.pack(e + "I", vtype) + payload
    offset = 0
    sizes = []
    for name, shape, ttype in tensors:
        raw = name.encode()
        out += struct.pack(e + "Q", len(raw)) + raw + struct.pack(e + "I", len(shape))
        out += b"".join(struct.pack(e + "Q", d) for d in shape)
        out += struct.pack(e + "IQ", ttype, offset)
        n = 1
        for d in shape:
            n *= d
        size = row_bytes(ttype, n)
        sizes.append(size)
        offset += (size + alignment - 1) // alignment * alignment
    out += b"\0" * ((-len(out)) % alignment)
    if with_data:
        out += b"\0" * offset
    path.write_bytes(bytes(out))
    return path
