"""Read a GGUF file's header (metadata and tensor infos) from its first bytes, without its weights.

Why: a GGUF file states its own architecture and the exact type and shape of every tensor, so the weights,
the KV cache and the fit can come from the file itself rather than from a guess. The header sits at the start
of the file, but its length is only known once parsed (tokenizer vocabularies make it megabytes), so the
caller fetches a prefix and grows it until the `gguf` package's reader parses it, up to a cap: a hostile file
may declare a header of any size.

The `gguf` package (llama.cpp's own reader) is imported lazily inside functions, so importing core.sizing
stays standard-library only.
"""

from __future__ import annotations

import math
import os
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.errors import QuantLensError

FIRST_READ_BYTES = 1 * 2**20
MAX_HEADER_BYTES = 32 * 2**20
# Counted before anything is built (a hostile header of 199,000 tensor infos or 200 arrays of 4,096 strings took
# ~1 GB through the gguf reader). Real files: ~1,100 tensors (Llama-3.1-405B, DeepSeek-V3) and ~50 metadata keys.
MAX_TENSORS = 65_536
MAX_KV = 10_000
MAX_DIMS = 8
GGUF_MAGIC = b"GGUF"
_ARRAY_VALUES_KEPT = 4096  # per-layer arrays (head_count_kv, sliding-window patterns) are short; vocabularies are not
MAX_ARRAYS = 64  # metadata arrays: a real file has a handful (tokens, scores, types, merges, per-layer values)
# Strings in all arrays together, counted from the declared lengths before any is walked: real files hold at most
# ~650,000 (gpt-oss: 201,088 tokens + 446,189 merges).
MAX_ARRAY_STRINGS = 2_000_000
_TOTAL_ARRAY_VALUES_KEPT = 65_536  # all kept numeric arrays together; the rest are known by length only

# GGUF `general.architecture` -> config.json model_type, where the names differ.
_MODEL_TYPES = {"qwen2moe": "qwen2_moe", "qwen3moe": "qwen3_moe", "gpt-oss": "gpt_oss", "gptoss": "gpt_oss",
                "gemma3": "gemma3_text", "deepseek2": "deepseek_v2", "gptneox": "gpt_neox", "phi2": "phi",
                "olmo2": "olmo2", "command-r": "cohere"}


