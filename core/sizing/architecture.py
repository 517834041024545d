"""A model's architecture, read from its Hugging Face `config.json`, and its exact parameter count.

Why count from the config: calculators that count through a loaded model (or that multiply a rounded
"7B" by bits) get tied embeddings, GQA, biases and MoE wrong. Here every weight tensor the model has is
listed by name and shape (`tensor_inventory`), in llama.cpp's GGUF naming so the same list drives the
per-tensor GGUF sizes in `core.sizing.gguf`. The parameter count is the sum of those shapes and matches what
PyTorch counts for a model built from the same config.

Safety: a config is only ever parsed as JSON. Nothing in it is imported or executed (`auto_map` is
reported and ignored; there is no `trust_remote_code`), and every number is bounded before use so a
hostile config cannot make the engine allocate or loop without limit.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any

from core.config_bounds import BOUNDS as CONFIG_BOUNDS
from core.errors import QuantLensError
from core.sizing.families import FAMILIES, TEXT_CONFIG_TYPES, family, is_known
from core.sizing.parsing import MAX_PARAMETERS, parse_param_count  # noqa: F401 - re-exported

MAX_CONFIG_BYTES = 1_000_000

# Upper bounds for config values (threat 13, docs/threats.md): one table shared with the upload gate.
_BOUNDS: dict[str, int] = CONFIG_BOUNDS

SUPPORTED_MODEL_TYPES = tuple(FAMILIES)  # one table (core.sizing.families) for counting and the warning


@dataclass(frozen=True)
class Tensor:
    """One weight tensor: GGUF-style name, PyTorch-style shape (out, in) or (experts, out, in), its role.

    `layer` is the block index (None outside the blocks). Roles: embedding, position, output, attention,
    mlp, expert, shared_expert, router, norm, bias.
    """

    name: str
    shape: tuple[int, ...]
    role: str
    layer: int | None = None

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def row_length(self) -> int:
        """ggml's ne[0]: the input dimension, along which quantization blocks run."""
        return self.shape[-1]


@dataclass(frozen=True)
class MoE:
    """Mixture-of-experts layout. Total parameters decide memory; active ones decide speed."""

    num_experts: int
    experts_per_token: int
    expert_intermediate_size: int
    num_shared_experts: int = 0
    shared_intermediate_size: int = 0
    shared_expert_gate: bool = False  # Qwen2-MoE: a sigmoid gate (hidden -> 1) on the shared expert
    router_bias: bool = False  # gpt-oss: router has a bias
    expert_bias: bool = False  # gpt-oss: experts' projections have biases


@dataclass(frozen=True)
class MLA:
    """DeepSeek multi-head latent attention: K and V are rebuilt from a compressed latent per token."""

    q_lora_rank: int  # 0 = plain q_proj
    kv_lora_rank: int
    qk_rope_head_dim: int
    qk_nope_head_dim: int
    v_head_dim: int


