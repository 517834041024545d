"""vLLM's KV pool for models that mix sliding-window and full-attention layers (Gemma 2/3): the hybrid KV cache
manager's groups, the tokens it prints and the concurrency it prints (core.sizing.serving.hybrid_kv_pool)."""

import json
from pathlib import Path

from core import sizing
from core.sizing.serving import hybrid_kv_pool, kv_tokens_from_bytes, vllm_capacity

GIB = 2**30
DATA = Path(__file__).parent / "data" / "llamacpp_truth"


def gemma_3_1b():
    rec = json.loads((DATA / "gemma-3-1b.json").read_text())  # google/gemma-3-1b config (26 layers, 5:1, window 512)
    return sizing.model_from_config(rec["config"]).architecture


def test_gemma_3_1b_prints_the_tokens_and_concurrency_of_a_published_vllm_boot_log():
    # Source: github.com/eole-nlp/eole benchmarks/genai/results.md (vLLM v0.13.0, google/gemma-3-1b-it, bf16,
    # max_model_len 2048, max_num_batched_tokens 8192):
    #   Available KV cache memory: 25.39 GiB
    #   Add 2 padding layers, may waste at most 9.09% KV cache memory
    #   GPU KV cache size: 950,864 tokens
    #   Maximum concurrency for 2,048 tokens per request: 461.21x
    # "25.39" is rounded to 0.01 GiB, so the prediction is a band; the printed values must lie inside it.
    a = gemma_3_1b()
    low = hybrid_kv_pool(a, int(25.385 * GIB), 2048, 8192, "bf16")
    high = hybrid_kv_pool(a, int(25.395 * GIB), 2048, 8192, "bf16")
    assert low[0] <= 950_864 <= high[0]
    assert low[1] <= 461.21 <= high[1]
    # counting every layer as full attention (the old rule) is outside that band on both lines
    plain = kv_tokens_from_bytes(a, int(25.39 * GIB), "bf16")
    assert plain > high[0] * 1.05 and plain / 2048 > high[1] * 1.05


def test_sliding_layers_make_long_requests_far_more_concurrent_than_the_tokens_suggest():
    m = sizing.model_from_catalog("google/gemma-2-9b")  # 42 layers, sliding 4096 / full alternating
    cap = vllm_capacity(m.architecture, sizing.weights_bytes(m, "fp16"), 80 * GIB, 32768, kv_precision="bf16")
    assert cap.starts
    # a 32k request needs full blocks in the 21 full layers but only ~4k + batched tokens in the 21 sliding ones
    assert cap.max_concurrency > 1.4 * cap.gpu_kv_cache_tokens / 32768


def test_a_model_with_one_kind_of_attention_keeps_the_plain_pool():
    m = sizing.model_from_catalog("meta-llama/Llama-3.1-8B")
    assert hybrid_kv_pool(m.architecture, 10 * GIB, 8192, 2048) is None
    cap = vllm_capacity(m.architecture, sizing.weights_bytes(m, "fp16"), 80 * GIB, 8192)
    assert abs(cap.max_concurrency - cap.gpu_kv_cache_tokens / 8192) < 1e-9


def test_a_pool_too_small_for_one_full_request_does_not_start():
    a = gemma_3_1b()
    tokens, concurrency, starts = hybrid_kv_pool(a, 64 * 2**20, 32768, 8192, "bf16")
    assert not starts and concurrency < 1
