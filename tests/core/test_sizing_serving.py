"""vLLM serving capacity (core.sizing.serving): the two lines vLLM's boot log prints, predicted from the card and the
model, checked against boot logs people published (source beside each number)."""

import pytest

from core import sizing
from core.errors import QuantLensError
from core.sizing.serving import capacity_sentence, kv_tokens_from_bytes, vllm_capacity
from core.units import GIB

# Qwen3-14B's config.json (huggingface.co/Qwen/Qwen3-14B/blob/main/config.json): 40 layers, 8 KV heads of 128.
QWEN3_14B = {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 5120,
             "intermediate_size": 17408, "num_hidden_layers": 40, "num_attention_heads": 40,
             "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936, "max_position_embeddings": 40960,
             "tie_word_embeddings": False, "torch_dtype": "bfloat16"}


def llama_8b():
    return sizing.model_from_catalog("meta-llama/Llama-3.1-8B")


def test_the_kv_pool_in_tokens_matches_vllms_own_line_for_qwen3_14b():
    # LMCache issue #1739 (github.com/LMCache/LMCache/issues/1739), vLLM V1 boot log:
    #   Available KV cache memory: 6.51 GiB / GPU KV cache size: 42,656 tokens /
    #   Maximum concurrency for 32,768 tokens per request: 1.30x
    a = sizing.model_from_config(QWEN3_14B).architecture
    tokens = kv_tokens_from_bytes(a, int(6.51 * GIB))
    assert tokens == 42_656  # exact: 160 KiB per token, whole 16-token blocks
    assert f"{tokens / 32_768:.2f}" == "1.30"


def test_the_concurrency_line_is_the_pool_over_max_model_len():
    # vLLM PR #13596 (github.com/vllm-project/vllm/pull/13596): "GPU KV cache size: 2,042,016 tokens" and
    # "Maximum concurrency for 2,048 tokens per request: 997.08x"
    a = llama_8b().architecture
    per_token = 128 * 1024  # Llama 3.1 8B at FP16: 32 layers x 2 x 8 heads x 128 x 2 bytes
    c = vllm_capacity(a, 0, 10**15, 2048, 256, non_torch_bytes=0, gpu_memory_utilization=1.0,
                      max_num_batched_tokens=1)
    assert c.kv_bytes_per_token_per_card == per_token
    assert f"{2_042_016 / 2048:.2f}x" == "997.08x"


@pytest.mark.parametrize(("max_model_len", "published_tokens", "vllm_started"), [
    (20_000, 1952 * 16, True),   # "# GPU blocks: 1952", "Maximum concurrency for 20000 tokens per request: 1.56x"
    (29_000, 1478 * 16, False),  # "# GPU blocks: 1478", "max seq len (29000) is larger than ... (23648)"
])
def test_llama_8b_on_an_rtx_3090_lands_within_ten_percent_of_the_published_pool(max_model_len, published_tokens,
                                                                               vllm_started):
    # vLLM issue #10517 (github.com/vllm-project/vllm/issues/10517), RTX 3090, meta-llama/Llama-3.1-8B-Instruct,
    # vLLM V0 (max_num_batched_tokens = max_model_len): total_gpu_memory=23.58GiB, gpu_memory_utilization=0.90,
    # "Loading model weights took 14.9888 GB". Tolerance: activations and memory outside torch are estimates.
    m = llama_8b()
    c = vllm_capacity(m.architecture, sizing.weights_bytes(m, "bf16"), int(23.58 * GIB), max_model_len, 256,
                      max_num_batched_tokens=max_model_len)
    assert abs(c.gpu_kv_cache_tokens / published_tokens - 1) < 0.10
    assert c.starts == vllm_started
    lines = c.log_lines()
    assert lines[0].startswith("GPU KV cache size: ") and lines[0].endswith(" tokens")
    assert lines[1].startswith(f"Maximum concurrency for {max_model_len:,} tokens per request: ")
    assert ("refuse" in capacity_sentence(c)) == (not vllm_started)


def test_tensor_parallel_splits_weights_and_kv_heads_so_the_pool_grows():
    m = sizing.model_from_catalog("meta-llama/Llama-3.1-70B")
    h100 = 80 * GIB
    w = sizing.weights_bytes(m, "fp16")
    one = vllm_capacity(m.architecture, w, h100, 8192, tensor_parallel=1)
    four = vllm_capacity(m.architecture, w, h100, 8192, tensor_parallel=4)
    assert not one.starts and one.gpu_kv_cache_tokens == 0
    assert four.starts and four.kv_bytes_per_token_per_card == one.kv_bytes_per_token_per_card // 4
    assert four.concurrent_requests >= 1 and "concurrent requests × 8,192 tokens" in capacity_sentence(four)


def test_impossible_settings_are_refused_with_a_code():
    a = llama_8b().architecture
    with pytest.raises(QuantLensError) as err:
        vllm_capacity(a, 1, GIB, 4096, gpu_memory_utilization=1.5)
    assert err.value.code == "invalid_number"
