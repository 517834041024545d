"""Every weight tensor of a model, read from the model's own definition: transformers builds it on the meta device.

Why: hand-written shapes per family miss what they were not written for (hybrid SSM/attention layers, MLA on a
new `model_type`, vision towers, encoder-decoder stacks) and then answer wrongly without a word. transformers
already holds every family's definition; building the model on PyTorch's meta device allocates no weights, so
its parameters (name, shape, dtype) are the exact inventory the checkpoint stores, tied weights counted once
(`named_parameters()` deduplicates them, as the safetensors file stores one copy).

Rules held here:
- the config is only ever JSON (already bounded by core.config_bounds); `auto_map` and `quantization_config`
  are dropped, `trust_remote_code` is never set, nothing is downloaded (HF_HUB_OFFLINE in the worker);
- the build runs in a child process with a time and address-space limit (a hostile config cannot hang or
  exhaust the app), unless a caller (tests, the child itself) asks for it in-process;
- results are cached per config hash: an in-memory LRU (bounded) and an optional on-disk JSON cache written
  atomically (temp file + os.replace), so a second click is arithmetic.

Standard library at top level: torch and transformers are imported inside `_build_in_process` only.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.errors import QuantLensError

BUILD_TIMEOUT_S = 540.0  # Kimi-K2's 23k expert modules take ~4 minutes on a busy 2-core machine
BUILD_MEMORY_BYTES = 24 * 2**30  # address-space limit of the child (torch maps a lot of virtual memory)
CACHE_SIZE = 64
FORMAT_VERSION = 1
DISK_CACHE_ENV = "QUANTLENS_INVENTORY_CACHE"  # a folder; "" or "off" disables the on-disk cache
DEFAULT_DISK_CACHE = Path.home() / ".cache" / "quantlens" / "inventory"

# Keys a meta build must not see: custom code, quantizers, bookkeeping.
_DROPPED_KEYS = ("auto_map", "quantization_config", "transformers_version", "_name_or_path", "torch_dtype", "dtype",
                 "use_cache", "attn_implementation", "_attn_implementation")
# Auto-class mappings tried in order when `architectures` names no class transformers maps for this model_type.
_AUTO_MAPPINGS = ("MODEL_FOR_CAUSAL_LM_MAPPING_NAMES", "MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES",
                  "MODEL_FOR_VISION_2_SEQ_MAPPING_NAMES", "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES",
                  "MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES", "MODEL_FOR_MASKED_LM_MAPPING_NAMES",
                  "MODEL_MAPPING_NAMES")
# Config attributes copied out of the built config (the text/decoder part of a composite config).
_TEXT_KEYS = ("num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads", "head_dim",
              "layer_types", "sliding_window", "attention_chunk_size", "max_position_embeddings",
              "num_experts_per_tok", "experts_per_token", "num_experts_per_token", "moe_topk", "top_k",
              "num_local_experts", "n_routed_experts", "num_experts", "moe_num_experts",
              "ssm_state_size", "mamba_d_state", "state_size", "mamba_d_conv", "conv_kernel", "ssm_conv",
              "linear_num_value_heads", "linear_num_key_heads", "linear_key_head_dim", "linear_value_head_dim",
              "linear_conv_kernel_dim", "conv_L_cache", "kv_lora_rank", "qk_rope_head_dim",
              "num_nextn_predict_layers", "max_source_positions", "d_kv", "num_heads", "d_model",
              "tie_word_embeddings")
_VISION_KEYS = ("image_size", "patch_size", "spatial_merge_size", "pixel_shuffle_ratio", "merge_size",
                "hidden_size", "num_hidden_layers", "depth")


@dataclass(frozen=True)
class TensorInfo:
    """One parameter as the checkpoint stores it: transformers' name, shape and dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class MetaInventory:
    """What a meta-device build (or a safetensors header) says about a model.

    `text` holds the language model's config attributes (layer_types, windows, expert counts, SSM sizes) and
    `vision` the vision tower's, as the built transformers config resolved them (defaults filled in).
    """

    model_type: str
    model_class: str
    source: str  # "transformers-meta" | "safetensors"
    tensors: tuple[TensorInfo, ...]
    text: dict[str, Any] = field(default_factory=dict, compare=False)
    vision: dict[str, Any] = field(default_factory=dict, compare=False)
    config_hash: str = ""
    library_version: str = ""
    encoder_decoder: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def parameters(self) -> int:
        return sum(t.numel for t in self.tensors)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["tensors"] = [[t.name, list(t.shape), t.dtype] for t in self.tensors]
        d["format"] = FORMAT_VERSION
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> MetaInventory:
        tensors = tuple(TensorInfo(str(n), tuple(int(x) for x in s), str(dt)) for n, s, dt in d["tensors"])
        return cls(model_type=d["model_type"], model_class=d["model_class"], source=d["source"], tensors=tensors,
                   text=dict(d.get("text") or {}), vision=dict(d.get("vision") or {}),
                   config_hash=d.get("config_hash", ""), library_version=d.get("library_version", ""),
                   encoder_decoder=bool(d.get("encoder_decoder")), extra=dict(d.get("extra") or {}))


