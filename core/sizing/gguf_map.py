"""From a Hugging Face tensor list to the GGUF file llama.cpp makes of it: names, shapes and types per tensor.

Why: any architecture's tensor inventory (transformers on the meta device, or a safetensors header) is in
Hugging Face names. A GGUF file holds what llama.cpp's converter (`convert_hf_to_gguf.py`) writes: the names of
the `gguf` package's tensor-name map (the same map the converter uses), MoE experts stacked into one 3-D tensor
per projection, SSM conv1d kernels squeezed, Mamba-2 A/D as (heads, 1), and F32 for what the converter keeps in
F32 (1-D tensors, norms, routers, SSM conv1d, LFM2 short-conv kernels, biases). llama-quantize then picks a type
per tensor with its own rules (`core.sizing.gguf._rule`, shared with the classic-decoder engine). Vision and audio
towers go to the separate mmproj file (`mmproj` is True on their rows), never into the language-model file.

Checked against llama.cpp itself (tag b11434) by `make truth` (bench/truth_llamacpp.py), whose recorded answers
the tests read (tests/core/data/llamacpp_truth/*.json).

Only the standard library at import time; the `gguf` package is imported inside the functions that use it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from core.errors import QuantLensError

# Hugging Face model_type -> llama.cpp architecture name (gguf.MODEL_ARCH_NAMES values), as the converter
# registers them (conversion/*.py `@ModelBase.register(...)` and their `model_arch`).
GGUF_ARCH: dict[str, str] = {
    "llama": "llama", "mistral": "llama", "mixtral": "llama", "qwen2": "qwen2", "qwen2_moe": "qwen2moe",
    "qwen3": "qwen3", "qwen3_moe": "qwen3moe", "qwen3_next": "qwen3next", "phi3": "phi3", "phi": "phi2",
    "gpt2": "gpt2", "gemma": "gemma", "gemma2": "gemma2", "gemma3_text": "gemma3", "gemma3": "gemma3",
    "llava": "llama", "qwen2_vl": "qwen2vl", "qwen2_5_vl": "qwen2vl",
    "deepseek_v2": "deepseek2", "deepseek_v3": "deepseek2", "kimi_k2": "deepseek2",
    "mamba": "mamba", "falcon_mamba": "mamba", "mamba2": "mamba2", "jamba": "jamba",
    "granitemoehybrid": "granitehybrid", "nemotron_h": "nemotron_h", "lfm2": "lfm2", "glm4_moe": "glm4moe",
    "falcon": "falcon", "olmo2": "olmo2", "gpt_oss": "gpt-oss", "starcoder2": "starcoder2",
}

# What the converter stores in F32 whatever the file type (conversion/base.py `prepare_tensors`).
_F32_KEYS = ("FFN_GATE_INP", "FFN_GATE_INP_SHEXP", "POS_EMBD", "TOKEN_TYPES", "SSM_CONV1D", "SHORTCONV_CONV")
_MMPROJ_PREFIXES = ("model.visual.", "visual.", "vision_tower.", "model.vision_tower.", "vision_model.",
                    "model.vision_model.", "multi_modal_projector.", "model.multi_modal_projector.",
                    "audio_tower.", "model.audio_tower.", "mm_projector.")
_EXPERT = re.compile(r"^(?P<head>.*\.experts)\.(?P<j>\d+)\.(?P<tail>.+)$")


@dataclass(frozen=True)
class GgufTensor:
    """One tensor of the GGUF file: llama.cpp name, PyTorch-order shape, the type written by the converter
    (`source_type`: F32 or the 16-bit type of the file) and, per GGUF file type, llama-quantize's type."""

    name: str
    shape: tuple[int, ...]
    source_type: str
    hf_names: tuple[str, ...]
    types: dict[str, str] = field(default_factory=dict, compare=False)
    mmproj: bool = False

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


def gguf_arch(model_type: str) -> str:
    """llama.cpp's architecture name for a Hugging Face `model_type`, or a clear refusal."""
    arch = GGUF_ARCH.get((model_type or "").lower())
    if arch is None:
        raise QuantLensError(
            "gguf_arch_unknown",
            f"llama.cpp's converter has no GGUF architecture QuantLens knows for model_type {model_type!r}.",
        )
    return arch


def _name_map(arch: str, n_blocks: int):
    import gguf

    arch_ids = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}
    if arch not in arch_ids:
        raise QuantLensError("gguf_arch_unknown", f"The installed gguf package does not know architecture {arch!r}.")
    return gguf.get_tensor_name_map(arch_ids[arch], n_blocks), arch_ids[arch]