@dataclass(frozen=True)
class Architecture:
    """What the sizing engine needs to know about a model's shape, normalised across model families."""

    model_type: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    tie_word_embeddings: bool
    gated_mlp: bool = True
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    norm: str = "rms"  # "rms" (weight) or "layer" (weight + bias)
    norms_per_layer: int = 2
    qk_norm: bool = False
    qk_norm_full_width: bool = False  # OLMo-2 normalises the whole q/k projection, not each head
    lm_head_bias: bool = False  # Phi-2
    mlm_head: bool = False  # BertForMaskedLM: transform dense + LayerNorm + vocabulary bias (decoder tied)
    fused_qkv: bool = False
    fused_gate_up: bool = False
    learned_positions: int = 0
    token_type_vocab: int = 0
    pooler: bool = False
    is_encoder: bool = False
    attention_sinks: bool = False
    mxfp4_experts: bool = False  # gpt-oss: routed experts are stored in MXFP4 in every GGUF file
    moe: MoE | None = None
    moe_layers: tuple[bool, ...] = ()
    mla: MLA | None = None
    layer_windows: tuple[int, ...] = ()  # per layer: 0 = full attention, n = sliding window of n tokens
    window_kind: str = "sliding"  # "chunked": Llama 4 attends within fixed chunks of n tokens (same cache cap)
    max_position_embeddings: int = 0
    warnings: tuple[str, ...] = field(default=(), compare=False)
    # Read from the model's own definition (core.sizing.inventory_arch) for families the rules above do not cover.
    # `inventory_key` is the config hash, so equal keys mean equal tensors (which are left out of eq/hash).
    inventory_key: str = ""
    inventory_tensors: tuple[Tensor, ...] = field(default=(), compare=False, repr=False)
    layer_kv_rows: tuple[tuple[int, ...], ...] = ()  # per layer: cached rows per token; () on SSM/MLP-only layers
    layer_state_values: tuple[int, ...] = ()  # per layer: constant recurrent state per sequence (conv + SSM)
    cross_kv_rows: tuple[int, ...] = ()  # per decoder layer: cross-attention K+V values per encoder token
    encoder_tokens: int = 0  # cross-attention length fixed by the config (Whisper 1500); 0 = the context
    encoder_decoder: bool = False
    active_parameters_override: int = 0
    embedding_parameters_override: int = -1
    components: tuple[tuple[str, int], ...] = ()  # ("language"|"encoder"|"decoder"|"vision"|"audio"|"projector", n)
    image_tokens: int = 0  # tokens one image costs in the context at the model's resolution
    image_resolution: str = ""
    layer_kinds: tuple[tuple[str, int], ...] = ()  # ("attention", 4), ("ssm", 36), ...
    moe_experts: tuple[int, int] = (0, 0)  # (routed experts, experts per token) read from the definition
    source: str = ""  # "" = hand-written rules; else the library that built the inventory
    # The language model's config fields (the config as given, transformers' resolved values over it) that
    # llama.cpp's converter reads to write the GGUF file (core.sizing.gguf_inventory); equal inventory_key, equal dict.
    definition_config: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def gqa_ratio(self) -> int:
        return max(1, self.num_heads // max(1, self.num_kv_heads))

    def is_moe_layer(self, layer: int) -> bool:
        return self.moe is not None and bool(self.moe_layers) and self.moe_layers[layer]

    @property
    def has_sliding_window(self) -> bool:
        return any(w > 0 for w in self.layer_windows)


# --------------------------------------------------------------------------------------------------
# config.json -> Architecture
# --------------------------------------------------------------------------------------------------


def parse_config_json(data: bytes | str) -> dict[str, Any]:
    """Parse uploaded config.json text as JSON only (size-limited; never imports or runs anything)."""
    if isinstance(data, bytes):
        if len(data) > MAX_CONFIG_BYTES:
            raise QuantLensError("config_too_large", f"config.json is larger than {MAX_CONFIG_BYTES // 1000} kB.")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise QuantLensError("config_invalid_json", "config.json is not UTF-8 text.") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise QuantLensError("config_too_large", f"config.json is larger than {MAX_CONFIG_BYTES // 1000} kB.")
    try:
        parsed = json.loads(data.removeprefix("\ufeff"))  # Windows editors save config.json with a byte-order mark
    except RecursionError:
        raise QuantLensError("config_invalid_json", "config.json is nested too deeply.") from None
    except ValueError as exc:
        raise QuantLensError("config_invalid_json", f"config.json is not valid JSON ({exc.msg}, line {exc.lineno}).") from None
    if not isinstance(parsed, dict):
        raise QuantLensError("config_invalid_json", "config.json must be a JSON object ({...}).")
    return parsed


def _shown(raw: Any) -> str:
    """A config value as an error message quotes it: a 300-digit number or a 100 kB string would bury the
    sentence, so numbers past 15 digits are shown in scientific notation and anything else is cut at 60 chars."""
    if isinstance(raw, (int, float)) and not isinstance(raw, bool) and abs(raw) >= 10**15:
        try:
            return f"{float(raw):.3g}"
        except OverflowError:  # an int past float's range (JSON allows 400 digits)
            return format(Decimal(raw).normalize(), ".3g")
    text = repr(raw)
    return text if len(text) <= 60 else text[:57] + "..."


class _Reader:
    """Typed, bounded access to config fields under their many historical names."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg

    def has(self, *keys: str) -> bool:
        return any(self.cfg.get(k) is not None for k in keys)

    def int(self, keys: tuple[str, ...] | str, bound: str, default: int | None = None, minimum: int = 1) -> int:
        keys = (keys,) if isinstance(keys, str) else keys
        for key in keys:
            raw = self.cfg.get(key)
            if raw is None:
                continue
            if isinstance(raw, bool) or not isinstance(raw, (int, float)):
                raise QuantLensError("config_invalid_value", f"config.json field {key!r} must be a number, got {_shown(raw)}.")
            if isinstance(raw, float) and (not math.isfinite(raw) or raw != int(raw)):
                raise QuantLensError("config_invalid_value", f"config.json field {key!r} must be a whole number, got {_shown(raw)}.")
            value = int(raw)
            if value < minimum:
                raise QuantLensError("config_out_of_bounds", f"config.json field {key!r} must be at least {minimum}, got {_shown(value)}.")
            if value > _BOUNDS[bound]:
                raise QuantLensError(
                    "config_out_of_bounds", f"config.json field {key!r} = {_shown(value)} is above the limit of {_BOUNDS[bound]:,}."
                )
            return value
        if default is None:
            raise QuantLensError(
                "config_missing_field", f"config.json has no {keys[0]!r} field, which is needed to size this model."
            )
        return default

    def bool(self, key: str, default: bool) -> bool:
        raw = self.cfg.get(key)
        if raw is None:
            return default
        if not isinstance(raw, bool):
            raise QuantLensError("config_invalid_value", f"config.json field {key!r} must be true or false, got {_shown(raw)}.")
        return raw


def _layer_windows(r: _Reader, model_type: str, num_layers: int) -> tuple[int, ...]:
    """Per-layer attention window (0 = full). Mirrors how each family decides which layers slide."""
    cfg = r.cfg
    if family(model_type).window_rule == "llama4":
        return _llama4_chunks(r, num_layers)
    layer_types = cfg.get("layer_types")
    window = r.int("sliding_window", "window", default=0, minimum=0) if cfg.get("sliding_window") is not None else 0
    if isinstance(layer_types, list) and layer_types:
        if len(layer_types) != num_layers:
            raise QuantLensError(
                "config_invalid_value",
                f"config.json layer_types has {len(layer_types)} entries but the model has {num_layers} layers.",
            )
        if not all(isinstance(t, str) for t in layer_types):
            raise QuantLensError("config_invalid_value", "config.json layer_types must be a list of strings.")
        return tuple(window if t == "sliding_attention" and window else 0 for t in layer_types)
    if not window:
        return (0,) * num_layers
    rule = family(model_type).window_rule
    if rule == "qwen":
        if not r.bool("use_sliding_window", False):
            return (0,) * num_layers
        first = r.int("max_window_layers", "num_layers", default=num_layers, minimum=0)
        return tuple(window if i >= first else 0 for i in range(num_layers))
    if rule == "gemma2":
        return tuple(window if i % 2 == 0 else 0 for i in range(num_layers))
    if rule == "gemma3":
        pattern = r.int("sliding_window_pattern", "num_layers", default=6)
        return tuple(window if (i + 1) % pattern != 0 else 0 for i in range(num_layers))
    if rule == "all" or r.bool("use_sliding_window", True):
        return (window,) * num_layers
    return (0,) * num_layers


def _llama4_chunks(r: _Reader, num_layers: int) -> tuple[int, ...]:
    """Llama 4: RoPE layers attend within `attention_chunk_size` chunks, every `no_rope_layer_interval`-th
    layer (NoPE) attends globally (transformers Llama4TextConfig: no_rope_layers default
    `int((i + 1) % no_rope_layer_interval != 0)`; layer_types "chunked_attention" where no_rope_layers[i])."""
    chunk = r.int("attention_chunk_size", "window", default=0, minimum=0) if r.has("attention_chunk_size") else 0
    if not chunk:
        return (0,) * num_layers
    rope = r.cfg.get("no_rope_layers")
    if isinstance(rope, list) and rope:
        if len(rope) != num_layers or not all(isinstance(x, int) and not isinstance(x, bool) for x in rope):
            raise QuantLensError("config_invalid_value", "config.json no_rope_layers must list 0 or 1 for every layer.")
        return tuple(chunk if x else 0 for x in rope)
    interval = r.int("no_rope_layer_interval", "num_layers", default=4)
    return tuple(chunk if (i + 1) % interval != 0 else 0 for i in range(num_layers))


def _moe(r: _Reader, model_type: str, num_layers: int, intermediate: int) -> tuple[MoE | None, tuple[bool, ...]]:
    cfg = r.cfg
    n_experts = 0
    for key in ("num_local_experts", "n_routed_experts", "num_experts"):
        if cfg.get(key) is not None:
            n_experts = r.int(key, "num_experts", minimum=0)
            break
    if n_experts <= 1:
        return None, ()
    top_k = r.int(("num_experts_per_tok", "experts_per_token", "num_experts_per_token"), "num_experts", default=2)
    if top_k > n_experts:
        raise QuantLensError(
            "config_invalid_value", f"config.json routes each token to {top_k} experts but has only {n_experts}."
        )
    expert_size = r.int("moe_intermediate_size", "intermediate_size", default=intermediate)
    if model_type == "llama4_text":  # experts use intermediate_size; dense layers intermediate_size_mlp
        expert_size = r.int("intermediate_size", "intermediate_size")
    shared = 0
    shared_size = 0
    shared_gate = False
    if model_type == "qwen2_moe":
        shared_size = r.int("shared_expert_intermediate_size", "intermediate_size", default=0, minimum=0)
        shared = 1 if shared_size else 0
        shared_gate = bool(shared)
    elif model_type == "llama4_text":
        # modeling_llama4.py Llama4TextMoe: one shared expert of `intermediate_size` beside the routed ones
        shared, shared_size = 1, expert_size
    elif cfg.get("n_shared_experts"):
        shared = r.int("n_shared_experts", "num_experts", minimum=0)
        shared_size = expert_size * shared
    moe = MoE(
        num_experts=n_experts,
        experts_per_token=top_k,
        expert_intermediate_size=expert_size,
        num_shared_experts=shared,
        shared_intermediate_size=shared_size,
        shared_expert_gate=shared_gate,
        router_bias=model_type == "gpt_oss",
        expert_bias=model_type == "gpt_oss",
    )
    if model_type in ("deepseek_v2", "deepseek_v3"):
        first_dense = r.int("first_k_dense_replace", "num_layers", default=0, minimum=0)
        freq = r.int("moe_layer_freq", "num_layers", default=1)
        layers = tuple(i >= first_dense and i % freq == 0 for i in range(num_layers))
    elif model_type in ("qwen2_moe", "qwen3_moe"):
        step = r.int("decoder_sparse_step", "num_layers", default=1)
        mlp_only = cfg.get("mlp_only_layers") or []
        if not isinstance(mlp_only, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in mlp_only):
            raise QuantLensError("config_invalid_value", "config.json mlp_only_layers must be a list of layer numbers.")
        layers = tuple(i not in mlp_only and (i + 1) % step == 0 for i in range(num_layers))
    elif model_type == "llama4_text":
        # Llama4TextConfig: moe_layers default list(range(step - 1, num_hidden_layers, step))
        explicit = cfg.get("moe_layers")
        if isinstance(explicit, list) and explicit:
            if not all(isinstance(i, int) and not isinstance(i, bool) for i in explicit):
                raise QuantLensError("config_invalid_value", "config.json moe_layers must be a list of layer numbers.")
            chosen = set(explicit)
        else:
            step = r.int("interleave_moe_layer_step", "num_layers", default=1)
            chosen = set(range(step - 1, num_layers, step))
        layers = tuple(i in chosen for i in range(num_layers))
    else:
        layers = (True,) * num_layers
    return moe, layers


def architecture_from_config(config: dict[str, Any]) -> Architecture:
    """Normalise a Hugging Face config.json dict into an Architecture.

    Known families are read with their own rules (biases, norms, fused projections, window patterns); every
    other type the installed transformers defines (and multimodal wrappers carrying their tower) is read from the
    model's own definition (core.sizing.inventory_arch). An unknown `model_type` with only decoder fields is read
    as a Llama-like decoder with a warning (`architecture_known` false); one with fields a decoder does not have
    (mamba_*, ssm_*, hybrid_override_pattern, ...) is refused with a sentence naming it.
    """
    if not isinstance(config, dict):
        raise QuantLensError("config_invalid_json", "config.json must be a JSON object ({...}).")
    warnings: list[str] = []
    if config.get("auto_map"):
        warnings.append(
            "config.json declares custom code (auto_map); QuantLens never runs it and counts from the standard fields."
        )
    quant = config.get("quantization_config")
    if isinstance(quant, dict) and quant.get("quant_method"):
        warnings.append(
            f"This config describes a pre-quantized checkpoint (quant_method={str(quant['quant_method'])[:20]}); "
            "parameters are counted from the architecture, not from its packed tensors, which would undercount."
        )
    model_type = config.get("model_type")
    if model_type is not None and not isinstance(model_type, str):
        raise QuantLensError("config_invalid_value", "config.json field 'model_type' must be a string.")
    model_type = (model_type or "").lower()
    from core.sizing import inventory_arch

    hand_written = is_known(model_type) or model_type in TEXT_CONFIG_TYPES
    named = inventory_arch.transformers_type(config) if not hand_written else None
    if named and is_known(named) and named != model_type:
        # Kimi-K2 ("kimi_k2") names transformers' DeepseekV3ForCausalLM: that family's own rules count it.
        arch = architecture_from_config(dict(config, model_type=named))
        note = (f"model_type {model_type!r} is counted as {FAMILIES[named].label} ({named}), the transformers class "
                "its config names.")
        return _with_warnings(arch, [*warnings, note])
    if inventory_arch.needs_inventory(config, hand_written):
        own = [w for w in warnings if not w.startswith("config.json declares custom code")]
        return _with_warnings(inventory_arch.architecture_from_inventory(config), own)
    text_config = config.get("text_config")
    if isinstance(text_config, dict) and not config.get("hidden_size") and not config.get("n_embd"):
        warnings.append("Only the language model (text_config) is counted; a vision or audio tower is not included.")
        inner = dict(text_config)
        inner.setdefault("model_type", TEXT_CONFIG_TYPES.get(model_type, model_type))
        if "tie_word_embeddings" in config and "tie_word_embeddings" not in text_config:
            inner["tie_word_embeddings"] = config["tie_word_embeddings"]
        arch = architecture_from_config({k: v for k, v in inner.items() if k != "text_config"})
        return _with_warnings(arch, warnings)
    if not is_known(model_type) and inventory_arch.odd_fields(config):
        raise inventory_arch.refusal(config, model_type)
    if not is_known(model_type):
        label = repr(model_type) if model_type else "no model_type"
        warnings.append(
            f"Unknown model family ({label}); counted as a Llama-style decoder from the standard fields (best effort)."
        )
    r = _Reader(config)
    reader = family(model_type).reader
    if reader == "gpt2":
        arch = _gpt2(r)
    elif reader == "bert":
        arch = _bert(r)
    else:
        arch = _decoder(r, model_type)
    return _with_warnings(arch, warnings)


def _with_warnings(arch: Architecture, warnings: list[str]) -> Architecture:
    if not warnings:
        return arch
    from dataclasses import replace

    return replace(arch, warnings=tuple(arch.warnings) + tuple(warnings))


def _gpt2(r: _Reader) -> Architecture:
    hidden = r.int(("n_embd", "hidden_size"), "hidden_size")
    layers = r.int(("n_layer", "num_hidden_layers"), "num_layers")
    heads = r.int(("n_head", "num_attention_heads"), "num_heads")
    _check_divisible(hidden, heads, "n_embd", "n_head")
    positions = r.int(("n_positions", "n_ctx", "max_position_embeddings"), "max_positions", default=1024)
    return Architecture(
        model_type="gpt2",
        vocab_size=r.int("vocab_size", "vocab_size"),
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=heads,
        head_dim=hidden // heads,
        intermediate_size=r.int("n_inner", "intermediate_size", default=4 * hidden),
        tie_word_embeddings=r.bool("tie_word_embeddings", True),
        gated_mlp=False,
        qkv_bias=True,
        o_bias=True,
        mlp_bias=True,
        norm="layer",
        fused_qkv=True,
        learned_positions=positions,
        layer_windows=(0,) * layers,
        max_position_embeddings=positions,
    )


def _bert(r: _Reader) -> Architecture:
    hidden = r.int("hidden_size", "hidden_size")
    layers = r.int("num_hidden_layers", "num_layers")
    heads = r.int("num_attention_heads", "num_heads")
    _check_divisible(hidden, heads, "hidden_size", "num_attention_heads")
    positions = r.int("max_position_embeddings", "max_positions", default=512)
    archs = r.cfg.get("architectures") or []
    masked_lm = isinstance(archs, list) and "BertForMaskedLM" in archs
    return Architecture(
        model_type="bert",
        vocab_size=r.int("vocab_size", "vocab_size"),
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=heads,
        head_dim=hidden // heads,
        intermediate_size=r.int("intermediate_size", "intermediate_size", default=4 * hidden),
        tie_word_embeddings=True,
        gated_mlp=False,
        qkv_bias=True,
        o_bias=True,
        mlp_bias=True,
        norm="layer",
        learned_positions=positions,
        token_type_vocab=r.int("type_vocab_size", "vocab_size", default=2, minimum=0),
        pooler=not masked_lm,
        mlm_head=masked_lm,
        is_encoder=True,
        layer_windows=(0,) * layers,
        max_position_embeddings=positions,
    )


def _check_divisible(a: int, b: int, name_a: str, name_b: str) -> None:
    if a % b:
        raise QuantLensError("config_invalid_value", f"config.json {name_a}={a} is not divisible by {name_b}={b}.")


def _decoder(r: _Reader, model_type: str) -> Architecture:
    cfg = r.cfg
    hidden = r.int(("hidden_size", "n_embd", "d_model"), "hidden_size")
    layers = r.int(("num_hidden_layers", "n_layer", "num_layers"), "num_layers")
    heads = r.int(("num_attention_heads", "n_head"), "num_heads")
    kv_heads = r.int(("num_key_value_heads", "num_kv_heads"), "num_kv_heads", default=heads)
    if model_type == "falcon" and not cfg.get("new_decoder_architecture") and r.bool("multi_query", True):
        kv_heads = 1
    if kv_heads > heads or heads % kv_heads:
        raise QuantLensError(
            "config_invalid_value",
            f"config.json has {heads} attention heads and {kv_heads} key/value heads; heads must be a multiple of KV heads.",
        )
    if r.has("head_dim"):
        head_dim = r.int("head_dim", "head_dim")
    else:
        _check_divisible(hidden, heads, "hidden_size", "num_attention_heads")
        head_dim = hidden // heads
    fam = family(model_type)
    if model_type == "llama4_text":  # dense layers' MLP; the experts use intermediate_size (see _moe)
        intermediate = r.int(("intermediate_size_mlp", "intermediate_size"), "intermediate_size")
    else:
        intermediate = r.int(("intermediate_size", "ffn_hidden_size", "n_inner"), "intermediate_size",
                             default=4 * hidden if model_type in ("gpt_neox", "falcon", "starcoder2") else None)
    vocab = r.int(("vocab_size", "padded_vocab_size"), "vocab_size")
    tie = r.bool("tie_word_embeddings", fam.tie_default)

    # Static rules come from the families table; the config switches below are named per family.
    attention_bias = r.bool("attention_bias", False)
    mlp_bias = r.bool("mlp_bias", False)
    qkv_bias = attention_bias or fam.qkv_bias
    o_bias = attention_bias or fam.o_bias
    gated = fam.gated_mlp
    norm = fam.norm
    norms_per_layer = fam.norms_per_layer
    qk_norm = fam.qk_norm
    qk_full = fam.qk_norm_full_width
    fused_qkv = fam.fused_qkv
    fused_gate_up = fam.fused_gate_up
    sinks = fam.attention_sinks
    lm_head_bias = False

    if model_type == "gpt_neox":
        qkv_bias = o_bias = r.bool("attention_bias", True)
        mlp_bias = True
    elif model_type == "starcoder2":
        qkv_bias = o_bias = mlp_bias = r.bool("use_bias", True)
    elif model_type == "falcon":
        qkv_bias = o_bias = mlp_bias = r.bool("bias", False)
        norms_per_layer = 2 if cfg.get("new_decoder_architecture") else (1 if r.bool("parallel_attn", True) else 2)
    elif model_type == "phi":
        mlp_bias = lm_head_bias = True
        qk_norm = r.bool("qk_layernorm", False)
    elif model_type == "internlm2":
        qkv_bias = o_bias = r.bool("bias", False)

    moe, moe_layers = _moe(r, model_type, layers, intermediate)
    mla = None
    if model_type in ("deepseek_v2", "deepseek_v3") or r.has("kv_lora_rank"):
        q_lora = r.int("q_lora_rank", "rank", default=0, minimum=0) if cfg.get("q_lora_rank") is not None else 0
        mla = MLA(
            q_lora_rank=q_lora,
            kv_lora_rank=r.int("kv_lora_rank", "rank"),
            qk_rope_head_dim=r.int("qk_rope_head_dim", "head_dim"),
            qk_nope_head_dim=r.int("qk_nope_head_dim", "head_dim"),
            v_head_dim=r.int("v_head_dim", "head_dim"),
        )
        head_dim = mla.qk_nope_head_dim + mla.qk_rope_head_dim
        kv_heads = heads

    positions = r.int(("max_position_embeddings", "n_positions", "seq_length"), "max_positions", default=0, minimum=0)
    return Architecture(
        model_type=model_type or "unknown",
        vocab_size=vocab,
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=intermediate,
        tie_word_embeddings=tie,
        gated_mlp=gated,
        qkv_bias=qkv_bias,
        o_bias=o_bias,
        mlp_bias=mlp_bias,
        norm=norm,
        norms_per_layer=norms_per_layer,
        qk_norm=qk_norm,
        qk_norm_full_width=qk_full,
        lm_head_bias=lm_head_bias,
        fused_qkv=fused_qkv,
        fused_gate_up=fused_gate_up,
        attention_sinks=sinks,
        mxfp4_experts=fam.mxfp4_experts and moe is not None,
        moe=moe,
        moe_layers=moe_layers,
        mla=mla,
        layer_windows=_layer_windows(r, model_type, layers),
        window_kind=fam.window_kind,
        max_position_embeddings=positions,
    )


# --------------------------------------------------------------------------------------------------
# Tensor inventory and parameter counts
# --------------------------------------------------------------------------------------------------


def _norm(name: str, size: int, norm: str, layer: int | None) -> list[Tensor]:
    tensors = [Tensor(f"{name}.weight", (size,), "norm", layer)]
    if norm == "layer":
        tensors.append(Tensor(f"{name}.bias", (size,), "norm", layer))
    return tensors


def _linear(name: str, out_f: int, in_f: int, role: str, layer: int | None, bias: bool) -> list[Tensor]:
    tensors = [Tensor(f"{name}.weight", (out_f, in_f), role, layer)]
    if bias:
        tensors.append(Tensor(f"{name}.bias", (out_f,), "bias", layer))
    return tensors


def _attention(a: Architecture, i: int) -> list[Tensor]:
    p = f"blk.{i}."
    e = a.hidden_size
    t: list[Tensor] = []
    if a.mla is not None:
        m = a.mla
        qk_head = m.qk_nope_head_dim + m.qk_rope_head_dim
        if m.q_lora_rank:
            t += _linear(p + "attn_q_a", m.q_lora_rank, e, "attention", i, a.qkv_bias)
            t += _norm(p + "attn_q_a_norm", m.q_lora_rank, "rms", i)
            t += _linear(p + "attn_q_b", a.num_heads * qk_head, m.q_lora_rank, "attention", i, False)
        else:
            t += _linear(p + "attn_q", a.num_heads * qk_head, e, "attention", i, False)
        t += _linear(p + "attn_kv_a_mqa", m.kv_lora_rank + m.qk_rope_head_dim, e, "attention", i, a.qkv_bias)
        t += _norm(p + "attn_kv_a_norm", m.kv_lora_rank, "rms", i)
        t += _linear(p + "attn_kv_b", a.num_heads * (m.qk_nope_head_dim + m.v_head_dim), m.kv_lora_rank, "attention", i, False)
        t += _linear(p + "attn_output", e, a.num_heads * m.v_head_dim, "attention", i, a.o_bias)
        return t
    q_out = a.num_heads * a.head_dim
    kv_out = a.num_kv_heads * a.head_dim
    if a.fused_qkv:
        t += _linear(p + "attn_qkv", q_out + 2 * kv_out, e, "attention", i, a.qkv_bias)
    else:
        t += _linear(p + "attn_q", q_out, e, "attention", i, a.qkv_bias)
        t += _linear(p + "attn_k", kv_out, e, "attention", i, a.qkv_bias)
        t += _linear(p + "attn_v", kv_out, e, "attention", i, a.qkv_bias)
    t += _linear(p + "attn_output", e, q_out, "attention", i, a.o_bias)
    if a.qk_norm:
        kind = "layer" if a.norm == "layer" else "rms"
        t += _norm(p + "attn_q_norm", q_out if a.qk_norm_full_width else a.head_dim, kind, i)
        t += _norm(p + "attn_k_norm", kv_out if a.qk_norm_full_width else a.head_dim, kind, i)
    if a.attention_sinks:
        t.append(Tensor(p + "attn_sinks.weight", (a.num_heads,), "norm", i))
    return t


def _dense_mlp(a: Architecture, i: int, size: int, suffix: str = "", role: str = "mlp") -> list[Tensor]:
    p = f"blk.{i}."
    e = a.hidden_size
    if a.gated_mlp and a.fused_gate_up:
        return _linear(p + "ffn_up" + suffix, 2 * size, e, role, i, a.mlp_bias) + _linear(
            p + "ffn_down" + suffix, e, size, role, i, a.mlp_bias
        )
    t: list[Tensor] = []
    if a.gated_mlp:
        t += _linear(p + "ffn_gate" + suffix, size, e, role, i, a.mlp_bias)
    t += _linear(p + "ffn_up" + suffix, size, e, role, i, a.mlp_bias)
    t += _linear(p + "ffn_down" + suffix, e, size, role, i, a.mlp_bias)
    return t


def _moe_mlp(a: Architecture, i: int) -> list[Tensor]:
    assert a.moe is not None
    m = a.moe
    p = f"blk.{i}."
    e = a.hidden_size
    n = m.num_experts
    t = [Tensor(p + "ffn_gate_inp.weight", (n, e), "router", i)]
    if m.router_bias:
        t.append(Tensor(p + "ffn_gate_inp.bias", (n,), "bias", i))
    size = m.expert_intermediate_size
    t.append(Tensor(p + "ffn_gate_exps.weight", (n, size, e), "expert", i))
    t.append(Tensor(p + "ffn_up_exps.weight", (n, size, e), "expert", i))
    t.append(Tensor(p + "ffn_down_exps.weight", (n, e, size), "expert", i))
    if m.expert_bias:
        t.append(Tensor(p + "ffn_gate_exps.bias", (n, size), "expert_bias", i))
        t.append(Tensor(p + "ffn_up_exps.bias", (n, size), "expert_bias", i))
        t.append(Tensor(p + "ffn_down_exps.bias", (n, e), "expert_bias", i))
    if m.shared_intermediate_size:
        t += _dense_mlp(a, i, m.shared_intermediate_size, "_shexp", "shared_expert")
        if m.shared_expert_gate:
            t.append(Tensor(p + "ffn_gate_inp_shexp.weight", (1, e), "router", i))
    return t


def _encoder_layer(a: Architecture, i: int) -> list[Tensor]:
    p = f"blk.{i}."
    e = a.hidden_size
    t = _attention(a, i)
    t += _norm(p + "attn_output_norm", e, "layer", i)
    t += _linear(p + "ffn_up", a.intermediate_size, e, "mlp", i, True)
    t += _linear(p + "ffn_down", e, a.intermediate_size, "mlp", i, True)
    t += _norm(p + "layer_output_norm", e, "layer", i)
    return t


def _layer_norms(a: Architecture, i: int) -> list[Tensor]:
    p = f"blk.{i}."
    e = a.hidden_size
    names = ["attn_norm", "ffn_norm", "post_attention_norm", "post_ffw_norm"][: a.norms_per_layer]
    t: list[Tensor] = []
    for name in names:
        t += _norm(p + name, e, "layer" if a.norm == "layer" else "rms", i)
    return t


@lru_cache(maxsize=256)
def tensor_inventory(a: Architecture) -> tuple[Tensor, ...]:
    """Every weight tensor of the model, in GGUF order and naming (token_embd, blk.N.*, output).

    For an architecture read from the model's own definition: its parameters as transformers names them."""
    if a.inventory_tensors:
        return a.inventory_tensors
    e = a.hidden_size
    t = [Tensor("token_embd.weight", (a.vocab_size, e), "embedding")]
    if a.learned_positions:
        t.append(Tensor("position_embd.weight", (a.learned_positions, e), "position"))
    if a.token_type_vocab:
        t.append(Tensor("token_types.weight", (a.token_type_vocab, e), "position"))
    if a.is_encoder:
        t += _norm("token_embd_norm", e, "layer", None)
    for i in range(a.num_layers):
        if a.is_encoder:
            t += _encoder_layer(a, i)
            continue
        t += _layer_norms(a, i)
        t += _attention(a, i)
        if a.is_moe_layer(i):
            t += _moe_mlp(a, i)
        else:
            t += _dense_mlp(a, i, a.intermediate_size)
    if a.is_encoder:
        if a.pooler:
            t += _linear("pooler", e, e, "output", None, True)
        if a.mlm_head:
            t += _linear("mlm_transform", e, e, "output", None, True)
            t += _norm("mlm_transform_norm", e, "layer", None)
            t.append(Tensor("output.bias", (a.vocab_size,), "bias"))
    else:
        t += _norm("output_norm", e, "layer" if a.norm == "layer" else "rms", None)
        if not a.tie_word_embeddings:
            t.append(Tensor("output.weight", (a.vocab_size, e), "output"))
        if a.lm_head_bias:
            t.append(Tensor("output.bias", (a.vocab_size,), "bias"))
    return tuple(t)


@lru_cache(maxsize=256)
def parameter_count(a: Architecture) -> int:
    """Exact number of parameters (what PyTorch counts for a model built from the config)."""
    return sum(t.numel for t in tensor_inventory(a))


@lru_cache(maxsize=256)
def active_parameter_count(a: Architecture) -> int:
    """Parameters used per token: for MoE only top-k of the routed experts (shared experts always run)."""
    if a.inventory_key:
        return a.active_parameters_override
    total = parameter_count(a)
    if a.moe is None:
        return total
    expert = sum(t.numel for t in tensor_inventory(a) if t.role in ("expert", "expert_bias"))
    inactive = expert - expert * a.moe.experts_per_token // a.moe.num_experts
    return total - inactive


# How each family's model card counts "active" parameters beyond the routing (top-k of the experts): the roles it
# leaves out. OpenAI's gpt-oss card (5.1B of 117B) leaves out the input embedding but keeps the unembedding;
# Z.ai's GLM-4.5-Air (12B of 106B) and Qwen3-Next (80B-A3B) leave out both embedding tables. Mixtral (12.9B),
# Qwen3-30B-A3B (3.3B), DeepSeek-V3 (37B), Kimi-K2 (32B) count everything.
CARD_ACTIVE_LEAVES_OUT: dict[str, tuple[str, ...]] = {
    "gpt_oss": ("embedding",), "glm4_moe": ("embedding", "output"), "qwen3_next": ("embedding", "output"),
}


@lru_cache(maxsize=256)
def card_active_parameter_count(a: Architecture) -> int:
    """Active parameters counted the way the family's model card counts them (see CARD_ACTIVE_LEAVES_OUT)."""
    active = active_parameter_count(a)
    left_out = CARD_ACTIVE_LEAVES_OUT.get(a.model_type, ())
    if not left_out or a.tie_word_embeddings:
        return active
    return active - sum(t.numel for t in tensor_inventory(a) if t.role in left_out)


@lru_cache(maxsize=256)
def embedding_parameter_count(a: Architecture) -> int:
    """The input lookup tables (token, position, token-type embeddings): read one row per token, never a matmul.

    OpenAI's "3.6B active" for gpt-oss-20b leaves the token embedding out but keeps the (untied) unembedding.
    A tied table is also the output layer, which every token multiplies with, so it is not subtracted.
    """
    if a.embedding_parameters_override >= 0:
        return a.embedding_parameters_override
    lookups = ("embedding", "position")
    return sum(t.numel for t in tensor_inventory(a) if t.role in lookups
               and not (t.role == "embedding" and a.tie_word_embeddings))
