"""KV cache bytes for a context length and batch, from the architecture.

What each layer caches per token:
- standard / GQA attention: K and V, each `num_kv_heads * head_dim` values (head_dim from the config
  when given: Gemma-2 uses 256, not hidden/heads = 224);
- MLA (DeepSeek-V2/V3): one compressed latent of `kv_lora_rank + qk_rope_head_dim` values, which is
  what vLLM and llama.cpp store (K and V are rebuilt from it), not per-head K and V;
- sliding-window layers keep at most `window` tokens (Mistral v0.1, Gemma-2/3 local layers, gpt-oss), as
  vLLM, transformers and llama.cpp's SWA-aware architectures allocate it (llama.cpp runs some older
  sliding-window models, e.g. Mistral v0.1, as plain Llama with a full-length cache);
- encoders (BERT) keep no cache.

KV precision: fp32/fp16/bf16/fp8 store whole values; llama.cpp's q8_0 and q4_0 caches use 32-value
blocks with an FP16 scale, i.e. 8.5 and 4.5 bits per value, not 8 and 4.
Every sequence in a batch has its own cache, so bytes scale with batch x context.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import QuantLensError
from core.sizing.architecture import Architecture

MAX_CONTEXT = 100_000_000
MAX_BATCH = 100_000


@dataclass(frozen=True)
class KvPrecision:
    """`block_bytes` bytes store `block_values` cached values."""

    name: str
    label: str
    block_values: int
    block_bytes: int

    @property
    def bits_per_value(self) -> float:
        return 8 * self.block_bytes / self.block_values

    def row_bytes(self, values: int) -> int:
        blocks = -(-values // self.block_values)
        return blocks * self.block_bytes


KV_PRECISIONS: dict[str, KvPrecision] = {
    p.name: p
    for p in (
        KvPrecision("fp16", "FP16", 1, 2),
        KvPrecision("bf16", "BF16", 1, 2),
        KvPrecision("fp32", "FP32", 1, 4),
        KvPrecision("fp8", "FP8", 1, 1),
        KvPrecision("q8_0", "q8_0 (8.5 bits)", 32, 34),
        KvPrecision("q4_0", "q4_0 (4.5 bits)", 32, 18),
    )
}


def get_kv_precision(name: str) -> KvPrecision:
    key = name.strip().lower() if isinstance(name, str) else ""
    if key in ("f16", "float16", "half"):
        key = "fp16"
    if key in ("fp8_e4m3", "fp8_e5m2", "f8"):
        key = "fp8"
    if key not in KV_PRECISIONS:
        raise QuantLensError(
            "unknown_kv_precision", f"Unknown KV cache precision {str(name)[:40]!r}; use one of: {', '.join(KV_PRECISIONS)}."
        )
    return KV_PRECISIONS[key]


def check_context_batch(context: int, batch: int) -> None:
    """Context and batch must be whole numbers in range (context 0 means weights only)."""
    for label, value, lo, hi in (("Context", context, 0, MAX_CONTEXT), ("Batch", batch, 1, MAX_BATCH)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise QuantLensError("invalid_number", f"{label} must be a whole number, got {value!r}.")
        if not lo <= value <= hi:
            raise QuantLensError("invalid_number", f"{label} must be between {lo:,} and {hi:,}, got {value:,}.")


def layer_row_values(a: Architecture) -> tuple[int, ...]:
    """Cached values per token per layer, as rows (K row and V row, or the MLA latent)."""
    if a.is_encoder:
        return ()
    if a.mla is not None:
        return (a.mla.kv_lora_rank + a.mla.qk_rope_head_dim,)
    width = a.num_kv_heads * a.head_dim
    return (width, width)


def kv_bytes_per_token(a: Architecture, kv_precision: str = "fp16") -> int:
    """Bytes one token adds to the cache across all layers (ignoring window caps)."""
    p = get_kv_precision(kv_precision)
    per_layer = sum(p.row_bytes(v) for v in layer_row_values(a))
    return per_layer * a.num_layers


def kv_cache_bytes(a: Architecture, context: int, batch: int = 1, kv_precision: str = "fp16") -> int:
    """Whole KV cache for `batch` sequences of `context` tokens, sliding-window layers capped at their window."""
    check_context_batch(context, batch)
    p = get_kv_precision(kv_precision)
    per_layer_token = sum(p.row_bytes(v) for v in layer_row_values(a))
    if not per_layer_token or not context:
        return 0
    windows = a.layer_windows or (0,) * a.num_layers
    tokens = sum(min(context, w) if w else context for w in windows)
    return per_layer_token * tokens * batch
