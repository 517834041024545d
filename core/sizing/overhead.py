"""Runtime overhead and activations at inference: an estimate, given as a min / typical / max range.

Weights and KV cache are arithmetic; what a runtime adds on top is not, so this module says how it
estimates and never pretends to be exact. Three parts, per runtime:

1. A fixed part: the CUDA context, cuBLAS/cuDNN workspaces and the allocator's reserve (about
   0.3-1 GiB on current GPUs; vLLM adds CUDA graphs, and its own profiling reserve).
2. Activation buffers for one forward step. Inference keeps no activations across layers, so the peak
   is one layer's intermediates for the tokens processed at once, plus the logits:
   - llama.cpp: a compute buffer for a micro-batch of `n_ubatch` = 512 tokens: FFN intermediates
     (2 x intermediate), a few hidden-size buffers and logits (vocab), all FP32; without flash
     attention the KQ score matrix (ubatch x context x heads x 4 bytes) is added (the max case).
   - vLLM: the profiling run over `max_num_batched_tokens` (2048 / 8192 / 16384 for min / typical /
     max, never more than context x batch) in 16-bit, plus sampler logits in FP32.
   - transformers: the prompt goes through in one pass (batch x context tokens) in 16-bit; the max
     case also keeps FP32 logits for every position (forward() without logits_to_keep) and assumes the
     caching allocator holds ~10% of the weights in fragmentation.
3. Nothing for weights-only sizing (context 0).

vLLM caveat: vLLM pre-allocates `gpu_memory_utilization` (0.9 by default) of the card and fills
everything beyond weights and activations with KV cache, so nvidia-smi shows ~90% used whatever the
model. The numbers here are what the requested context needs, i.e. the minimum for it to start.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import QuantLensError
from core.sizing.architecture import Architecture
from core.units import GIB, MIB

RUNTIMES: dict[str, str] = {
    "llama.cpp": "llama.cpp (GGUF; CUDA/Metal/CPU)",
    "vllm": "vLLM (serving; pre-allocates GPU memory)",
    "transformers": "Hugging Face transformers (generate)",
}


@dataclass(frozen=True)
class OverheadEstimate:
    """Runtime memory beyond weights and KV cache, in bytes, with the reasoning behind it."""

    min_bytes: int
    typical_bytes: int
    max_bytes: int
    notes: tuple[str, ...] = ()


def get_runtime(name: str) -> str:
    key = name.strip().lower() if isinstance(name, str) else ""
    key = {"llamacpp": "llama.cpp", "llama-cpp": "llama.cpp", "hf": "transformers"}.get(key, key)
    if key not in RUNTIMES:
        raise QuantLensError("unknown_runtime", f"Unknown runtime {str(name)[:40]!r}; use one of: {', '.join(RUNTIMES)}.")
    return key


FIXED_OVERHEAD_BYTES = {  # (min, typical, max) bytes: CUDA context, workspaces, allocator reserve, CUDA graphs
    "llama.cpp": (200 * MIB, 400 * MIB, 800 * MIB),
    "vllm": (512 * MIB, 1536 * MIB, 3 * GIB),
    "transformers": (300 * MIB, 600 * MIB, 1 * GIB),
}
_VLLM_BATCHED_TOKENS = (2048, 8192, 16384)
LLAMA_CPP_UBATCH = 512


def runtime_overhead(
    a: Architecture | None, runtime: str, context: int, batch: int, weights_bytes: int = 0
) -> OverheadEstimate:
    """Estimate runtime overhead for serving `batch` sequences of `context` tokens (0 = weights only)."""
    runtime = get_runtime(runtime)
    if context == 0:
        return OverheadEstimate(0, 0, 0, ("Weights only (context 0): no runtime overhead counted.",))
    fmin, ftyp, fmax = FIXED_OVERHEAD_BYTES[runtime]
    if a is None:
        return OverheadEstimate(
            fmin, ftyp, fmax,
            ("Only the runtime's fixed overhead is counted: activation buffers need the architecture "
             "(pick a catalog model or upload config.json).",),
        )
    tokens = context * batch
    e, inter, vocab, heads = a.hidden_size, a.intermediate_size, a.vocab_size, a.num_heads
    if a.moe is not None:
        inter = max(a.moe.expert_intermediate_size * a.moe.experts_per_token, a.intermediate_size)
    per_token_16 = (2 * inter + 4 * e) * 2  # one layer's FFN + hidden buffers, 16-bit
    if runtime == "llama.cpp":
        ub = min(LLAMA_CPP_UBATCH, tokens)
        act = ub * (vocab + 2 * inter + 4 * e) * 4
        scores = ub * tokens * heads * 4
        notes = (
            "llama.cpp: fixed CUDA/Metal context plus a compute buffer for a 512-token micro-batch "
            "(FP32 FFN intermediates and logits); max adds the attention score matrix used without flash attention.",
        )
        return OverheadEstimate(fmin + act, ftyp + act, fmax + act + scores, notes)
    if runtime == "vllm":
        vals = []
        for cap, fixed in zip(_VLLM_BATCHED_TOKENS, (fmin, ftyp, fmax), strict=True):
            t = min(cap, tokens)
            vals.append(fixed + t * per_token_16 + min(batch, 256) * vocab * 4)
        notes = (
            "vLLM: CUDA context and CUDA graphs plus the profiling run over max_num_batched_tokens; "
            "vLLM itself reserves gpu_memory_utilization (default 90%) of the card and fills the rest with KV cache.",
        )
        return OverheadEstimate(vals[0], vals[1], vals[2], notes)
    act = tokens * per_token_16 + batch * vocab * 4
    frag = weights_bytes // 10
    all_logits = tokens * vocab * 4
    notes = (
        "transformers: CUDA context plus one prompt-length forward pass in 16-bit; max adds FP32 logits "
        "for every position and ~10% allocator fragmentation. Eager attention (not SDPA) adds "
        "batch x heads x context^2 x 4 bytes on top.",
    )
    return OverheadEstimate(fmin + act, ftyp + act + frag // 2, fmax + act + frag + all_logits, notes)
