"""Which configs the hand-written rules may size, and an Architecture from the model's own definition for the rest.

Why a router: the hand-written path (core.sizing.architecture) is exact for the families in core.sizing.families,
proved tensor for tensor against a meta-device build by tests/core/test_inventory_reference.py, and it is instant.
Every other config (hybrids, pure SSMs, new MLA types, encoder-decoders, multimodal wrappers with their towers)
is built by transformers on the meta device (core.sizing.meta_inventory) and read by core.sizing.inventory_plan.
A config that neither describes is refused with a sentence naming its architecture, never counted as a Llama.

Which model types the installed transformers defines is read from its source text (ast, no import), so this
decision costs milliseconds and never loads torch in the app's process.

Standard library only at top level.
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from core.errors import QuantLensError

# Config keys a plain attention + MLP decoder never has: their presence means another kind of layer exists.
NON_DECODER_PREFIXES = ("mamba_", "ssm_", "linear_", "conv_", "time_step", "block_", "encoder_", "decoder_")
NON_DECODER_KEYS = ("hybrid_override_pattern", "attn_layer_period", "attn_layer_offset", "full_attn_idxs",
                    "state_size", "full_attention_interval", "is_encoder_decoder", "num_decoder_layers", "d_model",
                    "vision_config", "audio_config", "layers_block_type", "expand", "n_groups")
# Layers x routed experts a meta build may create (each expert is its own module in transformers 4.57): the
# largest published models (Qwen3-Next 48 x 512, Kimi-K2 61 x 384) stay well below; a hostile config does not
# get to hold a build for minutes.
MAX_EXPERT_MODULES = 65_536
DECODER_LAYER_TYPES = ("full_attention", "sliding_attention", "chunked_attention", "attention")
_AUTO = ("MODEL_FOR_CAUSAL_LM_MAPPING_NAMES", "MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES",
         "MODEL_FOR_VISION_2_SEQ_MAPPING_NAMES", "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES",
         "MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES", "MODEL_MAPPING_NAMES")


def _literal_mapping(path: Path, names: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """Top-level `NAME = OrderedDict([...])` string tables of a transformers source file, read with ast."""
    out: dict[str, dict[str, str]] = {}
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return out
    for node in tree.body:
        if not isinstance(node, ast.Assign) or len(node.targets) != 1 or not isinstance(node.targets[0], ast.Name):
            continue
        name = node.targets[0].id
        if name not in names or not isinstance(node.value, ast.Call) or not node.value.args:
            continue
        table: dict[str, str] = {}
        arg = node.value.args[0]
        for elt in getattr(arg, "elts", []):
            if isinstance(elt, ast.Tuple) and len(elt.elts) == 2 and all(isinstance(e, ast.Constant) for e in elt.elts):
                k, v = elt.elts[0].value, elt.elts[1].value
                if isinstance(k, str) and isinstance(v, str):
                    table[k] = v
        out[name] = table
    return out


@lru_cache(maxsize=1)
def transformers_tables() -> tuple[frozenset[str], dict[str, str], str]:
    """(model types transformers defines, class name -> model type, version), from its source without importing."""
    spec = importlib.util.find_spec("transformers")
    if spec is None or not spec.submodule_search_locations:
        return frozenset(), {}, ""
    root = Path(next(iter(spec.submodule_search_locations)))
    configs = _literal_mapping(root / "models" / "auto" / "configuration_auto.py", ("CONFIG_MAPPING_NAMES",))
    models = _literal_mapping(root / "models" / "auto" / "modeling_auto.py", _AUTO)
    class_to_type: dict[str, str] = {}
    for name in _AUTO:
        for model_type, cls in models.get(name, {}).items():
            # Several types share a class (llama, code_llama -> LlamaForCausalLM): the one the class is named after.
            own = cls.lower().startswith(model_type.replace("_", ""))
            if cls not in class_to_type or (own and not cls.lower().startswith(class_to_type[cls].replace("_", ""))):
                class_to_type[cls] = model_type
    version = ""
    try:
        for line in (root / "__init__.py").read_text(encoding="utf-8").splitlines():
            if line.startswith("__version__"):
                version = line.split("=", 1)[1].strip().strip("\"'")
                break
    except OSError:
        pass
    return frozenset(configs.get("CONFIG_MAPPING_NAMES", {})), class_to_type, version


def odd_fields(config: dict[str, Any]) -> list[str]:
    """The config's fields that a plain attention + MLP decoder does not have (empty for a Llama-like config)."""
    found = [k for k in config if k in NON_DECODER_KEYS or k.startswith(NON_DECODER_PREFIXES)]
    layer_types = config.get("layer_types")
    if isinstance(layer_types, list) and any(isinstance(t, str) and t not in DECODER_LAYER_TYPES for t in layer_types):
        found.append("layer_types")
    return sorted(set(found))


