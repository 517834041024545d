"""What a causal LM's generation measured, as plain data: the report (report.json, the page) holds one per variant.

A module of its own, without numpy, because the report imports it and the page imports the report.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class GenerationStats:
    """A causal LM generating (core.compare.measure.generation): prefill once, then decode through the KV cache."""

    prompt_tokens: int
    decode_tokens: int
    rounds: int
    prefill_ms: float  # median wall time of the prompt's forward pass (empty cache)
    decode_ms_per_token: float  # median wall time of one decode step after the prompt
    decode_tokens_per_s: float
    prefill_speedup_vs_fp32: float
    decode_speedup_vs_fp32: float
    perplexity: float | None  # on the user's texts (or the default texts: perplexity_text says which)
    perplexity_tokens: int
    perplexity_text: str
    prompt: str
    continuation: str  # greedy continuation of `prompt` by this variant
    weights_bytes: int  # the variant's file(s) on disk
    kv_cache_bytes: int  # measured: the present tensors after prompt + decode
    kv_cache_context_tokens: int
    kv_cache_predicted_bytes: int | None  # core.sizing's kv_cache_bytes for the same context and dtype
    kv_dtype: str
    weights_plus_kv_bytes: int