def config_hash(config: dict[str, Any]) -> str:
    """A stable hash of the config's content (key order does not matter), plus the format version."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"v{FORMAT_VERSION}:{text}".encode()).hexdigest()[:32]


# --------------------------------------------------------------------------------------------- caches

_LOCK = threading.Lock()
_MEMORY: OrderedDict[str, MetaInventory] = OrderedDict()


def _disk_dir() -> Path | None:
    raw = os.environ.get(DISK_CACHE_ENV)
    if raw is not None and raw.strip().lower() in ("", "off", "0", "none"):
        return None
    return Path(raw) if raw else DEFAULT_DISK_CACHE


def _disk_read(key: str) -> MetaInventory | None:
    folder = _disk_dir()
    if folder is None:
        return None
    path = folder / f"{key}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT_VERSION or data.get("config_hash") != key:
            return None
        return MetaInventory.from_json(data)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _disk_write(inv: MetaInventory) -> None:
    folder = _disk_dir()
    if folder is None:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".inv-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(inv.to_json(), fh, separators=(",", ":"))
        os.replace(tmp, folder / f"{inv.config_hash}.json")
    except OSError:
        pass  # a cache that cannot be written only costs a rebuild


def cached(config: dict[str, Any]) -> MetaInventory | None:
    """The inventory if it was built before (memory or disk), without building: what a page checks before
    deciding to show a spinner."""
    key = config_hash(config)
    with _LOCK:
        if key in _MEMORY:
            _MEMORY.move_to_end(key)
            return _MEMORY[key]
    inv = _disk_read(key)
    if inv is not None:
        _remember(inv)
    return inv


def _remember(inv: MetaInventory) -> None:
    with _LOCK:
        _MEMORY[inv.config_hash] = inv
        _MEMORY.move_to_end(inv.config_hash)
        while len(_MEMORY) > CACHE_SIZE:
            _MEMORY.popitem(last=False)


def clear_memory_cache() -> None:
    with _LOCK:
        _MEMORY.clear()


# --------------------------------------------------------------------------------------------- building


def build_inventory(config: dict[str, Any], isolate: bool = True, timeout_s: float = BUILD_TIMEOUT_S) -> MetaInventory:
    """The model's inventory from its config.json, built by transformers on the meta device (cached per config).

    `isolate=False` builds in this process (the child and the tests use it; the app never does)."""
    if not isinstance(config, dict):
        raise QuantLensError("config_invalid_json", "config.json must be a JSON object ({...}).")
    hit = cached(config)
    if hit is not None:
        return hit
    key = config_hash(config)
    data = _build_in_process(config) if not isolate else _build_in_child(config, timeout_s)
    data["config_hash"] = key
    inv = MetaInventory.from_json(data)
    _remember(inv)
    _disk_write(inv)
    return inv


def _limit_child() -> None:  # pragma: no cover - runs in the child before exec
    import resource

    # Inside a compare job the worker's own (lower) hard limit already applies; a child may not raise it.
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = BUILD_MEMORY_BYTES if hard == resource.RLIM_INFINITY else min(BUILD_MEMORY_BYTES, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _build_in_child(config: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TRANSFORMERS_VERBOSITY="error",
               TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = str(root) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        proc = subprocess.run([sys.executable, "-m", "core.sizing.meta_inventory"], input=json.dumps(config),
                              capture_output=True, text=True, timeout=timeout_s, env=env, cwd=root,
                              preexec_fn=_limit_child if os.name == "posix" else None)
    except subprocess.TimeoutExpired:
        raise QuantLensError("inventory_timeout", f"Building the model from its config took longer than "
                             f"{timeout_s:.0f} s; it was stopped.") from None
    lines = proc.stdout.strip().splitlines()
    try:
        reply = json.loads(lines[-1]) if lines else {}
    except ValueError:
        reply = {}
    if "error" in reply:
        raise QuantLensError(reply["error"].get("code", "inventory_failed"), reply["error"].get("message", "?"))
    if proc.returncode != 0 or "tensors" not in reply:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]
        raise QuantLensError("inventory_failed", f"transformers could not build this model from its config ({tail}).")
    return reply


def known_model_types() -> frozenset[str]:
    """The model types the installed transformers defines (imports transformers' config table only)."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    return frozenset(CONFIG_MAPPING_NAMES)


def _model_class(model_type: str, architectures: Any) -> tuple[Any, str]:
    import transformers
    from transformers.models.auto import modeling_auto

    allowed: list[str] = []
    for mapping in _AUTO_MAPPINGS:
        name = getattr(modeling_auto, mapping, {}).get(model_type)
        if isinstance(name, str) and name not in allowed:
            allowed.append(name)
    wanted = [a for a in architectures if isinstance(a, str)] if isinstance(architectures, list) else []
    # The checkpoint's own class when transformers maps it for this model_type (never an arbitrary attribute).
    all_names = {n for m in _AUTO_MAPPINGS for n in getattr(modeling_auto, m, {}).values() if isinstance(n, str)}
    for name in wanted:
        if name in all_names and hasattr(transformers, name):
            cls = getattr(transformers, name)
            cfg_cls = getattr(cls, "config_class", None)
            if cfg_cls is not None and getattr(cfg_cls, "model_type", None) == model_type:
                return cls, name
    for name in allowed:
        if hasattr(transformers, name):
            return getattr(transformers, name), name
    raise QuantLensError("architecture_unknown", f"transformers defines the config of {model_type!r} but no model "
                         "class for it.")


def _type_of_named_class(architectures: Any) -> str | None:
    """The model_type whose transformers class the config's `architectures` names (None when none does)."""
    import transformers
    from transformers.models.auto import modeling_auto

    if not isinstance(architectures, list):
        return None
    for mapping in _AUTO_MAPPINGS:
        for model_type, name in getattr(modeling_auto, mapping, {}).items():
            if isinstance(name, str) and name in architectures and hasattr(transformers, name):
                return model_type
    return None


def _plain(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value][:4096]
    return str(value)[:100]


def _pick(cfg: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in keys:
        try:
            v = getattr(cfg, k, None)
        except Exception:  # noqa: BLE001 - some configs raise on attributes they do not have
            v = None
        if v is not None:
            out[k] = _plain(v)
    return out


def _build_in_process(config: dict[str, Any]) -> dict[str, Any]:
    """Build the model with transformers on the meta device and list its parameters (imports torch here)."""
    import torch
    import transformers
    from transformers import AutoConfig
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    model_type = config.get("model_type")
    declared = model_type
    if isinstance(model_type, str) and model_type not in CONFIG_MAPPING_NAMES:
        # Kimi-K2 ("kimi_k2") names transformers' own DeepseekV3ForCausalLM: build that class, never its custom code.
        model_type = _type_of_named_class(config.get("architectures")) or model_type
    if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING_NAMES:
        label = repr(model_type) if isinstance(model_type, str) and model_type else "no model_type"
        raise QuantLensError("architecture_unknown", f"transformers {transformers.__version__} does not define the "
                             f"architecture {label}.")
    kwargs = {k: v for k, v in config.items() if k not in _DROPPED_KEYS and k != "model_type"}
    for sub in ("text_config", "vision_config", "audio_config", "encoder_config", "decoder_config"):
        if isinstance(kwargs.get(sub), dict):
            kwargs[sub] = {k: v for k, v in kwargs[sub].items() if k not in _DROPPED_KEYS}
    try:
        cfg = AutoConfig.for_model(model_type, **kwargs)
    except Exception as exc:  # noqa: BLE001 - a config transformers rejects is the user's input error
        raise QuantLensError("config_invalid_value", f"transformers rejects this {model_type} config: "
                             f"{str(exc)[:200]}") from None
    cls, class_name = _model_class(model_type, config.get("architectures"))
    torch.set_default_dtype(torch.float32)
    try:
        with torch.device("meta"):
            model = cls._from_config(cfg)
    except Exception as exc:  # noqa: BLE001 - reported as a sentence naming the architecture
        raise QuantLensError("inventory_failed", f"transformers could not build {class_name} for {model_type!r} "
                             f"from this config: {str(exc)[:200]}") from None
    tensors = [[name, list(p.shape), str(p.dtype).replace("torch.", "")]
               for name, p in model.named_parameters()]
    text_cfg = cfg.get_text_config(decoder=True) if hasattr(cfg, "get_text_config") else cfg
    vision_cfg = getattr(cfg, "vision_config", None)
    extra = _pick(cfg, ("mm_tokens_per_image", "image_token_index", "vision_feature_select_strategy",
                        "max_source_positions", "encoder_layers", "decoder_layers"))
    if declared != model_type:
        extra["declared_model_type"] = declared
    return {"model_type": model_type, "model_class": class_name, "source": "transformers-meta",
            "tensors": tensors, "text": _pick(text_cfg, _TEXT_KEYS),
            "vision": _pick(vision_cfg, _VISION_KEYS) if vision_cfg is not None else {},
            "library_version": f"transformers {transformers.__version__}",
            "encoder_decoder": bool(getattr(cfg, "is_encoder_decoder", False)), "extra": extra}


def _main() -> int:  # pragma: no cover - exercised through build_inventory(isolate=True)
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    try:
        config = json.loads(sys.stdin.read())
        print(json.dumps(_build_in_process(config), separators=(",", ":")))
    except QuantLensError as exc:
        print(json.dumps({"error": {"code": exc.code, "message": exc.message}}))
    except MemoryError:
        print(json.dumps({"error": {"code": "inventory_failed", "message": "Building the model ran out of its "
                                    "memory limit; the config asks for more than any published model."}}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_main())