def transformers_type(config: dict[str, Any]) -> str | None:
    """The model type transformers builds this config as: its own model_type, or the type of the transformers
    class its `architectures` names (Kimi-K2's "kimi_k2" names DeepseekV3ForCausalLM). None when neither."""
    types, class_to_type, _ = transformers_tables()
    model_type = config.get("model_type")
    if isinstance(model_type, str) and model_type in types:
        return model_type
    archs = config.get("architectures")
    # Only for a config whose fields all fit that class: a custom hybrid naming LlamaForCausalLM is not a Llama.
    if isinstance(archs, list) and not odd_fields(config):
        for name in archs:
            if isinstance(name, str) and name in class_to_type:
                return class_to_type[name]
    return None


def needs_inventory(config: dict[str, Any], hand_written: bool) -> bool:
    """True when the hand-written rules cannot be trusted with this config and the model's definition must answer."""
    if hand_written:
        # A multimodal wrapper the hand rules know (Gemma 3, Llama 4) is counted by its definition when the config
        # carries the tower, so the tower is counted too.
        return isinstance(config.get("vision_config"), dict) or isinstance(config.get("audio_config"), dict)
    return transformers_type(config) is not None


def refusal(config: dict[str, Any], model_type: str) -> QuantLensError:
    """The sentence for an architecture nobody here describes."""
    _, _, version = transformers_tables()
    archs = config.get("architectures")
    cls = f" ({archs[0][:60]})" if isinstance(archs, list) and archs and isinstance(archs[0], str) else ""
    fields = ", ".join(odd_fields(config)[:4])
    label = repr(model_type[:40]) if model_type else "with no model_type"
    return QuantLensError(
        "architecture_unknown",
        f"Architecture {label}{cls} is not described by QuantLens's rules or by the installed transformers "
        f"{version or '(not installed)'}, and its config has fields a plain decoder does not have ({fields}); it is "
        "not guessed as a Llama-style model. What can be sized: give its parameter count (e.g. '9B') for weights at "
        "every precision, or look it up on the Hub, whose safetensors headers list every tensor.")


_ARCH_CACHE: dict[str, Any] = {}
_ARCH_CACHE_SIZE = 32


def clear_cache() -> None:
    """Forget built architectures and in-memory inventories (the disk cache stays): a fresh app process."""
    from core.sizing import gguf_inventory
    from core.sizing.meta_inventory import clear_memory_cache

    _ARCH_CACHE.clear()
    clear_memory_cache()
    gguf_inventory.clear_cache()


def architecture_from_inventory(config: dict[str, Any]) -> Any:
    """An Architecture built from the model's own definition (meta device, cached), for configs that need it.

    Cached per config hash so a later click does no per-tensor work at all."""
    from core.sizing.meta_inventory import config_hash

    key = config_hash(config)
    hit = _ARCH_CACHE.get(key)
    if hit is not None:
        return hit
    arch = _architecture_from_inventory(config)
    if len(_ARCH_CACHE) >= _ARCH_CACHE_SIZE:
        _ARCH_CACHE.pop(next(iter(_ARCH_CACHE)))
    _ARCH_CACHE[key] = arch
    return arch


