"""Serving capacity under vLLM: the two lines its boot log prints, predicted before anyone boots it.

vLLM does not size the KV cache to the context asked for: it takes `gpu_memory_utilization` (0.9) of each card,
subtracts what the profiling run measured (weights, the activation peak over `max_num_batched_tokens`, memory
outside torch such as the CUDA context and NCCL buffers) and turns the rest into 16-token blocks. Its boot log
then says (vllm/v1/core/kv_cache_utils.py, since vLLM PR #13596):

    GPU KV cache size: 42,656 tokens
    Maximum concurrency for 32,768 tokens per request: 1.30x

with `tokens = blocks x block_size` and `concurrency = tokens / max_model_len`. This module predicts both from a
card, a model, `max_model_len`, `max_num_seqs` and the tensor-parallel size, and says whether vLLM would refuse to
start (fewer KV tokens than one max_model_len request).

Sliding-window models (Gemma 2/3 with full-attention layers between sliding ones, Llama 4's chunked layers) go
through vLLM's hybrid KV cache manager (vLLM >= 0.10, vllm/v1/core/kv_cache_utils.py): layers are grouped by
attention type into groups of equal size (the smaller type's layer count; the larger type padded up to whole
groups), every group shares the same `group_size` memory pools, so `blocks = pool // page // group_size`, the
printed tokens are `blocks // groups x 16`, and a request needs full-length blocks only in the full-attention groups
and `window - 1 + max_num_batched_tokens` tokens (+1 block) in the sliding ones: far more concurrency than the
tokens suggest. A model whose layers all share one window (Mistral 7B v0.1) is one group, as before.

Honest tolerance: weights and KV bytes per token are exact arithmetic; the activation peak and the memory outside
torch are estimates (core.sizing.overhead), and recent vLLM versions also subtract CUDA-graph memory. On the
published logs in tests/core/test_sizing_serving.py the prediction lands within about 10% of the printed tokens.

Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import QuantLensError
from core.sizing.architecture import Architecture
from core.sizing.kv_cache import VLLM_BLOCK_TOKENS, get_kv_precision, layer_row_values
from core.sizing.runtimes import VLLM_GPU_MEMORY_UTILIZATION
from core.units import GIB, MIB

# vllm/engine/arg_utils.py (_set_default_args): `vllm serve` defaults on cards under / over 70 GiB
VLLM_SERVE_BATCHED_TOKENS = (2048, 8192)
VLLM_SERVE_MAX_NUM_SEQS = (256, 1024)
LARGE_CARD_BYTES = 70 * GIB
# Memory outside torch's allocator (CUDA context, cuBLAS workspace, NCCL): vLLM issue #10517 measured
# non_torch_memory=0.35GiB on one RTX 3090; tensor parallel adds NCCL buffers.
NON_TORCH_BYTES = 350 * MIB
NON_TORCH_TP_EXTRA_BYTES = 256 * MIB


@dataclass(frozen=True)
class VllmCapacity:
    """What vLLM's boot log will say, and what it means for the requests asked for."""

    gpu_kv_cache_tokens: int  # "GPU KV cache size: N tokens"
    max_concurrency: float  # "Maximum concurrency for X tokens per request: Y x"
    max_model_len: int
    max_num_seqs: int
    max_num_batched_tokens: int
    tensor_parallel: int
    kv_cache_bytes_per_card: int  # "Available KV cache memory"
    budget_bytes_per_card: int  # gpu_memory_utilization x total memory
    weights_bytes_per_card: int
    activation_bytes_per_card: int
    non_torch_bytes_per_card: int
    kv_bytes_per_token_per_card: int
    starts: bool  # False: vLLM refuses (fewer KV tokens than one max_model_len request)
    concurrent_requests: int  # full-length requests served at once: min(max_num_seqs, floor(concurrency))

    def log_lines(self) -> tuple[str, str]:
        """The two lines as vLLM prints them."""
        return (f"GPU KV cache size: {self.gpu_kv_cache_tokens:,} tokens",
                f"Maximum concurrency for {self.max_model_len:,} tokens per request: {self.max_concurrency:.2f}x")


