"""From a tensor inventory (meta-device build or safetensors header) to what sizing needs: parts, layers, caches.

Why from names and shapes: the inventory is the model's own definition, so reading it answers for families no one
wrote rules for. What each layer keeps while generating follows from the tensors it has:
- self-attention K and V rows are the output widths of its k and v projections (GQA included); an MLA layer
  (DeepSeek-V3, Kimi-K2) caches one latent of `kv_a_proj_with_mqa`'s width; a fused qkv falls back to the config;
- cross-attention (T5, BART, Whisper decoders) caches K and V of the encoder's tokens, once per sequence;
- SSM / recurrent layers (Mamba, Mamba2, Jamba, granite-4.0-h, falcon-mamba, Qwen3-Next linear attention, LFM2
  short convolutions) keep a constant state per sequence: conv state (channels x (kernel - 1)) plus SSM state
  (Mamba: A_log's d_inner x d_state; Mamba2: d_inner x d_state; gated delta-net: heads x d_k x d_v);
- vision/audio towers and projectors are their own part (llama.cpp ships them as the mmproj file).
Active parameters: routed experts count top-k / n_experts (what each family's model card then does with the
embeddings is core.sizing.architecture.card_active_parameter_count).

Standard library only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from core.sizing.meta_inventory import MetaInventory, TensorInfo

_LAYER_RE = re.compile(r"^(?P<stack>.*?)\.?(?:layers|h|block|blocks)\.(?P<i>\d+)\.(?P<rest>.+)$")
_TOWER_RE = re.compile(r"(^|\.)(vision_tower|vision_model|visual|vision|image_encoder|patch_embed|vision_encoder)(\.|_)")
_AUDIO_RE = re.compile(r"(^|\.)(audio_tower|audio_model|audio_encoder|audio)(\.|_)")
_PROJECTOR_RE = re.compile(r"(^|\.)(multi_modal_projector|mm_projector|merger|vision_adapter|audio_projector)\.")
_SELF_K = re.compile(r"(^|\.)(self_attn|attention|self_attention|attn|SelfAttention|mixer)\.(k_proj|k|key|wk)\.weight$")
_SELF_V = re.compile(r"(^|\.)(self_attn|attention|self_attention|attn|SelfAttention|mixer)\.(v_proj|v|value|wv)\.weight$")
_CROSS_K = re.compile(r"(^|\.)(encoder_attn|EncDecAttention|cross_attn|crossattention)\.(k_proj|k|key)\.weight$")
_CROSS_V = re.compile(r"(^|\.)(encoder_attn|EncDecAttention|cross_attn|crossattention)\.(v_proj|v|value)\.weight$")
_FUSED_QKV = re.compile(r"(c_attn|qkv_proj|query_key_value|Wqkv|attn\.qkv|self_attn\.qkv)\.weight$")
_EXPERT_RE = re.compile(r"(^|\.)experts\.")
_EMBED_RE = re.compile(r"(^|\.)(embed_tokens|wte|word_embeddings|embeddings|shared|tok_embeddings)\.weight$")
_POSITION_RE = re.compile(r"(^|\.)(embed_positions|wpe|position_embeddings|positional_embedding_vlm)\.weight$")
_OUTPUT_RE = re.compile(r"(^|\.)(lm_head|output|proj_out)\.weight$")


@dataclass(frozen=True)
class LayerPlan:
    """What one language/decoder layer keeps per sequence while generating."""

    index: int
    kind: str  # "attention" | "mla" | "ssm" | "linear_attention" | "conv" | "mlp"
    kv_rows: tuple[int, ...]  # cached values per token (K and V rows, or the MLA latent); () = no KV cache
    window: int  # 0 = full context; n = sliding/chunked window of n tokens
    cross_rows: tuple[int, ...]  # cross-attention K and V rows per encoder token; () = none
    state_values: int  # constant per-sequence recurrent state (conv + SSM), in values


@dataclass(frozen=True)
class InventoryPlan:
    """Everything the engine reads from an inventory, computed once per inventory."""

    model_type: str
    parameters: int
    components: tuple[tuple[str, int], ...]  # ("language"|"encoder"|"decoder"|"vision"|"audio"|"projector", n)
    active_parameters: int
    embedding_parameters: int  # input lookup tables (token, position)
    layers: tuple[LayerPlan, ...]
    tied_embeddings: bool
    encoder_decoder: bool
    encoder_tokens: int  # cross-attention length when the config fixes it (Whisper: 1500 audio frames); 0 = context
    image_tokens: int  # tokens one image becomes at the model's resolution; 0 = not multimodal / unknown
    image_resolution: str
    num_experts: int
    experts_per_token: int

    @property
    def tower_parameters(self) -> int:
        return sum(n for c, n in self.components if c in ("vision", "audio", "projector"))

    def layer_kinds(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for layer in self.layers:
            out[layer.kind] = out.get(layer.kind, 0) + 1
        return out


# Layer and expert indices (`.12.`) never change a tensor's part or role: names are looked up with them set to 0,
# so Qwen3-Next's 73k per-expert tensors cost a few dozen regex passes instead of 1.5 million on a fresh process.
_INDEX = re.compile(r"\.\d+(?=\.)")


def component_of(name: str, encoder_decoder: bool) -> str:
    """Which part of the model a tensor belongs to, from its name."""
    return _component_of(_INDEX.sub(".0", name), encoder_decoder)


@lru_cache(maxsize=8192)
def _component_of(name: str, encoder_decoder: bool) -> str:
    if _PROJECTOR_RE.search(name):
        return "projector"
    if _AUDIO_RE.search(name):
        return "audio"
    if _TOWER_RE.search(name):
        return "vision"
    if encoder_decoder:
        return "encoder" if re.search(r"(^|\.)encoder\.", name) else "decoder"
    return "language"


def role_of(t: TensorInfo, component: str) -> str:
    """The role a tensor plays, in the vocabulary core.sizing.architecture.Tensor uses (+ "ssm", "tower")."""
    return _role_of(_INDEX.sub(".0", t.name), t.shape, component)


@lru_cache(maxsize=8192)
def _role_of(name: str, shape: tuple[int, ...], component: str) -> str:
    if component in ("vision", "audio", "projector"):
        return "tower"
    if _EMBED_RE.search(name):
        return "embedding"
    if _POSITION_RE.search(name) or "relative_attention_bias" in name:
        return "position"
    if _OUTPUT_RE.search(name) and len(shape) == 2 and "." not in name.split(".weight")[0].replace("model.", "", 1):
        return "output"
    if name.endswith("lm_head.weight"):
        return "output"
    if len(shape) == 3 and shape[1] == 1 and "conv" in name:
        return "conv"  # depthwise causal convolution (Mamba conv1d, LFM2): tiny, kept unquantized
    if len(shape) < 2:
        return "norm" if "norm" in name or "sinks" in name or name.endswith("weight") else "bias"
    if ("router" in name or name.endswith("mlp.gate.weight") or name.endswith("moe.gate.weight")
            or "shared_expert_gate" in name):
        return "router"
    if _EXPERT_RE.search(name) or (len(shape) == 3 and "moe" in name):
        return "expert"
    if "shared_expert" in name or "shared_mlp" in name:
        return "shared_expert"
    if any(k in name for k in ("mixer.", "mamba.", "linear_attn.", ".conv.")):
        return "ssm" if not any(k in name for k in ("q_proj", "k_proj", "v_proj", "o_proj")) else "attention"
    if any(k in name for k in ("attn", "attention", "Attention")):
        return "attention"
    return "mlp"


def _int(d: dict[str, Any], *keys: str, default: int = 0) -> int:
    for k in keys:
        v = d.get(k)
        if isinstance(v, int) and not isinstance(v, bool):
            return v
    return default


def _layer_plans(inv: MetaInventory) -> tuple[LayerPlan, ...]:
    text = inv.text
    by_layer: dict[int, list[tuple[str, TensorInfo]]] = {}
    for t in inv.tensors:
        comp = component_of(t.name, inv.encoder_decoder)
        if comp not in ("language", "decoder"):
            continue
        m = _LAYER_RE.match(t.name)
        if not m or "mtp" in m.group("stack"):
            continue
        by_layer.setdefault(int(m.group("i")), []).append((m.group("rest"), t))
    layer_types = text.get("layer_types") if isinstance(text.get("layer_types"), list) else []
    heads = _int(text, "num_attention_heads", "num_heads")
    kv_heads = _int(text, "num_key_value_heads", default=heads)
    head_dim = _int(text, "head_dim", "d_kv") or (_int(text, "hidden_size", "d_model") // heads if heads else 0)
    d_state = _int(text, "ssm_state_size", "mamba_d_state", "state_size")
    plans = []
    for i in sorted(by_layer):
        items = by_layer[i]
        names = {rest: t for rest, t in items}
        kv: tuple[int, ...] = ()
        cross: tuple[int, ...] = ()
        state = 0
        kind = "mlp"
        k = next((t for r, t in items if _SELF_K.search(r) and not _CROSS_K.search(r)), None)
        v = next((t for r, t in items if _SELF_V.search(r) and not _CROSS_V.search(r)), None)
        latent = next((t for r, t in items if r.endswith("kv_a_proj_with_mqa.weight")), None)
        if latent is not None:
            kind, kv = "mla", (latent.shape[0],)
        elif k is not None:
            kind = "attention"
            kv = (k.shape[0], v.shape[0] if v is not None else k.shape[0])
        elif any(_FUSED_QKV.search(r) for r in names) and heads and head_dim:
            # fused q|k|v rows = (heads + 2 kv_heads) x head_dim (GPT-2's Conv1D stores it transposed)
            rest, fused = next((r, t) for r, t in items if _FUSED_QKV.search(r))
            rows = fused.shape[1] if "c_attn" in rest else fused.shape[0]
            width = (rows - heads * head_dim) // 2 if rows > heads * head_dim else kv_heads * head_dim
            kind, kv = "attention", (width, width)
        ck = next((t for r, t in items if _CROSS_K.search(r)), None)
        cv = next((t for r, t in items if _CROSS_V.search(r)), None)
        if ck is not None:
            cross = (ck.shape[0], cv.shape[0] if cv is not None else ck.shape[0])
        conv = next((t for r, t in items if len(t.shape) == 3 and t.shape[1] == 1 and "conv" in r
                     and r.endswith("weight")), None)
        if conv is not None:
            state += conv.shape[0] * max(0, conv.shape[2] - 1)
            kind = "conv" if kind == "mlp" else kind
        a_log = next((t for r, t in items if r.endswith("A_log")), None)
        if a_log is not None:
            prefix = next(r for r, t in items if t is a_log).rsplit("A_log", 1)[0]
            if "linear_attn" in prefix:
                kind = "linear_attention"
                state += (_int(text, "linear_num_value_heads") * _int(text, "linear_key_head_dim")
                          * _int(text, "linear_value_head_dim"))
            else:
                kind = "ssm"
                if len(a_log.shape) == 2:  # Mamba-1: A is (d_inner, d_state)
                    state += a_log.numel
                else:  # Mamba-2: heads x head_dim x d_state = d_inner x d_state
                    out = names.get(prefix + "out_proj.weight")
                    state += (out.shape[1] if out is not None else 0) * d_state
        window = 0
        if kind == "attention" and len(layer_types) > i:
            lt = layer_types[i]
            if lt == "sliding_attention":
                window = _int(text, "sliding_window")
            elif lt == "chunked_attention":
                window = _int(text, "attention_chunk_size")
        plans.append(LayerPlan(i, kind, kv, window, cross, state))
    return tuple(plans)


def _image_tokens(inv: MetaInventory) -> tuple[int, str]:
    """Tokens one image costs in the language model's context, at the model's own resolution."""
    extra, vision = inv.extra, inv.vision
    if isinstance(extra.get("mm_tokens_per_image"), int):  # Gemma 3: a fixed 256 soft tokens per image
        size = vision.get("image_size")
        return extra["mm_tokens_per_image"], f"{size}x{size} px" if size else "model's resolution"
    size, patch = vision.get("image_size"), vision.get("patch_size")
    merge = vision.get("spatial_merge_size")
    if isinstance(patch, int) and patch and isinstance(merge, int) and merge and not isinstance(size, int):
        # Qwen2-VL / Qwen2.5-VL: dynamic resolution; one 1024x1024 image, resized to a multiple of patch x merge
        unit = patch * merge
        side = max(unit, round(1024 / unit) * unit)
        return (side // unit) ** 2, "1024x1024 px (dynamic resolution)"
    if isinstance(size, int) and isinstance(patch, int) and patch:
        tokens = (size // patch) ** 2
        ratio = vision.get("pixel_shuffle_ratio")
        if isinstance(ratio, (int, float)) and ratio:  # Llama 4: pixel shuffle merges patches
            tokens = int(tokens * ratio * ratio)
        return tokens, f"{size}x{size} px"
    return 0, ""


def plan_inventory(inv: MetaInventory) -> InventoryPlan:
    """Parts, per-layer caches, card-style active parameters of an inventory."""
    text = inv.text
    totals: dict[str, int] = {}
    expert = embedding = 0
    has_output = False
    for t in inv.tensors:
        comp = component_of(t.name, inv.encoder_decoder)
        totals[comp] = totals.get(comp, 0) + t.numel
        role = role_of(t, comp)
        if role == "expert":
            expert += t.numel
        elif role in ("embedding", "position"):
            embedding += t.numel
        elif role == "output":
            has_output = True
    parameters = sum(totals.values())
    n_exp = _int(text, "num_local_experts", "n_routed_experts", "num_experts", "moe_num_experts")
    top_k = _int(text, "num_experts_per_tok", "experts_per_token", "num_experts_per_token", "moe_topk", "top_k")
    active = parameters
    if expert and n_exp > 1 and 0 < top_k <= n_exp:
        active = parameters - expert + expert * top_k // n_exp
    tied = not has_output and not inv.encoder_decoder
    image_tokens, resolution = _image_tokens(inv)
    encoder_tokens = _int(inv.extra, "max_source_positions") or _int(text, "max_source_positions")
    order = ("language", "encoder", "decoder", "vision", "audio", "projector")
    return InventoryPlan(
        model_type=inv.model_type, parameters=parameters,
        components=tuple((c, totals[c]) for c in order if totals.get(c)),
        active_parameters=active, embedding_parameters=embedding, layers=_layer_plans(inv), tied_embeddings=tied,
        encoder_decoder=inv.encoder_decoder, encoder_tokens=encoder_tokens, image_tokens=image_tokens,
        image_resolution=resolution, num_experts=n_exp if expert else 0, experts_per_token=top_k if expert else 0,
    )


def state_bytes_per_sequence(plan: InventoryPlan, bytes_per_value: int) -> int:
    """Constant recurrent state of one sequence across all layers (llama.cpp keeps it in F32: 4 bytes)."""
    return sum(layer.state_values for layer in plan.layers) * bytes_per_value


def kv_values_per_token(plan: InventoryPlan) -> int:
    """KV values one token adds across the attention layers (windows not applied)."""
    return sum(sum(layer.kv_rows) for layer in plan.layers)


__all__ = ["InventoryPlan", "LayerPlan", "component_of", "plan_inventory",
           "role_of", "state_bytes_per_sequence", "kv_values_per_token"]