def _architecture_from_inventory(config: dict[str, Any]) -> Any:
    _check_bounds(config)
    from core.sizing.architecture import Architecture, Tensor
    from core.sizing.inventory_plan import _LAYER_RE, component_of, plan_inventory, role_of
    from core.sizing.meta_inventory import build_inventory

    target = transformers_type(config)
    built = dict(config)
    if target and built.get("model_type") != target:
        built["model_type"] = target
    inv = build_inventory(built)
    plan = plan_inventory(inv)
    text = inv.text
    declared = config.get("model_type") if isinstance(config.get("model_type"), str) else inv.model_type
    tensors = []
    for t in inv.tensors:
        comp = component_of(t.name, inv.encoder_decoder)
        layer = None
        m = _LAYER_RE.match(t.name)
        if m and comp in ("language", "decoder"):
            layer = int(m.group("i"))
        tensors.append(Tensor(t.name, t.shape, role_of(t, comp), layer))
    heads = _first_int(text, "num_attention_heads", "num_heads") or 1
    kv_heads = _first_int(text, "num_key_value_heads") or heads
    hidden = _first_int(text, "hidden_size", "d_model") or 1
    head_dim = _first_int(text, "head_dim", "d_kv") or max(1, hidden // heads)
    vocab = next((t.shape[0] for t in inv.tensors if role_of(t, "language") == "embedding"), 1)
    layers = plan.layers
    windows = tuple(layer.window for layer in layers)
    kinds = plan.layer_kinds()
    warnings = []
    if config.get("auto_map"):
        warnings.append("config.json declares custom code (auto_map); QuantLens never runs it and builds "
                        f"transformers' own {inv.model_class} from the config.")
    if declared != inv.model_type:
        warnings.append(f"model_type {declared!r} is built as transformers' {inv.model_class} ({inv.model_type}), "
                        "the class its config names.")
    if isinstance(config.get("num_nextn_predict_layers"), int) and config["num_nextn_predict_layers"] > 0:
        from core.sizing.gguf_inventory import MTP_WRITTEN

        gguf_note = (" llama.cpp's converter writes them into the GGUF file, so GGUF sizes include them."
                     if inv.model_type in MTP_WRITTEN else "")
        warnings.append(f"The {config['num_nextn_predict_layers']} multi-token-prediction (MTP) layer(s) in the "
                        "checkpoint are not part of the model transformers builds and are not counted in the "
                        "parameters; model cards leave them out of the total too." + gguf_note)
    encoder_tokens = plan.encoder_tokens
    arch = Architecture(
        model_type=declared or inv.model_type, vocab_size=vocab, hidden_size=hidden,
        num_layers=max(1, len(layers)), num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim,
        intermediate_size=_first_int(text, "intermediate_size") or 4 * hidden,
        tie_word_embeddings=plan.tied_embeddings, is_encoder=False,
        layer_windows=windows, window_kind="chunked" if "chunked_attention" in str(text.get("layer_types")) else "sliding",
        max_position_embeddings=_first_int(text, "max_position_embeddings") or 0,
        warnings=tuple(warnings),
        inventory_key=inv.config_hash, inventory_tensors=tuple(tensors),
        layer_kv_rows=tuple(layer.kv_rows for layer in layers),
        layer_state_values=tuple(layer.state_values for layer in layers),
        cross_kv_rows=tuple(sum(layer.cross_rows) for layer in layers) if plan.encoder_decoder else (),
        encoder_tokens=encoder_tokens, active_parameters_override=plan.active_parameters,
        embedding_parameters_override=plan.embedding_parameters, components=plan.components,
        image_tokens=plan.image_tokens, image_resolution=plan.image_resolution,
        layer_kinds=tuple(sorted(kinds.items())), source=inv.library_version,
        moe_experts=(plan.num_experts, plan.experts_per_token),
        definition_config=_definition_config(config, text),
    )
    return arch if not plan.encoder_decoder else replace(arch, encoder_decoder=True)


def _definition_config(config: dict[str, Any], text: dict[str, Any]) -> dict[str, Any]:
    """The language model's config fields as the GGUF converter reads them: the config as given (its text_config
    for a multimodal wrapper), with the values transformers resolved (defaults filled in) over it."""
    raw = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    out = {k: v for k, v in raw.items() if isinstance(k, str) and not isinstance(v, dict) or k == "rope_scaling"}
    out.update(text)
    return out


def _first_int(d: dict[str, Any], *keys: str) -> int:
    for k in keys:
        v = d.get(k)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return 0


def _check_bounds(config: dict[str, Any], depth: int = 0) -> None:
    """The shared config bounds (core.config_bounds) on this config and its sub-configs, before anything is built."""
    from core.config_bounds import TABLE

    for bound in TABLE:
        for key in bound.keys:
            value = config.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if value > bound.maximum or value < 0:
                raise QuantLensError("config_out_of_bounds", f"config.json field {key!r} = {value} is outside 0 to "
                                     f"{bound.maximum:,}.")
    layers = max((v for k in ("num_hidden_layers", "num_layers", "n_layer", "decoder_layers") if isinstance(
        v := config.get(k), int)), default=1)
    experts = max((v for k in ("num_experts", "num_local_experts", "n_routed_experts", "moe_num_experts")
                   if isinstance(v := config.get(k), int)), default=1)
    if layers * max(1, experts) > MAX_EXPERT_MODULES:
        raise QuantLensError("config_out_of_bounds", f"config.json asks for {layers:,} layers x {experts:,} experts; "
                             f"more than {MAX_EXPERT_MODULES:,} (Qwen3-Next has 24,576) is not built.")
    if depth < 2:
        for sub in config.values():
            if isinstance(sub, dict):
                _check_bounds(sub, depth + 1)
