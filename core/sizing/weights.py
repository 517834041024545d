"""Bytes of model weights at a precision: ideal bit widths, and real formats with their true overheads.

- ideal: every parameter at exactly the nominal bits (int4 = 0.5 byte), so 7B at INT4 is 3.5 GB.
- GGUF: llama.cpp's per-tensor plan (core.sizing.gguf) when the architecture is known. For a bare parameter
  count there is no shape, so the type's whole-file bits per weight *on Llama-3-8B* is used, which is
  stated as an approximation.
- AWQ / GPTQ (4-bit, group 128), bitsandbytes NF4, FP8 with per-tensor scale: only the linear layers
  inside the blocks are quantized; embeddings, output layer, norms, biases and MoE routers stay 16-bit,
  which is how those libraries save checkpoints. Group scales/zeros (AWQ/GPTQ), GPTQ's int32 g_idx and
  FP8's per-tensor scales are counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from core.sizing import gguf
from core.sizing.architecture import Architecture, architecture_from_config, tensor_inventory
from core.sizing.precisions import Precision

# Llama-3-8B's shape: the reference for "bits per weight" of a GGUF type when no architecture is known.
LLAMA3_8B_CONFIG = {
    "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256, "tie_word_embeddings": False,
}
_QUANTIZED_ROLES = ("attention", "mlp", "expert", "shared_expert", "ssm")  # ssm: Mamba/linear-attention projections
GROUP_SIZE = 128


def _ceil(x: Fraction) -> int:
    return math.ceil(x)


@lru_cache(maxsize=64)
def gguf_bits_per_weight(ftype: str, arch: Architecture | None = None, imatrix: bool | None = None) -> Fraction:
    """Whole-file bits per parameter of a GGUF type on `arch` (default: Llama-3-8B's shape)."""
    from core.sizing.architecture import parameter_count

    a = arch or architecture_from_config(LLAMA3_8B_CONFIG)
    return Fraction(8 * gguf.file_bytes(a, ftype, imatrix), parameter_count(a))


@dataclass(frozen=True)
class _LinearStats:
    """What the real-format formulas need, summed once per architecture."""

    other_numel: int  # stays 16-bit: embeddings, output layer, norms, biases, routers
    linear_numel: int  # quantized linear weights inside the blocks
    groups: int  # group-128 scale/zero pairs (rows x ceil(in / 128))
    input_columns: int  # GPTQ g_idx entries (in_features per matrix)
    matrices: int  # FP8 per-tensor scales (one per matrix, per expert)


@lru_cache(maxsize=256)
def _linear_stats(a: Architecture) -> _LinearStats:
    other = linear = groups = columns = matrices = 0
    for t in tensor_inventory(a):
        if t.role not in _QUANTIZED_ROLES or len(t.shape) < 2:
            other += t.numel
            continue
        in_f = t.shape[-1]
        experts = t.shape[0] if len(t.shape) == 3 else 1
        linear += t.numel
        groups += (t.numel // in_f) * -(-in_f // GROUP_SIZE)
        columns += in_f * experts
        matrices += experts
    return _LinearStats(other, linear, groups, columns, matrices)


def _real_format_bytes(p: Precision, a: Architecture) -> int:
    s = _linear_stats(a)
    total = Fraction(2 * s.other_numel)
    if p.family in ("awq", "gptq"):
        # 4-bit weights + an FP16 scale and a 4-bit zero per group (+ GPTQ's int32 g_idx per input column)
        total += Fraction(s.linear_numel, 2) + Fraction(20 * s.groups, 8)
        if p.family == "gptq":
            total += 4 * s.input_columns
    elif p.family == "bnb":
        total += s.linear_numel * p.bits_per_weight / 8
    elif p.family == "fp8":
        total += s.linear_numel + 4 * s.matrices  # 1 byte per weight + an FP32 scale per matrix
    else:  # pragma: no cover - registry families are closed
        raise AssertionError(p.family)
    return _ceil(total)


@lru_cache(maxsize=4096)
def weights_bytes(p: Precision, parameters: int, arch: Architecture | None, imatrix: bool | None = None) -> int:
    """Bytes of weights for `parameters` (exact count) at precision `p`, per tensor when `arch` is given.

    `imatrix` only matters for GGUF types: whether the file was made with an importance matrix, as most
    published GGUFs are (None = only where llama.cpp requires one)."""
    if p.is_ideal:
        return _ceil(parameters * p.bits_per_weight / 8)
    if p.family == "gguf":
        assert p.gguf_ftype is not None
        if arch is not None and arch.inventory_key:
            from core.sizing import gguf_inventory

            if gguf_inventory.usable(arch):  # language-model file as llama.cpp writes it + the mmproj file
                return gguf.file_bytes(arch, p.gguf_ftype, imatrix) + gguf_inventory.layout(arch).mmproj_bytes
        if arch is not None and arch.components and any(t.role == "tower" for t in tensor_inventory(arch)):
            language, tower = _split_tower(arch)
            return gguf.file_bytes(language, p.gguf_ftype, imatrix) + 2 * tower  # + the F16 mmproj file
        if arch is not None:
            return gguf.file_bytes(arch, p.gguf_ftype, imatrix)
        return _ceil(parameters * gguf_bits_per_weight(p.gguf_ftype, None, imatrix) / 8)
    if arch is not None:
        return _real_format_bytes(p, arch)
    return _ceil(parameters * p.bits_per_weight / 8)


@lru_cache(maxsize=64)
def _split_tower(a: Architecture) -> tuple[Architecture, int]:
    """The language model alone (the main .gguf file) and the tower's parameter count (llama.cpp's mmproj file,
    written in F16 by convert_hf_to_gguf.py --mmproj)."""
    from dataclasses import replace

    tensors = tensor_inventory(a)
    language = tuple(t for t in tensors if t.role != "tower")
    tower = sum(t.numel for t in tensors if t.role == "tower")
    return replace(a, inventory_tensors=language, inventory_key=a.inventory_key + ":language"), tower


def weights_note(p: Precision, arch: Architecture | None) -> str | None:
    """What a user should know about how this weight figure was obtained, if anything."""
    if p.is_ideal:
        return None
    if arch is None and p.family == "gguf":
        bits = float(gguf_bits_per_weight(p.gguf_ftype or ""))
        return f"{p.name}: no architecture, so Llama-3-8B's whole-file average of {bits:.2f} bits/weight is used."
    if p.family == "gguf" and arch is not None and arch.inventory_key:
        from core.sizing import gguf_inventory

        if gguf_inventory.usable(arch):
            lay = gguf_inventory.layout(arch)
            mtp = f", its {lay.mtp_blocks} MTP layer included as the converter writes it" if lay.mtp_blocks else ""
            mmproj = (f"; the vision/audio tower as the separate F16 mmproj file ({lay.mmproj_bytes / 1e9:.2f} GB, "
                      "included)") if lay.mmproj_bytes else ""
            return (f"{p.name}: the model's own tensors, named and typed as llama.cpp's converter and llama-quantize "
                    f"(b11434) write them{mtp}{mmproj}.")
        why = gguf_inventory.refusal(arch)
        tower = "; the vision/audio tower as an F16 mmproj file beside it" if any(
            c in ("vision", "audio", "projector") for c, _ in arch.components) else ""
        return (f"{p.name}: {why} llama.cpp's per-tensor rules are applied to the tensors of the model's own "
                f"definition (transformers names), an approximation{tower}.")
    if arch is None:
        return f"{p.name}: no architecture, so {float(p.bits_per_weight):.3f} bits on every parameter (embeddings would stay 16-bit in a real file)."
    return None
