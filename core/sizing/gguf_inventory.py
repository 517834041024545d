"""GGUF files of a model read from its own definition, as llama.cpp's converter and llama-quantize make them.

Why: for an architecture the hand-written rules do not describe (hybrids, SSMs, MoE with dense and MTP layers,
multimodal wrappers), the tensors are in transformers' names, which llama-quantize's per-tensor rules cannot read
(`attn_v`, `ffn_down`, ...). core.sizing.gguf_map names every tensor the way the converter does (the `gguf`
package's own tensor-name map), keeps in F32 what the converter keeps in F32, and gives llama-quantize b11434's
type per tensor, checked tensor for tensor against llama.cpp in tests/core/test_llamacpp_truth.py. This module
feeds it the engine's inventory and adds what the checkpoint has beyond what transformers builds:
- MTP / nextn layers the converter writes (GLM-4.5: one more decoder block plus eh_proj, enorm, hnorm, its own
  embedding and head; DeepSeek-V3's is skipped by the converter, so it is not added);
- the vision / audio tower goes to the separate mmproj file (`--mmproj`, F16; 1-D tensors and position
  embeddings in F32), sized apart from the language-model file.

Cost: the name mapping runs once per inventory (config hash), the per-type rules once per (hash, type,
importance matrix); both are cached in memory (bounded), so every later click is a dictionary look-up.

Standard library only at top level (core.sizing imports are local to keep import cycles out).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from core.errors import QuantLensError

CACHE_SIZE = 32
_POSITION = re.compile(r"(position_embedding|pos_embed|embed_positions|positional_embedding)")
# model_type -> how many MTP (nextn) blocks llama.cpp b11434's converter writes from the checkpoint. Only
# GLM-4.5 (conversion/glm.py keeps them as blk.N with nextn.* tensors); DeepSeek-V3's converter skips its MTP layer.
MTP_WRITTEN = ("glm4_moe",)


@dataclass(frozen=True)
class GgufLayout:
    """The language-model file's tensors (llama.cpp names, no types yet) and the mmproj file's parameters."""

    arch: str  # llama.cpp architecture name
    tensors: tuple[Any, ...]  # core.sizing.gguf_map.GgufTensor, language model only
    n_blocks: int  # blocks as the converter writes them (MTP included)
    n_expert: int
    gqa: int
    mmproj_bytes: int  # the vision/audio tower as the converter's --mmproj F16 file (1-D tensors in F32)
    mtp_blocks: int


_LOCK = threading.Lock()
_LAYOUTS: OrderedDict[str, GgufLayout | QuantLensError] = OrderedDict()
_TYPES: OrderedDict[tuple[str, str, bool], tuple[tuple[str, str, int, int], ...]] = OrderedDict()


def _remember(cache: OrderedDict, key: Any, value: Any) -> None:
    with _LOCK:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > CACHE_SIZE * (16 if cache is _TYPES else 1):
            cache.popitem(last=False)


def clear_cache() -> None:
    with _LOCK:
        _LAYOUTS.clear()
        _TYPES.clear()


def _language_name(name: str) -> str:
    """Multimodal wrappers nest the language model (`model.language_model.layers.0...`, `language_model.lm_head`);
    the converters strip that level before the tensor-name map (conversion/gemma.py, llava.py, qwen.py)."""
    if "language_model." not in name:
        return name
    if name.startswith("model.language_model."):
        return "model." + name[len("model.language_model."):]
    if name.startswith("language_model.model."):
        return "model." + name[len("language_model.model."):]
    if name.startswith("language_model."):
        return name[len("language_model."):]
    return name


def _mtp_tensors(a: Any, hf: list[tuple[str, tuple[int, ...]]]) -> list[tuple[str, tuple[int, ...]]]:
    """GLM-4.5's MTP blocks as its checkpoint stores them (`model.layers.{n + k}.*`: a full MoE decoder layer, like
    the last one, plus eh_proj, enorm, hnorm, shared_head.norm, embed_tokens, shared_head.head), which transformers
    does not build. Same rule as the truth harness (bench/truth/sparse_gguf.py `_extra_tensors`)."""
    cfg = a.definition_config
    n_mtp = cfg.get("num_nextn_predict_layers")
    if a.model_type not in MTP_WRITTEN or not isinstance(n_mtp, int) or n_mtp <= 0:
        return []
    n = int(cfg.get("num_hidden_layers") or a.num_layers)
    last = f"model.layers.{n - 1}."
    layer = [(name, shape) for name, shape in hf if name.startswith(last)]
    e = a.hidden_size
    embed = next((shape for name, shape in hf if name == "model.embed_tokens.weight"), (a.vocab_size, e))
    extra: list[tuple[str, tuple[int, ...]]] = []
    for k in range(min(n_mtp, 8)):
        i = n + k
        extra += [(f"model.layers.{i}." + name[len(last):], shape) for name, shape in layer]
        extra += [(f"model.layers.{i}.eh_proj.weight", (e, 2 * e)), (f"model.layers.{i}.enorm.weight", (e,)),
                  (f"model.layers.{i}.hnorm.weight", (e,)), (f"model.layers.{i}.shared_head.norm.weight", (e,)),
                  (f"model.layers.{i}.embed_tokens.weight", embed),
                  (f"model.layers.{i}.shared_head.head.weight", embed)]
    return extra


def _block(name: str) -> int | None:
    for part in name.split("."):
        if part.isdecimal():
            return int(part)
    return None


def layout(a: Any) -> GgufLayout:
    """The GGUF layout of an architecture read from its definition (cached per inventory). Raises
    `gguf_arch_unknown` / `gguf_tensor_unmapped` when llama.cpp's converter would not take the model."""
    key = a.inventory_key
    with _LOCK:
        hit = _LAYOUTS.get(key)
    if hit is None:
        try:
            hit = _layout(a)
        except QuantLensError as exc:
            hit = exc
        except (ArithmeticError, ImportError, KeyError, TypeError, ValueError) as exc:
            # A config the converter's steps cannot read (odd field values): the page falls back, never crashes.
            hit = QuantLensError("gguf_layout_failed", f"llama.cpp's converter steps could not read this "
                                 f"{a.model_type!r} model ({type(exc).__name__}).")
        _remember(_LAYOUTS, key, hit)
    if isinstance(hit, QuantLensError):
        raise hit
    return hit