@dataclass(frozen=True)
class GgufTensorInfo:
    name: str
    shape: tuple[int, ...]
    ggml_type: str
    nbytes: int

    @property
    def elements(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class GgufHeader:
    """What a GGUF header says: metadata (scalars, strings, short arrays; long arrays by length) and tensors."""

    header_bytes: int
    metadata: dict[str, Any] = field(default_factory=dict)
    array_lengths: dict[str, int] = field(default_factory=dict)
    tensors: tuple[GgufTensorInfo, ...] = ()

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    @property
    def parameters(self) -> int:
        return sum(t.elements for t in self.tensors)

    @property
    def tensor_bytes(self) -> int:
        """Exact bytes of all tensor data, from each tensor's own type and shape."""
        return sum(t.nbytes for t in self.tensors)

    @property
    def file_type(self) -> str | None:
        """llama.cpp's name for the file's quantization mix (Q4_K_M, Q8_0, F16...), from general.file_type."""
        raw = self.metadata.get("general.file_type")
        if not isinstance(raw, int):
            return None
        from gguf import LlamaFileType

        try:
            name = LlamaFileType(raw).name
        except ValueError:
            return None
        return name.removeprefix("MOSTLY_").removeprefix("ALL_")

    def type_counts(self) -> dict[str, int]:
        """Bytes per ggml type, largest first (what the file really stores)."""
        out: dict[str, int] = {}
        for t in self.tensors:
            out[t.ggml_type] = out.get(t.ggml_type, 0) + t.nbytes
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _bad(label: str, why: str) -> QuantLensError:
    return QuantLensError("hub_bad_gguf", f"The GGUF file {label} cannot be read: {why}.")


def _scalar(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    return value


class _NeedMore(Exception):
    """The prefix ends inside the header; `hint` is an estimate of the header's length so far (0 = unknown)."""

    def __init__(self, hint: int = 0) -> None:
        super().__init__(hint)
        self.hint = hint


_FIXED_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}  # GGUFValueType -> bytes
_STRING, _ARRAY = 8, 9


_RawTensor = tuple[str, tuple[int, ...], int]  # name, dims as stored (innermost first), ggml type number


@dataclass
class _Progress:
    """Where the walk stopped when the prefix ran out: the next walk resumes at the last whole key or tensor, so a
    header fetched in several growing reads is walked about once, not once per read."""

    pos: int = 24
    kv_done: int = 0
    tensors_done: int = 0
    kept_values: int = 0
    strings: int = 0
    out: list[bytes] = field(default_factory=list)
    lengths: dict[str, int] = field(default_factory=dict)
    tensors: list[_RawTensor] = field(default_factory=list)


def _scan(buf: bytes, label: str, progress: _Progress | None = None
          ) -> tuple[int, bytes, dict[str, int], list[_RawTensor]]:
    """Walk the header with struct (fast): its end, a compact copy of its metadata, array lengths, tensor infos.

    Why: the gguf reader builds several numpy objects per string and per tensor info, so a 128k-token vocabulary
    takes tens of seconds and 200 x 4,096 short strings or 199,000 tensor infos take ~1 GB. Here nothing is built
    per array element: the compact copy keeps every key and scalar but empties every string array (no sizing rule
    reads one) and numeric arrays beyond _ARRAY_VALUES_KEPT values (or _TOTAL_ARRAY_VALUES_KEPT together), their
    lengths recorded; tensor infos are read here as plain tuples (at most MAX_TENSORS, checked before the walk).
    """
    unpack = struct.unpack_from
    n = len(buf)

    def need(pos: int, size: int) -> None:
        if pos + size > n:
            raise _NeedMore

    def string_end(pos: int) -> int:
        need(pos, 8)
        (length,) = unpack("<Q", buf, pos)
        if length > MAX_HEADER_BYTES:
            raise _bad(label, "a string is longer than the header limit")
        need(pos + 8, length)
        return pos + 8 + length

    need(0, 24)
    _version, tensor_count, kv_count = unpack("<IQQ", buf, 4)
    p = progress if progress is not None else _Progress()
    if not p.out:
        p.out.append(buf[:8] + struct.pack("<Q", 0) + buf[16:24])  # the reader sees no tensor infos (read below)
    pos, out, lengths, kept_values = p.pos, p.out, p.lengths, p.kept_values
    for _ in range(p.kv_done, kv_count):
        key_start = pos
        pos = string_end(pos)
        key = buf[key_start + 8 : pos].decode("utf-8", errors="replace")
        need(pos, 4)
        (vtype,) = unpack("<I", buf, pos)
        pos += 4
        if vtype == _STRING:
            pos = string_end(pos)
        elif vtype in _FIXED_SIZES:
            need(pos, _FIXED_SIZES[vtype])
            pos += _FIXED_SIZES[vtype]
        elif vtype == _ARRAY:
            if len(lengths) >= MAX_ARRAYS:
                raise QuantLensError("hub_header_too_large", f"The GGUF file {label} holds more than {MAX_ARRAYS} "
                                                             "metadata arrays, far beyond any model file; it is not read.")
            need(pos, 12)
            itype, count = unpack("<IQ", buf, pos)
            body = pos + 12
            if itype == _STRING:  # inlined: a vocabulary is 100,000s of strings
                if p.strings + count > MAX_ARRAY_STRINGS:
                    raise QuantLensError("hub_header_too_large", f"The GGUF file {label} declares more than "
                                                                 f"{MAX_ARRAY_STRINGS:,} strings in its metadata arrays, "
                                                                 "far beyond any model file; it is not read.")
                end = body
                for i in range(count):
                    if end + 8 > n:  # a vocabulary: its length so far predicts where it ends
                        raise _NeedMore(body + (end - body) * count // max(i, 1))
                    (length,) = unpack("<Q", buf, end)
                    if length > MAX_HEADER_BYTES:
                        raise _bad(label, "a string is longer than the header limit")
                    end += 8 + length
                need(end, 0)
            elif itype in _FIXED_SIZES:
                end = body + _FIXED_SIZES[itype] * count
                need(end, 0)
            else:
                raise _bad(label, f"metadata {key[:60]!r} is a nested array, which no model file uses")
            lengths[key] = count
            p.strings += count if itype == _STRING else 0
            if itype == _STRING or count > _ARRAY_VALUES_KEPT or kept_values + count > _TOTAL_ARRAY_VALUES_KEPT:
                out.append(buf[key_start:body - 8] + struct.pack("<Q", 0))
            else:
                kept_values += count
                out.append(buf[key_start:end])
            pos = end
        else:
            raise _bad(label, f"metadata {key[:60]!r} has an unknown value type {vtype}")
        if vtype != _ARRAY:
            out.append(buf[key_start:pos])
        p.pos, p.kept_values = pos, kept_values
        p.kv_done += 1
    tensors = p.tensors
    for _ in range(p.tensors_done, tensor_count):
        name_start = pos
        pos = string_end(pos)
        need(pos, 4)
        (n_dims,) = unpack("<I", buf, pos)
        if n_dims > MAX_DIMS:
            raise _bad(label, "a tensor has more dimensions than any model uses")
        need(pos, 4 + 8 * n_dims + 12)
        dims = unpack(f"<{n_dims}Q", buf, pos + 4)
        (ggml_type,) = unpack("<I", buf, pos + 4 + 8 * n_dims)
        tensors.append((buf[name_start + 8 : pos].decode("utf-8", errors="replace"), dims, ggml_type))
        pos += 4 + 8 * n_dims + 4 + 8
        p.pos = pos
        p.tensors_done += 1
    return pos, b"".join(out), lengths, tensors


def _parse(compact: bytes, header_bytes: int, lengths: dict[str, int], raw_tensors: list[_RawTensor], file_bytes: int,
           label: str) -> GgufHeader:
    """Parse a complete (compacted) header's metadata with the gguf package's own reader; type the tensor infos."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader, GGUFValueType

    class _HeaderOnlyReader(GGUFReader):
        """GGUFReader maps tensor data after the header; here there is none, so only the infos are kept."""

        def _build_tensors(self, start_offs: int, fields: list) -> None:  # type: ignore[override]
            self.tensor_fields = fields

    with tempfile.TemporaryDirectory(prefix="quantlens-gguf-") as folder:
        path = os.path.join(folder, "header.gguf")
        with open(path, "wb") as handle:
            handle.write(compact)
        try:
            reader = _HeaderOnlyReader(path)
        except (IndexError, ValueError, OverflowError, UnicodeDecodeError, KeyError, struct.error, TypeError) as exc:
            raise _bad(label, f"its header is malformed ({type(exc).__name__})") from None
        fields = list(reader.fields.values())
        metadata: dict[str, Any] = {}
        for f in fields:
            if f.name.startswith("GGUF."):
                continue
            main = f.types[0] if f.types else None
            if main == GGUFValueType.ARRAY:
                kept = f.name in lengths and lengths[f.name] == len(f.data)  # not emptied by _scan
                if kept and f.types[-1] != GGUFValueType.STRING:
                    metadata[f.name] = [_scalar(v) for v in f.contents()]
            else:
                metadata[f.name] = _scalar(f.contents())
        del reader, fields  # drops the memmap before the folder is removed
    tensors = []
    for name, dims, type_number in raw_tensors:
        try:
            qtype = GGMLQuantizationType(type_number)
            block, type_size = GGML_QUANT_SIZES[qtype]
        except (ValueError, KeyError):
            raise _bad(label, f"tensor {name[:60]!r} has an unknown type") from None
        elements = math.prod(dims)
        if elements % block:
            raise _bad(label, f"tensor {name[:60]!r} does not fill whole {qtype.name} blocks")
        tensors.append(GgufTensorInfo(name, tuple(reversed(dims)), qtype.name, elements // block * type_size))
    if sum(t.nbytes for t in tensors) > file_bytes:
        raise _bad(label, "its tensors add up to more bytes than the file holds")
    return GgufHeader(header_bytes=header_bytes, metadata=metadata, array_lengths=dict(lengths), tensors=tuple(tensors))


def read_gguf_header(fetch: Callable[[int, int], bytes], file_bytes: int, label: str = "",
                     max_header_bytes: int = MAX_HEADER_BYTES, first_read_bytes: int | None = None) -> GgufHeader:
    """Fetch a growing prefix (`fetch(start, stop)` returns bytes start..stop-1) until the whole header is in it.

    Reads at most `max_header_bytes`; a header larger than that is refused with `hub_header_too_large`.
    """
    label = label or "(file)"
    have = fetch(0, min(first_read_bytes or FIRST_READ_BYTES, max_header_bytes, file_bytes))
    if len(have) < 24 or have[:4] != GGUF_MAGIC:
        raise _bad(label, "it does not start with the GGUF magic bytes")
    version, tensor_count, kv_count = struct.unpack("<IQQ", have[4:24])
    if version not in (2, 3):
        raise _bad(label, f"GGUF version {version} is not supported")
    if tensor_count > MAX_TENSORS or kv_count > MAX_KV:
        raise _bad(label, f"it declares {tensor_count:,} tensors and {kv_count:,} metadata keys, beyond any real model")
    progress = _Progress()
    while True:
        try:
            end, compact, lengths, raw_tensors = _scan(have, label, progress)
            return _parse(compact, end, lengths, raw_tensors, file_bytes, label)
        except _NeedMore as more:
            hint = more.hint
        if len(have) >= min(file_bytes, max_header_bytes):
            if len(have) >= file_bytes:
                raise _bad(label, "its header runs past the end of the file")
            raise QuantLensError(
                "hub_header_too_large",
                f"The GGUF file {label} has a header larger than {max_header_bytes // 2**20} MiB, so it is not read.")
        stop = min(file_bytes, max_header_bytes, max(len(have) * 2, hint + FIRST_READ_BYTES))
        more = fetch(len(have), stop)
        if not more:
            raise _bad(label, "the server returned no more bytes of its header")
        have += more


def config_from_gguf(h: GgufHeader) -> dict[str, Any]:
    """GGUF metadata -> a config.json-like dict, so the file's architecture goes through the same validator."""
    arch = h.architecture
    m = h.metadata

    def get(key: str) -> Any:
        value = m.get(f"{arch}.{key}")
        if isinstance(value, list):  # per-layer values (e.g. head_count_kv on hybrid models): the largest counts
            numbers = [v for v in value if isinstance(v, (int, float))]
            return max(numbers) if numbers else None
        return value

    names = {t.name for t in h.tensors}
    vocab = h.array_lengths.get("tokenizer.ggml.tokens")
    if not vocab:
        emb = next((t for t in h.tensors if t.name == "token_embd.weight"), None)
        vocab = emb.shape[0] if emb is not None and emb.shape else None
    config: dict[str, Any] = {
        "model_type": _MODEL_TYPES.get(arch, arch.replace("-", "_")),
        "hidden_size": get("embedding_length"),
        "num_hidden_layers": get("block_count"),
        "num_attention_heads": get("attention.head_count"),
        "num_key_value_heads": get("attention.head_count_kv"),
        "head_dim": get("attention.key_length"),
        "intermediate_size": get("feed_forward_length"),
        "max_position_embeddings": get("context_length"),
        "vocab_size": vocab,
        "num_local_experts": get("expert_count"),
        "num_experts_per_tok": get("expert_used_count"),
        "moe_intermediate_size": get("expert_feed_forward_length"),
        "sliding_window": get("attention.sliding_window"),
        "tie_word_embeddings": "output.weight" not in names,
    }
    return {k: v for k, v in config.items() if v is not None and v != 0}
