"""Read and check a .safetensors header in pure Python, before any library maps the file.

Why our own parser: the header decides how many bytes a loader will map and allocate. A header that lies
(offsets past the end, overlapping tensors, a shape whose product does not match its byte range, a 10^15
element shape) must be refused with `invalid_weights` here, so torch/safetensors never see it. Only the
8-byte length prefix and the JSON header are read; tensor bytes are never touched.

Layout (https://github.com/huggingface/safetensors): u64 little-endian N, N bytes of UTF-8 JSON
{"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}}, then the data
buffer. Offsets are relative to the start of the data buffer; tensors must tile it exactly.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from core.errors import QuantLensError

# Bits per element of every dtype safetensors knows. Sub-byte types (F4, F6) are stored packed.
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32,
    "I64": 64, "U64": 64, "F64": 64, "C64": 64,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}

DEFAULT_MAX_HEADER_BYTES = 16 * 2**20  # real headers are KBs; safetensors itself allows 100 MB
MAX_RANK = 16
MAX_TENSORS = 1_000_000
MAX_DIM = 2**53  # beyond this a dimension cannot be a real tensor and JSON doubles lose precision


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def elements(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class SafetensorsHeader:
    """What a checked header says: tensors in file order, their byte totals, and the metadata strings."""

    header_bytes: int
    data_bytes: int
    tensors: tuple[TensorEntry, ...]
    metadata: dict[str, str]

    @property
    def total_elements(self) -> int:
        return sum(t.elements for t in self.tensors)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(t.name for t in self.tensors)


def _bad(label: str, why: str) -> QuantLensError:
    return QuantLensError("invalid_weights", f"The weights file {label} is not a valid safetensors file: {why}.")


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """Rust's serde and Python's json disagree on duplicate keys; refuse them so both read the same header."""
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_header_bytes(raw: bytes, file_bytes: int, *, label: str = "", max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
                       ) -> SafetensorsHeader:
    """Check a header given its first 8 + N bytes and the total file size (pure, for tests and fuzzing)."""
    label = label or "(upload)"
    if file_bytes < 8 or len(raw) < 8:
        raise _bad(label, "it is shorter than the 8-byte header length")
    (header_len,) = struct.unpack("<Q", raw[:8])
    if header_len < 2:
        raise _bad(label, "the header is empty")
    if header_len > max_header_bytes:
        raise _bad(label, f"the header claims {header_len} bytes, more than the {max_header_bytes}-byte limit")
    if 8 + header_len > file_bytes:
        raise _bad(label, "the header length is larger than the file")
    if len(raw) < 8 + header_len:
        raise _bad(label, "the header is truncated")
    text_bytes = raw[8 : 8 + header_len]
    if not text_bytes.lstrip(b" ").startswith(b"{"):
        raise _bad(label, "the header is not a JSON object")
    try:
        header = json.loads(text_bytes.decode("utf-8"), object_pairs_hook=_no_duplicate_keys,
                            parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _bad(label, f"the header is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(header, dict):
        raise _bad(label, "the header is not a JSON object")
    if len(header) > MAX_TENSORS:
        raise _bad(label, "the header lists too many tensors")

    data_bytes = file_bytes - 8 - header_len
    metadata: dict[str, str] = {}
    tensors: list[TensorEntry] = []
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise _bad(label, "__metadata__ must map strings to strings")
            metadata = dict(entry)
            continue
        tensors.append(_check_entry(label, name, entry, data_bytes))

    tensors.sort(key=lambda t: (t.begin, t.end))
    position = 0
    for tensor in tensors:
        if tensor.begin != position:
            why = "overlaps another tensor" if tensor.begin < position else "leaves a gap before it"
            raise _bad(label, f"tensor {tensor.name!r} {why}")
        position = tensor.end
    if position != data_bytes:
        raise _bad(label, f"the tensors cover {position} bytes but the file holds {data_bytes} bytes of data")
    return SafetensorsHeader(header_bytes=header_len, data_bytes=data_bytes, tensors=tuple(tensors), metadata=metadata)


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _check_entry(label: str, name: str, entry: object, data_bytes: int) -> TensorEntry:
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise _bad(label, f"tensor {name!r} must have exactly dtype, shape and data_offsets")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        raise _bad(label, f"tensor {name!r} has an unknown dtype")
    if not isinstance(shape, list) or len(shape) > MAX_RANK or not all(_is_int(d) and 0 <= d <= MAX_DIM for d in shape):
        raise _bad(label, f"tensor {name!r} has an invalid shape")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)):
        raise _bad(label, f"tensor {name!r} has invalid data_offsets")
    begin, end = offsets
    if not 0 <= begin <= end <= data_bytes:
        raise _bad(label, f"tensor {name!r} points outside the data")
    # Python ints never overflow, so this catches the shape-product overflow a C loader would miss.
    bits = math.prod(shape) * DTYPE_BITS[dtype]
    if bits % 8 or bits // 8 != end - begin:
        raise _bad(label, f"tensor {name!r} has a shape and dtype that do not match its {end - begin} bytes")
    return TensorEntry(name=name, dtype=dtype, shape=tuple(shape), begin=begin, end=end)


def read_header(path: Path, *, max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES, label: str | None = None
                ) -> SafetensorsHeader:
    """Check the header of the file at `path`, reading only the header bytes (never the tensor data)."""
    label = label if label is not None else path.name
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as handle:
        file_bytes = os.fstat(handle.fileno()).st_size
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise _bad(label, "it is shorter than the 8-byte header length")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > max_header_bytes or 8 + header_len > file_bytes:
            return parse_header_bytes(prefix, file_bytes, label=label, max_header_bytes=max_header_bytes)
        raw = prefix + handle.read(header_len)
    return parse_header_bytes(raw, file_bytes, label=label, max_header_bytes=max_header_bytes)
