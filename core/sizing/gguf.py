"""GGUF file sizes per tensor, following llama.cpp's own type-selection rules.

Why per tensor: a GGUF "Q4_K_M" is not 4.5 bits everywhere. llama.cpp (src/llama-quant.cpp,
`llama_tensor_get_type`) keeps the output layer at Q6_K, gives attn_v and ffn_down Q6_K on about half
the layers ("use_more_bits"), bumps attention tensors for GQA and 8-expert models, falls back to
other types when a row length is not a multiple of the block size, and never quantizes 1-D tensors
(norms, biases) or MoE routers. One flat bits-per-weight per type is right for one shape at most.

This module re-implements those rules (as of llama.cpp's 2025-2026 sources; without an importance
matrix unless asked, except for the types llama.cpp cannot make without one) over the tensor list from
`core.sizing.architecture`, and sizes each tensor with ggml's block layouts (ggml/src/ggml-common.h). It
reproduces the Llama-3-8B table in llama.cpp's tools/quantize/quantize.cpp to within 0.2% for every
listed type, and published imatrix GGUF files of Llama-3.1-70B to within 0.5%.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from core.errors import QuantLensError
from core.sizing.architecture import Architecture, Tensor, tensor_inventory


@dataclass(frozen=True)
class GgmlType:
    """A ggml storage type: `block_bytes` bytes hold `block_size` weights."""

    name: str
    block_size: int
    block_bytes: int

    @property
    def bits_per_weight(self) -> float:
        return 8 * self.block_bytes / self.block_size

    def row_bytes(self, n: int) -> int:
        return (n // self.block_size) * self.block_bytes


_TYPES = [
    GgmlType("F32", 1, 4), GgmlType("F16", 1, 2), GgmlType("BF16", 1, 2),
    GgmlType("Q8_0", 32, 34), GgmlType("Q5_1", 32, 24), GgmlType("Q5_0", 32, 22), GgmlType("Q4_1", 32, 20),
    GgmlType("Q4_0", 32, 18), GgmlType("IQ4_NL", 32, 18), GgmlType("MXFP4", 32, 17),
    GgmlType("Q6_K", 256, 210), GgmlType("Q5_K", 256, 176), GgmlType("Q4_K", 256, 144),
    GgmlType("Q3_K", 256, 110), GgmlType("Q2_K", 256, 84), GgmlType("IQ4_XS", 256, 136),
    GgmlType("IQ3_S", 256, 110), GgmlType("IQ3_XXS", 256, 98), GgmlType("IQ2_S", 256, 82),
    GgmlType("IQ2_XS", 256, 74), GgmlType("IQ2_XXS", 256, 66), GgmlType("IQ1_M", 256, 56),
    GgmlType("IQ1_S", 256, 50), GgmlType("TQ1_0", 256, 54), GgmlType("TQ2_0", 256, 66),
]
GGML_TYPES: dict[str, GgmlType] = {t.name: t for t in _TYPES}

# llama_ftype -> default tensor type (llama_ftype_get_default_type)
FTYPE_DEFAULT: dict[str, str] = {
    "F32": "F32", "F16": "F16", "BF16": "BF16", "Q8_0": "Q8_0", "Q6_K": "Q6_K",
    "Q5_K_M": "Q5_K", "Q5_K_S": "Q5_K", "Q5_1": "Q5_1", "Q5_0": "Q5_0",
    "Q4_K_M": "Q4_K", "Q4_K_S": "Q4_K", "Q4_1": "Q4_1", "Q4_0": "Q4_0",
    "Q3_K_L": "Q3_K", "Q3_K_M": "Q3_K", "Q3_K_S": "Q3_K", "Q2_K": "Q2_K", "Q2_K_S": "Q2_K",
    "IQ4_NL": "IQ4_NL", "IQ4_XS": "IQ4_XS", "IQ3_M": "IQ3_S", "IQ3_S": "IQ3_S", "IQ3_XS": "IQ3_S",
    "IQ3_XXS": "IQ3_XXS", "IQ2_M": "IQ2_S", "IQ2_S": "IQ2_XS", "IQ2_XS": "IQ2_XS", "IQ2_XXS": "IQ2_XXS",
    "IQ1_M": "IQ1_M", "IQ1_S": "IQ1_S", "MXFP4_MOE": "MXFP4", "TQ1_0": "TQ1_0", "TQ2_0": "TQ2_0",
}

_FALLBACK = {
    "IQ1_S": "IQ4_NL", "IQ1_M": "IQ4_NL", "IQ2_XXS": "IQ4_NL", "IQ2_XS": "IQ4_NL", "IQ2_S": "IQ4_NL",
    "IQ3_XXS": "IQ4_NL", "IQ3_S": "IQ4_NL", "IQ4_XS": "IQ4_NL", "Q2_K": "Q4_0", "Q3_K": "Q4_0",
    "TQ1_0": "Q4_0", "TQ2_0": "Q4_0", "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0",
}
_LOW_BIT_IQ = {"IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M"}
# llama-quantize stops with "this quantization requires an importance matrix" for these file types.
IMATRIX_REQUIRED = frozenset({"IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ3_XXS", "Q2_K_S"})
_QUANTIZED = {name for name, t in GGML_TYPES.items() if t.block_size > 1}

# Header (metadata key/values, tokenizer vocabulary and merges, tensor infos): measured GGUF headers run
# ~40-60 bytes per vocabulary entry (token string, score, type, plus BPE merges) and ~100 bytes per tensor.
HEADER_BYTES_PER_VOCAB = 48
HEADER_BYTES_PER_TENSOR = 96
HEADER_FIXED_BYTES = 16_384


@dataclass(frozen=True)
class TensorPlan:
    name: str
    ggml_type: str
    numel: int
    bytes: int


def _use_more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def _category(name: str) -> str:
    if name == "output.weight":
        return "output"
    if name == "token_embd.weight":
        return "token_embd"
    for key, cat in (
        ("attn_qkv.weight", "attn_qkv"), ("attn_kv_b.weight", "attn_kv_b"), ("attn_v.weight", "attn_v"),
        ("attn_k.weight", "attn_k"), ("attn_q.weight", "attn_q"), ("attn_output.weight", "attn_output"),
        ("ffn_up", "ffn_up"), ("ffn_gate", "ffn_gate"), ("ffn_down", "ffn_down"),
    ):
        if key in name:
            return cat
    return "other"


def _allows_quantization(t: Tensor) -> bool:
    """tensor_allows_quantization: 2-D/3-D '*weight' tensors except norms, routers, positions."""
    name = t.name
    return (
        len(t.shape) >= 2
        and name.endswith("weight")
        and "_norm.weight" not in name
        and "ffn_gate_inp" not in name
        and name not in ("position_embd.weight", "token_types.weight")
    )


def _written_as_f32(t: Tensor) -> bool:
    """convert_hf_to_gguf.py writes 1-D tensors, MoE routers and position embeddings as F32 even in a
    16-bit file; llama-quantize then leaves them as they are."""
    return len(t.shape) < 2 or "ffn_gate_inp" in t.name or t.name in ("position_embd.weight", "token_types.weight")


def _is_70b(a: Architecture) -> bool:
    """llama.cpp's LLM_TYPE_70B for Llama/Qwen2-style 80-layer GQA models (gets attn_v bumped to Q5_K)."""
    return a.model_type in ("llama", "mistral", "qwen2") and a.num_layers == 80 and a.gqa_ratio > 1