def kv_bytes_per_token_per_card(a: Architecture, kv_precision: str = "fp16", tensor_parallel: int = 1) -> int:
    """KV bytes one token takes on each card: KV heads split over the cards (replicated when there are fewer KV
    heads than cards); an MLA latent is replicated on every card."""
    if a.is_encoder:
        return 0
    p = get_kv_precision(kv_precision)
    if a.mla is not None:
        return sum(p.row_bytes(v) for v in layer_row_values(a)) * a.num_layers
    heads_per_card = max(1, -(-a.num_kv_heads // max(1, tensor_parallel)))
    return 2 * p.row_bytes(heads_per_card * a.head_dim) * a.num_layers


def kv_tokens_from_bytes(a: Architecture, kv_bytes_per_card: int, kv_precision: str = "fp16",
                         tensor_parallel: int = 1) -> int:
    """Tokens a KV pool of `kv_bytes_per_card` on each card holds, in whole 16-token blocks (what vLLM prints after
    "Available KV cache memory")."""
    per_token = kv_bytes_per_token_per_card(a, kv_precision, tensor_parallel)
    if not per_token or kv_bytes_per_card <= 0:
        return 0
    return kv_bytes_per_card // (per_token * VLLM_BLOCK_TOKENS) * VLLM_BLOCK_TOKENS


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def hybrid_kv_pool(a: Architecture, kv_bytes_per_card: int, max_model_len: int, max_num_batched_tokens: int,
                   kv_precision: str = "fp16", tensor_parallel: int = 1) -> tuple[int, float, bool] | None:
    """(printed KV tokens, printed concurrency, starts) under vLLM's hybrid KV cache manager for a model with
    both full-attention and sliding-window (or chunked) layers; None when every layer has the same attention.

    Mirrors vllm/v1/core/kv_cache_utils.py (_get_kv_cache_groups_uniform_page_size, get_kv_cache_config_from_groups,
    _report_kv_cache_config, get_max_concurrency_for_kv_cache_config) and the per-spec max_memory_usage_bytes of
    vllm/v1/kv_cache_interface.py (SlidingWindowSpec, ChunkedLocalAttentionSpec, FullAttentionSpec)."""
    windows = a.layer_windows
    if a.mla is not None or a.is_encoder or len(windows) != a.num_layers or len(set(windows)) < 2:
        return None
    per_token = kv_bytes_per_token_per_card(a, kv_precision, tensor_parallel)
    page = per_token // a.num_layers * VLLM_BLOCK_TOKENS  # one layer's block: the same for every layer here
    if page <= 0:
        return None
    counts: dict[int, int] = {}
    for w in windows:
        counts[w] = counts.get(w, 0) + 1
    fewest, most = min(counts.values()), max(counts.values())
    group_size = most if most < fewest * 1.5 else fewest
    groups = {w: _cdiv(n, group_size) for w, n in counts.items()}
    blocks = max(0, kv_bytes_per_card) // page // group_size
    tokens = blocks // sum(groups.values()) * VLLM_BLOCK_TOKENS

    def request_blocks(window: int) -> int:
        if window == 0:
            return _cdiv(max_model_len, VLLM_BLOCK_TOKENS)
        if a.window_kind == "chunked":
            return _cdiv(min(window + max_num_batched_tokens, max_model_len), VLLM_BLOCK_TOKENS)
        return _cdiv(min(window - 1 + max_num_batched_tokens, max_model_len), VLLM_BLOCK_TOKENS) + 1

    per_request = sum(n * request_blocks(w) for w, n in groups.items())
    return tokens, blocks / per_request, group_size * page * per_request <= kv_bytes_per_card


def activation_peak_bytes(a: Architecture, batched_tokens: int, max_num_seqs: int, tensor_parallel: int = 1) -> int:
    """The profiling run's peak beyond the weights, for every batched token in 16-bit: the MLP's gate+up output
    (2 x intermediate) and its activated half (1 x intermediate), split over the cards, beside the residual and the
    normed hidden state (2 x hidden); plus FP32 logits for the sampled sequences. On vLLM issue #10517 (Llama 3.1
    8B, 20,000 and 29,000 batched tokens) the measured peak is 111 kB per token; this counts 109 kB."""
    inter = a.intermediate_size
    if a.moe is not None:
        inter = max(a.moe.expert_intermediate_size * a.moe.experts_per_token, a.intermediate_size)
    per_token = (3 * inter // max(1, tensor_parallel) + 2 * a.hidden_size) * 2
    return batched_tokens * per_token + min(max_num_seqs, batched_tokens) * a.vocab_size * 4


def vllm_capacity(
    a: Architecture,
    weights_bytes: int,
    total_memory_bytes: int,
    max_model_len: int,
    max_num_seqs: int | None = None,
    tensor_parallel: int = 1,
    gpu_memory_utilization: float = VLLM_GPU_MEMORY_UTILIZATION,
    kv_precision: str = "fp16",
    max_num_batched_tokens: int | None = None,
    non_torch_bytes: int | None = None,
) -> VllmCapacity:
    """Predict vLLM's KV pool and concurrency on `tensor_parallel` cards of `total_memory_bytes` each.

    `weights_bytes` is the whole model (split evenly over the cards); `max_num_batched_tokens` and `max_num_seqs`
    default to `vllm serve`'s own defaults for the card's size."""
    if a.is_encoder:
        raise QuantLensError("invalid_number", "An encoder model has no KV cache to serve from.")
    if not 0 < gpu_memory_utilization <= 1:
        raise QuantLensError("invalid_number", "gpu_memory_utilization must be above 0 and at most 1.")
    if max_model_len < 1 or tensor_parallel < 1 or total_memory_bytes <= 0:
        raise QuantLensError("invalid_number", "max_model_len, tensor parallel size and card memory must be positive.")
    large = total_memory_bytes >= LARGE_CARD_BYTES
    seqs = max_num_seqs or VLLM_SERVE_MAX_NUM_SEQS[large]
    batched = max_num_batched_tokens or VLLM_SERVE_BATCHED_TOKENS[large]
    budget = int(total_memory_bytes * gpu_memory_utilization)
    weights = -(-weights_bytes // tensor_parallel)
    act = activation_peak_bytes(a, batched, seqs, tensor_parallel)
    other = non_torch_bytes if non_torch_bytes is not None else (
        NON_TORCH_BYTES + (NON_TORCH_TP_EXTRA_BYTES if tensor_parallel > 1 else 0))
    kv_bytes = max(0, budget - weights - act - other)
    per_token = kv_bytes_per_token_per_card(a, kv_precision, tensor_parallel)
    hybrid = hybrid_kv_pool(a, kv_bytes, max_model_len, batched, kv_precision, tensor_parallel)
    if hybrid is not None:
        tokens, concurrency, starts = hybrid
    else:
        tokens = kv_tokens_from_bytes(a, kv_bytes, kv_precision, tensor_parallel)
        concurrency, starts = tokens / max_model_len, tokens >= max_model_len
    return VllmCapacity(
        gpu_kv_cache_tokens=tokens, max_concurrency=concurrency, max_model_len=max_model_len, max_num_seqs=seqs,
        max_num_batched_tokens=batched, tensor_parallel=tensor_parallel, kv_cache_bytes_per_card=kv_bytes,
        budget_bytes_per_card=budget, weights_bytes_per_card=weights, activation_bytes_per_card=act,
        non_torch_bytes_per_card=other, kv_bytes_per_token_per_card=per_token, starts=starts,
        concurrent_requests=min(seqs, int(concurrency)),
    )


def capacity_sentence(c: VllmCapacity) -> str:
    """The capacity in words, naming requests x context."""
    if not c.starts:
        return (f"vLLM would refuse to start: its KV pool holds {c.gpu_kv_cache_tokens:,} tokens, fewer than one "
                f"{c.max_model_len:,}-token request (lower --max-model-len or use more cards).")
    return (f"vLLM's KV pool holds {c.gpu_kv_cache_tokens:,} tokens: {c.concurrent_requests} concurrent requests "
            f"× {c.max_model_len:,} tokens at full length (max_num_seqs {c.max_num_seqs}).")