def _layout(a: Any) -> GgufLayout:
    from core.sizing.architecture import tensor_inventory
    from core.sizing.gguf_map import gguf_arch, map_tensors

    arch = gguf_arch(a.model_type)
    hf: list[tuple[str, tuple[int, ...]]] = []
    mmproj = 0
    last_block = -1
    for t in tensor_inventory(a):
        if t.role == "tower":
            mmproj += mmproj_tensor_bytes(t.name, t.shape)
        else:
            hf.append((_language_name(t.name), t.shape))
            if t.layer is not None and t.layer > last_block:
                last_block = t.layer
    extra = _mtp_tensors(a, hf)
    hf += extra
    blocks = [b for name, _ in extra if (b := _block(name)) is not None]
    n_blocks = max([last_block, *blocks]) + 1
    cfg = dict(a.definition_config)
    cfg.setdefault("num_hidden_layers", a.num_layers)
    tensors = map_tensors(arch, hf, n_blocks, config=cfg)
    gqa = max(1, a.num_heads // max(1, a.num_kv_heads))
    mtp = len({_block(n) for n, _ in extra})
    return GgufLayout(arch, tuple(t for t in tensors if not t.mmproj), n_blocks, a.moe_experts[0], gqa,
                      mmproj + sum(mmproj_tensor_bytes(t.name, t.shape) for t in tensors if t.mmproj), mtp)


def mmproj_tensor_bytes(name: str, shape: tuple[int, ...]) -> int:
    """One tower tensor in the F16 mmproj file (conversion/base.py `prepare_tensors`): 1-D tensors, norms and the
    vision/audio position embeddings (V_ENC_EMBD_POS / A_ENC_EMBD_POS) in F32, the rest in F16."""
    n = 1
    for d in shape:
        n *= d
    f32 = len(shape) <= 1 or _POSITION.search(name) is not None or not name.endswith(".weight")
    return n * (4 if f32 else 2)


def typed_tensors(a: Any, ftype: str, imatrix: bool) -> tuple[tuple[str, str, int, int], ...]:
    """(llama.cpp name, llama-quantize type, elements, bytes) for every tensor of the language-model file."""
    key = (a.inventory_key, ftype, imatrix)
    with _LOCK:
        hit = _TYPES.get(key)
    if hit is not None:
        return hit
    from core.sizing.gguf_map import quantize_types, tensor_bytes

    lay = layout(a)
    tensors = lay.tensors
    if ftype in ("F32", "BF16"):  # the converter writes the file in that type (F32 / BF16 for 2-D weights)
        from dataclasses import replace

        tensors = tuple(replace(t, source_type=ftype) if t.source_type != "F32" else t for t in tensors)
    types = quantize_types(lay.arch, list(tensors), (ftype,), n_expert=lay.n_expert, gqa=lay.gqa,
                           n_layer=lay.n_blocks, imatrix=imatrix)
    out = []
    for t in tensors:
        ggml = types[t.name][ftype]
        out.append((t.name, ggml, t.numel, tensor_bytes(t, ggml)))
    result = tuple(out)
    _remember(_TYPES, key, result)
    return result


def usable(a: Any) -> bool:
    """Whether the converter-exact path applies: an architecture from the model's definition that llama.cpp's
    converter takes (else the generic rules over the definition's tensors answer, with a note)."""
    if not getattr(a, "inventory_key", ""):
        return False
    try:
        layout(a)
    except QuantLensError:
        return False
    return True


def refusal(a: Any) -> str:
    """Why the converter-exact path does not apply to this architecture (empty when it does)."""
    try:
        layout(a)
    except QuantLensError as exc:
        return exc.message
    return ""
