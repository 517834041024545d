"""KV cache bytes for a context length and batch, from the architecture.

What each layer caches per token:
- standard / GQA attention: K and V, each `num_kv_heads * head_dim` values (head_dim from the config
  when given: Gemma-2 uses 256, not hidden/heads = 224);
- MLA (DeepSeek-V2/V3): one compressed latent of `kv_lora_rank + qk_rope_head_dim` values, which is
  what vLLM and llama.cpp store (K and V are rebuilt from it), not per-head K and V;
- sliding-window (and Llama 4's chunked) layers keep at most `window` tokens, but each runtime allocates
  differently (`kv_cache_plan`): llama.cpp honours windows only for the architectures it loads with an SWA
  cache and keeps window + n_ubatch cells there, runs Mistral v0.1 and Phi-3 with a full-length cache and
  pads to 256 cells; vLLM allocates whole 16-token blocks; transformers keeps exactly the window;
- encoders (BERT) keep no cache.

KV precision: fp32/fp16/bf16/fp8 store whole values; llama.cpp's q8_0 and q4_0 caches use 32-value
blocks with an FP16 scale, i.e. 8.5 and 4.5 bits per value, not 8 and 4 (q4_1/q5_0/q5_1/iq4_nl likewise).
Which runtime takes which: core.sizing.runtimes (kv_refusal).
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
        # llama.cpp's other -ctk/-ctv types (ggml block_q4_1/q5_0/q5_1/iq4_nl: 32 values with FP16 scale [+ min])
        KvPrecision("q5_1", "q5_1 (6 bits)", 32, 24),
        KvPrecision("q5_0", "q5_0 (5.5 bits)", 32, 22),
        KvPrecision("q4_1", "q4_1 (5 bits)", 32, 20),
        KvPrecision("iq4_nl", "iq4_nl (4.5 bits)", 32, 18),
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
    return sum(layer_token_bytes(a, p))


@dataclass(frozen=True)
class KvCachePlan:
    """The cache a runtime allocates: bytes, cells per layer (per sequence) and the rule, in words."""

    bytes: int
    cells_per_layer: tuple[int, ...]
    rule: str


LLAMA_CPP_N_UBATCH = 512  # llama.cpp's default micro-batch (common/common.h n_ubatch)
LLAMA_CPP_PAD = 256  # llama_context pads n_ctx to 256; llama-kv-cache-iswa.cpp pads the SWA cache to 256
VLLM_BLOCK_TOKENS = 16  # vLLM's default --block-size


def _pad(n: int, to: int) -> int:
    return -(-n // to) * to


def _window_word(a: Architecture) -> str:
    return "chunked-attention" if a.window_kind == "chunked" else "sliding-window"


def kv_cache_plan(a: Architecture, context: int, batch: int = 1, kv_precision: str = "fp16",
                  runtime: str = "transformers") -> KvCachePlan:
    """How many cache cells each layer gets for one sequence of `context` tokens in `runtime`, times `batch`.

    - llama.cpp (src/llama-context.cpp, src/llama-kv-cache-iswa.cpp): the context is padded to 256 cells;
      only architectures llama.cpp loads with an SWA cache (Gemma 2/3, gpt-oss, Llama 4 chunks; see
      core.sizing.families) cap window layers, at `GGML_PAD(min(n_ctx, n_swa + n_ubatch), 256)` with
      n_ubatch = 512. Others (Mistral v0.1, Phi-3, Qwen2...) keep the full context on every layer.
    - vLLM (vllm/v1/kv_cache_interface.py): memory comes in whole 16-token blocks; its hybrid allocator
      keeps sliding-window and chunked layers at their window.
    - transformers (cache_utils.py DynamicCache): sliding/chunked layers keep the window, others grow.
    """
    from core.sizing.families import family
    from core.sizing.overhead import get_runtime

    check_context_batch(context, batch)
    runtime = get_runtime(runtime)
    p = get_kv_precision(kv_precision)
    per_layer = layer_token_bytes(a, p)
    windows = a.layer_windows or (0,) * a.num_layers
    if not any(per_layer) and not a.cross_kv_rows:
        if a.layer_state_values and any(a.layer_state_values):
            return KvCachePlan(0, (), "No attention layers: no KV cache; the recurrent state is its own line.")
        return KvCachePlan(0, (), "Encoder model: no KV cache.")
    if not context:
        return KvCachePlan(0, (0,) * a.num_layers, "No context: weights only.")
    has_window = any(windows)
    word = _window_word(a)
    if runtime == "llama.cpp":
        full = _pad(context, LLAMA_CPP_PAD)
        if has_window and family(a.model_type).llama_cpp_swa:
            cells = tuple(_pad(min(full, w + LLAMA_CPP_N_UBATCH), LLAMA_CPP_PAD) if w else full for w in windows)
            rule = (f"llama.cpp: {word} layers hold min(context, window + {LLAMA_CPP_N_UBATCH}) cells rounded up to "
                    f"{LLAMA_CPP_PAD}; other layers the context rounded up to {LLAMA_CPP_PAD}.")
        else:
            cells = (full,) * a.num_layers
            rule = f"llama.cpp: every layer holds the context rounded up to {LLAMA_CPP_PAD} cells"
            rule += (f" (llama.cpp runs this model without its {a.window_kind} window, unlike vLLM and transformers)."
                     if has_window else ".")
    elif runtime == "vllm":
        cells = tuple(_pad(min(context, w) if w else context, VLLM_BLOCK_TOKENS) for w in windows)
        rule = f"vLLM: whole {VLLM_BLOCK_TOKENS}-token blocks"
        rule += f"; {word} layers keep only their window (hybrid allocator)." if has_window else "."
    else:
        cells = tuple(min(context, w) if w else context for w in windows)
        rule = ("transformers: " + (f"{word} layers keep only their window; the others the whole context."
                                     if has_window else "every layer keeps the whole context."))
    total = sum(b * c for b, c in zip(per_layer, cells, strict=True)) * batch
    if a.layer_kv_rows and not all(a.layer_kv_rows):
        with_kv = sum(1 for rows in a.layer_kv_rows if rows)
        rule += (f" Of the {a.num_layers} layers only the {with_kv} attention layers have a KV cache; the others "
                 "keep a constant state or nothing.")
    if a.cross_kv_rows:
        source = a.encoder_tokens or context
        total += sum(p.row_bytes(v) for v in a.cross_kv_rows) * source * batch
        rule += (f" Cross-attention caches K and V of {source:,} encoder tokens on every decoder layer"
                 + (" (fixed by the model)." if a.encoder_tokens else " (the input is taken as long as the context)."))
    return KvCachePlan(total, cells, rule)


def layer_token_bytes(a: Architecture, p: KvPrecision) -> tuple[int, ...]:
    """Bytes one token adds to each layer's self-attention cache (0 on SSM, convolution and MLP-only layers)."""
    if a.layer_kv_rows:
        return tuple(sum(p.row_bytes(v) for v in rows) for rows in a.layer_kv_rows)
    per_layer = sum(p.row_bytes(v) for v in layer_row_values(a))
    return (per_layer,) * a.num_layers


# Bytes per value of the recurrent (conv + SSM) state: llama.cpp allocates it in F32 (llama-memory-recurrent.cpp,
# type_r = type_s = GGML_TYPE_F32); vLLM and transformers keep it in the model's 16-bit dtype by default.
STATE_BYTES_PER_VALUE = {"llama.cpp": 4, "vllm": 2, "transformers": 2}


def state_bytes(a: Architecture | None, runtime: str, batch: int = 1) -> int:
    """Constant per-sequence state of SSM / recurrent layers for `batch` sequences (independent of the context)."""
    from core.sizing.overhead import get_runtime

    if a is None or not a.layer_state_values:
        return 0
    return sum(a.layer_state_values) * STATE_BYTES_PER_VALUE[get_runtime(runtime)] * batch


def kv_cache_bytes(a: Architecture, context: int, batch: int = 1, kv_precision: str = "fp16",
                   runtime: str = "transformers") -> int:
    """Whole KV cache for `batch` sequences of `context` tokens as `runtime` allocates it (see kv_cache_plan)."""
    return kv_cache_plan(a, context, batch, kv_precision, runtime).bytes