@dataclass(frozen=True)
class _TensorInfo:
    """Per-tensor facts that do not depend on the file type, computed once per architecture."""

    tensor: Tensor
    category: str
    quantizable: bool
    source_is_f32: bool  # written as F32 by convert_hf_to_gguf.py (1-D, routers, positions)
    rows: int


@lru_cache(maxsize=256)
def _tensor_infos(a: Architecture) -> tuple[_TensorInfo, ...]:
    return tuple(
        _TensorInfo(t, _category(t.name), _allows_quantization(t), _written_as_f32(t),
                    t.numel // t.row_length)
        for t in tensor_inventory(a)
    )


class _State:
    def __init__(self, a: Architecture, infos: tuple[_TensorInfo, ...]) -> None:
        self.n_attention_wv = sum(1 for i in infos if i.category in ("attn_v", "attn_qkv", "attn_kv_b"))
        self.has_output = any(i.category == "output" for i in infos)
        self.i_attention_wv = 0
        self.n_layer = a.num_layers
        self.gqa = a.gqa_ratio
        self.n_expert = a.moe.num_experts if a.moe else 0
        self.is_70b = _is_70b(a)
        self.is_falcon = a.model_type == "falcon"
        self.imatrix = False


def _rule(s: _State, t: Tensor, ftype: str, new: str, cat: str) -> str:  # noqa: C901 - mirrors llama.cpp
    """llama_tensor_get_type_impl: the per-tensor type for a quantized ftype (no --tensor-type overrides)."""
    gqa, n_exp = s.gqa, s.n_expert
    if cat == "output" or (not s.has_output and cat == "token_embd"):
        if ftype == "MXFP4_MOE" or s.is_falcon or t.row_length % GGML_TYPES[new].block_size:
            return "Q8_0"
        if ftype in ("IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M"):
            return "Q5_K"
        return new if new == "Q8_0" else "Q6_K"
    if ftype == "MXFP4_MOE":
        return "MXFP4" if len(t.shape) == 3 else "Q8_0"
    if cat == "token_embd":
        if ftype in ("IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ1_M"):
            return "Q2_K"
        if ftype in ("IQ2_S", "IQ2_M", "IQ3_XXS"):
            return "IQ3_S"
        if ftype in ("TQ1_0", "TQ2_0"):
            return "Q4_K"
        return new
    i_layer = t.layer if t.layer is not None else 0
    n_layer = s.n_layer
    # Only `attn_v.weight` takes the attn_v branch: the llama.cpp builds that made the published files
    # (e.g. b4456, b6096; src/llama-quant.cpp `name.find("attn_v.weight")`) give fused attn_qkv its own,
    # milder branch below, and attn_kv_b none. (Late-2025 sources fold qkv/kv_b into the attn_v category.)
    is_v = cat == "attn_v"
    if ftype in _LOW_BIT_IQ:
        if is_v:
            s.i_attention_wv += 1
            if gqa >= 4 or n_exp >= 4:
                return "Q4_K"
            return "IQ3_S" if ftype in ("IQ2_S", "IQ2_M") else "Q2_K"
        if n_exp == 8 and cat == "attn_k":
            return "Q4_K"
        if cat == "ffn_down":
            if i_layer < n_layer // 8:
                return "IQ3_S" if ftype in ("IQ2_S", "IQ2_M") else "Q2_K"
            return new
        if cat == "attn_output":
            if n_exp == 8:
                return "Q5_K"
            if ftype in ("IQ1_S", "IQ1_M"):
                return "IQ2_XXS"
            if ftype in ("IQ2_S", "IQ2_M"):
                return "IQ3_S"
        return new
    if is_v:
        i = s.i_attention_wv
        if ftype == "Q2_K":
            new = "Q4_K" if gqa >= 4 else "Q3_K"
        elif ftype == "Q2_K_S" and gqa >= 4:
            new = "Q4_K"
        elif ftype == "IQ3_XXS":
            new = "Q4_K" if gqa >= 4 else ("IQ3_XXS" if s.imatrix else "IQ3_S")
        elif ftype in ("IQ3_XS", "IQ3_S") and gqa >= 4 or ftype == "IQ3_M":
            new = "Q4_K"
        elif ftype == "Q3_K_M":
            new = "Q5_K" if i < 2 else "Q4_K"
        elif ftype == "Q3_K_L" or ftype in ("IQ4_NL", "IQ4_XS") and gqa >= 4:
            new = "Q5_K"
        elif ftype in ("Q4_K_M", "Q5_K_M") and _use_more_bits(i, s.n_attention_wv):
            new = "Q6_K"
        elif ftype == "Q4_K_S" and i < 4:
            new = "Q5_K"
        if s.is_70b and new in ("Q3_K", "Q4_K"):
            new = "Q5_K"
        if n_exp == 8:
            new = "Q8_0"
        s.i_attention_wv += 1
        return new
    if cat == "attn_k":
        if n_exp == 8:
            return "Q8_0"
        if ftype == "IQ3_XS":
            return "IQ3_XXS"
        if ftype == "IQ3_XXS":
            return "IQ2_S"
        return new
    if cat == "attn_q":
        if ftype == "IQ3_XS":
            return "IQ3_XXS"
        if ftype == "IQ3_XXS":
            return "IQ2_S"
        return new
    if cat == "ffn_down":
        if ftype == "Q2_K":
            return "Q3_K"
        if ftype == "Q2_K_S":
            return "Q4_K" if i_layer < n_layer // 8 else new
        if ftype == "IQ3_XXS" and not s.imatrix:
            return "Q4_K" if i_layer < n_layer // 8 else "Q3_K"
        if ftype == "Q3_K_M":
            return "Q5_K" if i_layer < n_layer // 16 else "Q4_K"
        if ftype == "IQ3_M" and (i_layer < n_layer // 8 or (n_exp == 8 and _use_more_bits(i_layer, n_layer))):
            return "Q4_K"
        if ftype == "Q3_K_L":
            return "Q5_K"
        if ftype == "Q4_K_M":
            return "Q6_K" if _use_more_bits(i_layer, n_layer) else new
        if i_layer < n_layer // 8 and ftype in ("IQ4_NL", "IQ4_XS") and not s.imatrix:
            return "Q5_K"
        if ftype == "Q5_K_M" and _use_more_bits(i_layer, n_layer):
            return "Q6_K"
        if ftype == "Q4_K_S" and i_layer < n_layer // 8:
            return "Q5_K"
        if ftype in ("Q4_0", "Q5_0") and s.imatrix and i_layer < n_layer // 8:
            return "Q4_1" if ftype == "Q4_0" else "Q5_1"
        return new
    if cat == "attn_output":
        if n_exp == 8:
            if ftype in ("Q2_K", "IQ3_XS", "IQ3_XXS", "Q3_K_S", "Q3_K_M", "IQ4_NL", "Q4_K_S", "Q4_K_M", "IQ3_S",
                         "IQ3_M", "IQ4_XS"):
                return "Q5_K"
            return new
        return {"Q2_K": "Q3_K", "IQ3_XXS": "IQ3_S", "Q3_K_M": "Q4_K", "Q3_K_L": "Q5_K", "IQ3_M": "Q4_K"}.get(ftype, new)
    if cat == "attn_qkv":
        # llama-quant.cpp: `else if (name.find("attn_qkv.weight") != std::string::npos)` (Phi-3/Phi-4, Falcon...)
        if ftype in ("Q3_K_M", "Q3_K_L", "IQ3_M"):
            return "Q4_K"
        return {"Q4_K_M": "Q5_K", "Q5_K_M": "Q6_K"}.get(ftype, new)
    if cat in ("ffn_gate", "ffn_up"):
        if ftype == "IQ3_XS" and n_layer // 8 <= i_layer < 7 * n_layer // 8:
            return "IQ3_XXS"
        return new
    return new


def _fallback(t: Tensor, new: str) -> str:
    """tensor_type_fallback: a row length that is not a multiple of the block size forces another type."""
    block = GGML_TYPES[new].block_size
    if t.row_length % block == 0:
        return new
    alt = _FALLBACK.get(new)
    if alt is None or t.row_length % GGML_TYPES[alt].block_size:
        return "F16"
    return alt


def uses_imatrix(ftype: str, imatrix: bool | None = None) -> bool:
    """Whether to model the file as made with an importance matrix: as asked, else only for the types
    llama-quantize refuses to make without one (IQ1/IQ2, IQ3_XXS, Q2_K_S)."""
    return ftype.upper() in IMATRIX_REQUIRED if imatrix is None else imatrix


@lru_cache(maxsize=1024)
def plan(a: Architecture, ftype: str, imatrix: bool | None = None) -> tuple[TensorPlan, ...]:
    """The type and byte size llama-quantize gives every tensor of this architecture for `ftype`.

    `imatrix`: whether an importance matrix was used (it changes a few choices, e.g. Q4_0 keeps the first
    ffn_down layers at Q4_1 and IQ4_XS stops bumping them to Q5_K); None = only where llama.cpp requires one.
    An architecture read from the model's own definition is planned by core.sizing.gguf_inventory instead (llama.cpp
    b11434's converter names and llama-quantize rules); the hand-written families keep the rules below.
    """
    ftype = ftype.upper()
    if ftype not in FTYPE_DEFAULT:
        raise QuantLensError("unknown_gguf_type", f"Unknown GGUF type {ftype!r}; known: {', '.join(FTYPE_DEFAULT)}.")
    if a.inventory_key:
        from core.sizing import gguf_inventory

        if gguf_inventory.usable(a):
            # The model's own definition, named and typed as llama.cpp's converter and llama-quantize do
            # (core.sizing.gguf_map, checked against llama.cpp b11434); the vision/audio tower is the mmproj file.
            return tuple(TensorPlan(n, t, numel, size)
                         for n, t, numel, size in gguf_inventory.typed_tensors(a, ftype, uses_imatrix(ftype, imatrix)))
    default = FTYPE_DEFAULT[ftype]
    infos = _tensor_infos(a)
    state = _State(a, infos)
    state.imatrix = uses_imatrix(ftype, imatrix)
    quantized_default = default in _QUANTIZED
    out: list[TensorPlan] = []
    for info in infos:
        t = info.tensor
        src = "F32" if ftype == "F32" or info.source_is_f32 else "BF16" if ftype == "BF16" else "F16"
        if a.mxfp4_experts and t.role == "expert" and len(t.shape) == 3:
            # gpt-oss ships its experts in MXFP4; convert_hf_to_gguf.py writes them as MXFP4 even in an F16/BF16
            # file, and llama-quantize keeps them (`quantize = tensor->type != new_type`; requantizing is refused
            # without --allow-requantize), so every published gpt-oss GGUF keeps the experts at 4.25 bits.
            new = "MXFP4"
        elif quantized_default and info.quantizable:
            new = _fallback(t, _rule(state, t, ftype, default, info.category))
        elif not quantized_default and src != "F32":
            new = default
        else:
            new = src
        out.append(TensorPlan(t.name, new, info.rows * t.row_length, info.rows * GGML_TYPES[new].row_bytes(t.row_length)))
    return tuple(out)


def header_bytes(a: Architecture) -> int:
    """Approximate GGUF header: metadata, tokenizer vocabulary/merges and tensor infos (a few MB)."""
    if a.inventory_key:
        from core.sizing import gguf_inventory

        if gguf_inventory.usable(a):
            n_tensors = len(gguf_inventory.layout(a).tensors)
            return HEADER_FIXED_BYTES + HEADER_BYTES_PER_VOCAB * a.vocab_size + HEADER_BYTES_PER_TENSOR * n_tensors
    return HEADER_FIXED_BYTES + HEADER_BYTES_PER_VOCAB * a.vocab_size + HEADER_BYTES_PER_TENSOR * len(tensor_inventory(a))


@lru_cache(maxsize=1024)
def file_bytes(a: Architecture, ftype: str, imatrix: bool | None = None) -> int:
    """Size of the .gguf file llama.cpp writes for this architecture and file type."""
    return sum(p.bytes for p in plan(a, ftype, imatrix)) + header_bytes(a)


def type_mix(a: Architecture, ftype: str, imatrix: bool | None = None) -> dict[str, int]:
    """Parameters per ggml type in the file: shows what a K-quant mix is made of."""
    mix: dict[str, int] = {}
    for p in plan(a, ftype, imatrix):
        mix[p.ggml_type] = mix.get(p.ggml_type, 0) + p.numel
    return mix