def _block(name: str) -> int | None:
    for part in name.split("."):
        if part.isdecimal():
            return int(part)
    return None


def _is_f32(gguf_name: str, shape: tuple[int, ...], arch_id) -> bool:
    """conversion/base.py: 1-D tensors, '*_norm.weight', routers, positions, SSM conv1d and anything not
    ending in '.weight' are written as F32."""
    import gguf

    if len(shape) <= 1 or gguf_name.endswith("_norm.weight") or not gguf_name.endswith(".weight"):
        return True
    base = gguf_name.rsplit(".", 1)[0]
    bid = _block(gguf_name)
    for key in _F32_KEYS:
        tensor = getattr(gguf.MODEL_TENSOR, key, None)
        if tensor is None or tensor not in gguf.MODEL_TENSORS.get(arch_id, ()):
            continue
        template = gguf.TENSOR_NAMES[tensor]
        if base == (template.format(bid=bid) if "{bid}" in template else template):
            return True
    return False


def _reshape(gguf_name: str, shape: tuple[int, ...], arch: str, hf_name: str, cfg: dict) -> tuple[int, ...]:
    """The converter's shape changes that alter what is stored (permutations keep the element count and the
    row length, so they are not modelled)."""
    if arch == "gpt2" and len(shape) == 2 and hf_name.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight")):
        return (shape[1], shape[0])  # GPT-2's Conv1D stores (in, out); conversion/gpt2.py transposes it
    if (".ssm_conv1d." in gguf_name or ".shortconv.conv." in gguf_name) and len(shape) == 3 and shape[1] == 1:
        return (shape[0], shape[2])  # (d, 1, k) -> (d, k)
    if arch in ("mamba2", "granitehybrid", "nemotron_h", "falcon-h1") and (
        gguf_name.endswith(".ssm_a") or gguf_name.endswith(".ssm_d")
    ) and len(shape) == 1:
        return (shape[0], 1)
    if gguf_name.endswith(".ssm_norm.weight") and len(shape) == 1 and arch in ("mamba2", "granitehybrid", "nemotron_h"):
        groups = int(cfg.get("n_groups") or cfg.get("mamba_n_groups") or 1)
        return (groups, shape[0] // groups)  # Mamba-2's grouped RMS norm: (n_group, d_inner / n_group)
    return shape


def _split_input_linear(hf_name: str, shape: tuple[int, ...], source: str) -> list[GgufTensor]:
    """conversion/granite.py: `input_linear` holds gate and up stacked along the output rows; written as two
    tensors (ffn_gate/ffn_up, `_exps` for the experts, `_shexp` for the shared MLP)."""
    bid = _block(hf_name)
    suffix = "exps" if len(shape) == 3 else "shexp"
    half = (*shape[:-2], shape[-2] // 2, shape[-1])
    return [GgufTensor(f"blk.{bid}.ffn_gate_{suffix}.weight", half, source, (hf_name,)),
            GgufTensor(f"blk.{bid}.ffn_up_{suffix}.weight", half, source, (hf_name,))]


def _split_kv_b(hf_name: str, shape: tuple[int, ...], cfg: dict, source: str) -> list[GgufTensor]:
    """conversion/deepseek.py: MLA's kv_b_proj (heads*(nope+v), lora) is written as attn_k_b (heads, lora, nope)
    and attn_v_b (heads, v, lora), so llama.cpp can absorb them; the row lengths (and so the quant types) change."""
    v = int(cfg.get("v_head_dim") or 128)
    nope = int(cfg.get("qk_nope_head_dim") or 128)
    heads = shape[0] // (v + nope)
    lora = shape[1]
    bid = _block(hf_name)
    return [GgufTensor(f"blk.{bid}.attn_k_b.weight", (heads, lora, nope), source, (hf_name,)),
            GgufTensor(f"blk.{bid}.attn_v_b.weight", (heads, v, lora), source, (hf_name,))]


def _extra_tensors(arch: str, cfg: dict) -> list[GgufTensor]:
    """Tensors the converter generates (generate_extra_tensors), not read from the checkpoint: Llama 3.1+'s
    RoPE frequency factors (conversion/llama.py, rope_type llama3): head_dim/2 F32 values, 128 bytes for 8B."""
    rope = cfg.get("rope_scaling") or cfg.get("rope_parameters") or {}
    if arch == "llama" and isinstance(rope, dict) and str(rope.get("rope_type", rope.get("type", ""))).lower() == "llama3":
        dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
        return [GgufTensor("rope_freqs.weight", (dim // 2,), "F32", ())]
    return []


def gguf_tensor_plan(
    model_type: str,
    tensors: list[tuple[str, tuple[int, ...]]],
    n_blocks: int,
    ftypes: tuple[str, ...] = ("F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K"),
    source: str = "F16",
    n_expert: int = 0,
    gqa: int = 1,
    config: dict | None = None,
) -> list[GgufTensor]:
    """Map (HF name, shape) pairs to the GGUF tensors llama.cpp writes, with llama-quantize's type per `ftypes`.

    `n_blocks`: block count as the converter writes it (MTP/nextn layers included: GLM-4.5's layer 46).
    `n_expert` / `gqa`: hparams llama-quantize's rules read (expert count, query heads per KV head).
    `config`: the config.json fields some converter steps read (MLA's `v_head_dim`, `qk_nope_head_dim`).
    A name the tensor-name map does not know raises `gguf_tensor_unmapped` naming it: a silent drop would
    undercount the file.
    """
    arch = gguf_arch(model_type) if model_type in GGUF_ARCH else model_type
    out = map_tensors(arch, tensors, n_blocks, source=source, config=config)
    lm = [t for t in out if not t.mmproj]
    types = quantize_types(arch, lm, ftypes, n_expert=n_expert, gqa=gqa, n_layer=n_blocks)
    return [GgufTensor(t.name, t.shape, t.source_type, t.hf_names, types.get(t.name, {}), t.mmproj) for t in out]


def map_tensors(
    arch: str,
    tensors: list[tuple[str, tuple[int, ...]]],
    n_blocks: int,
    source: str = "F16",
    config: dict | None = None,
) -> list[GgufTensor]:
    """The converter's half of `gguf_tensor_plan`: llama.cpp names, shapes and written types, no quantize types
    (the part worth caching per model: it does not depend on the GGUF file type)."""
    tmap, arch_id = _name_map(arch, n_blocks)
    out: list[GgufTensor] = []
    stacked: dict[str, list] = {}
    main_layers = int((config or {}).get("num_hidden_layers") or 0)
    for hf_name, shape in tensors:
        shape = tuple(int(d) for d in shape)
        if arch == "deepseek2" and main_layers and (_block(hf_name) or 0) >= main_layers:
            continue  # conversion/deepseek.py (skip_mtp): DeepSeek-V3's MTP layer is not written (b11434)
        if hf_name.startswith(_MMPROJ_PREFIXES):
            out.append(GgufTensor(hf_name, shape, "F16" if len(shape) > 1 else "F32", (hf_name,), mmproj=True))
            continue
        m = _EXPERT.match(hf_name)
        if m:
            key = f"{m['head']}.{m['tail']}"
            entry = stacked.setdefault(key, [shape, 0, []])
            entry[1] += 1
            entry[2].append(hf_name)
            if entry[1] == 1:
                out.append(GgufTensor(key, shape, "", ()))  # placeholder, filled below
            continue
        if arch == "deepseek2" and hf_name.endswith("kv_b_proj.weight"):
            out += _split_kv_b(hf_name, shape, config or {}, source)
            continue
        if arch == "qwen3next" and hf_name.endswith("in_proj_qkvz.weight"):
            # conversion/qwen.py: the gated-DeltaNet input projection is written as attn_qkv (q, k, v) + attn_gate (z)
            z = int((config or {}).get("linear_num_value_heads", 32)) * int((config or {}).get("linear_value_head_dim", 128))
            bid = _block(hf_name)
            out += [GgufTensor(f"blk.{bid}.attn_qkv.weight", (shape[0] - z, shape[1]), source, (hf_name,)),
                    GgufTensor(f"blk.{bid}.attn_gate.weight", (z, shape[1]), source, (hf_name,))]
            continue
        if hf_name.endswith(".input_linear.weight"):  # Granite MoE: gate and up fused along the rows
            out += _split_input_linear(hf_name, shape, source)
            continue
        lookup = hf_name[: -len(".dt_bias")] + ".dt_proj.bias" if hf_name.endswith(".dt_bias") else hf_name
        name = tmap.get_name(lookup, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise QuantLensError("gguf_tensor_unmapped",
                                 f"llama.cpp's tensor-name map for {arch!r} has no name for tensor {hf_name!r}.")
        shape = _reshape(name, shape, arch, hf_name, config or {})
        out.append(GgufTensor(name, shape, "F32" if _is_f32(name, shape, arch_id) else source, (hf_name,)))
    for i, t in enumerate(out):
        if t.source_type == "" and t.name in stacked:
            shape, count, names = stacked[t.name]
            name = tmap.get_name(t.name, try_suffixes=(".weight", ".bias"))
            if name is None:
                raise QuantLensError("gguf_tensor_unmapped",
                                     f"llama.cpp's tensor-name map for {arch!r} has no name for experts {t.name!r}.")
            full = (count, *shape)
            out[i] = GgufTensor(name, full, "F32" if _is_f32(name, full, arch_id) else source, tuple(names))
    return _extra_tensors(arch, config or {}) + out


def quantize_types(arch: str, tensors: list[GgufTensor], ftypes: tuple[str, ...], *, n_expert: int, gqa: int,
                   n_layer: int, imatrix: bool = False) -> dict[str, dict[str, str]]:
    """llama-quantize's type for every tensor and file type (llama.cpp b11434 `llama_tensor_get_type`).

    Differences from the published-file rules in core.sizing.gguf (older builds), as b11434 has them:
    fused attn_qkv and MLA's attn_kv_b take the attn_v branch (`category_is_attn_v`), and without experts
    the ffn_down layer index is a running count of ffn_down tensors (`i_ffn_down`), not the block number, which
    matters for hybrids whose MLP sits on some blocks only. `imatrix`: made with an importance matrix (a few
    choices differ, as in core.sizing.gguf.plan).
    """
    from core.sizing.architecture import Tensor
    from core.sizing.gguf import _QUANTIZED, FTYPE_DEFAULT, GGML_TYPES, _category, _fallback, _rule

    class _S:  # the counters and hparams llama-quantize keeps (quantize_state_impl)
        pass

    result: dict[str, dict[str, str]] = {t.name: {} for t in tensors}
    # llama.cpp's n_gqa() reads block 0's KV heads: 0 when block 0 is an SSM / conv / linear-attention layer
    # (LFM2, Jamba, Granite-H...), so the GQA bumps never fire for those hybrids.
    attention_in_block_0 = any(t.name.startswith(("blk.0.attn_k.", "blk.0.attn_v.", "blk.0.attn_qkv.",
                                                 "blk.0.attn_kv_a_mqa.")) for t in tensors)
    for ftype in ftypes:
        ftype = ftype.upper()
        if ftype not in FTYPE_DEFAULT:
            raise QuantLensError("unknown_gguf_type", f"Unknown GGUF type {ftype!r}; known: {', '.join(FTYPE_DEFAULT)}.")
        default = FTYPE_DEFAULT[ftype]
        cats = {t.name: _b11434_category(t.name, _category) for t in tensors}
        s = _S()
        s.n_attention_wv = sum(1 for c in cats.values() if c == "attn_v")
        s.has_output = any(t.name == "output.weight" for t in tensors)
        s.i_attention_wv = 0
        s.n_layer = n_layer
        s.gqa = gqa if attention_in_block_0 else 0
        s.n_expert = n_expert
        s.is_70b = False
        s.is_falcon = arch == "falcon"
        s.imatrix = imatrix
        i_ffn_down = 0
        for t in tensors:
            if not _quantizable(t):  # llama-quantize copies it as the converter wrote it
                result[t.name][ftype] = t.source_type
                continue
            if default not in _QUANTIZED:
                result[t.name][ftype] = default
                continue
            cat = cats[t.name]
            layer = _block(t.name)
            if cat == "ffn_down" and n_expert <= 1:
                layer = i_ffn_down
                i_ffn_down += 1
            tensor = Tensor(t.name, t.shape, "", layer)
            new = _fallback(tensor, _rule(s, tensor, ftype, default, cat))
            result[t.name][ftype] = new if new in GGML_TYPES else default
    return result


def _b11434_category(name: str, category) -> str:
    cat = category(name)
    return "attn_v" if cat in ("attn_qkv", "attn_kv_b") else cat


def _quantizable(t: GgufTensor) -> bool:
    """tensor_allows_quantization (b11434): 2-D/3-D '*weight' tensors except norms, routers, conv kernels."""
    n = t.name
    ne = list(reversed(t.shape))  # ggml_n_dims ignores trailing 1s: a (1, hidden) gate is 1-D to llama.cpp
    while len(ne) > 1 and ne[-1] == 1:
        ne.pop()
    return (
        len(ne) >= 2 and n.endswith("weight") and "_norm.weight" not in n and "ffn_gate_inp.weight" not in n
        and "ssm_conv1d" not in n and "shortconv.conv.weight" not in n
        and n not in ("position_embd.weight", "token_types.weight")
    )


def tensor_bytes(t: GgufTensor, ggml_type: str) -> int:
    """Bytes of one tensor stored as `ggml_type` (ggml's row layout: rows x row_size(ne0))."""
    from core.sizing.gguf import GGML_TYPES

    row = t.shape[-1]
    return (t.numel // row) * GGML_TYPES[ggml_type].row_bytes(row)
