"""Each runtime's own rules, in one table the verdict, the fit matrix, the pages and the CLI all read.

A memory total is only half an answer: "AWQ fits an RTX 3060" is advice a llama.cpp user cannot follow, and
"fits with 0.2 GB free" is wrong under vLLM, which takes `gpu_memory_utilization` (0.9) of the card and no more.
So per runtime this module says:

- which weight formats it loads (llama.cpp: GGUF files, and the 16/32-bit types convert_hf_to_gguf.py writes;
  vLLM: 16/32-bit, FP8, INT8/INT4 compressed-tensors, AWQ, GPTQ, bitsandbytes; transformers: 16/32-bit,
  bitsandbytes 8/4-bit, AWQ, GPTQ, FP8), and why not the others;
- how much of a card it may use (vLLM: `gpu_memory_utilization` x total memory; the others: what the
  driver leaves, i.e. the catalog's usable memory) and what it reserves besides weights and KV (core.sizing.overhead);
- how it splits a model over cards (vLLM: tensor parallel, a power of two dividing the attention heads;
  llama.cpp and transformers' device_map: whole layers per card);
- the formats to fall back to, best first, when none chosen fits.

Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from core.sizing.hardware import Fit, Hardware, gpus_needed_pooled, gpus_needed_tensor_parallel
from core.sizing.overhead import get_runtime
from core.sizing.precisions import Precision, get_precision

TENSOR_PARALLEL, LAYER_SPLIT = "tensor_parallel", "layer_split"
VLLM_GPU_MEMORY_UTILIZATION = 0.9  # vllm/engine/arg_utils.py EngineArgs.gpu_memory_utilization default


@dataclass(frozen=True)
class RuntimeRules:
    """What one runtime loads, how much of a card it takes, how it splits, and what it reserves."""

    name: str
    label: str
    loads_families: frozenset[str]  # precision families it loads whole ("gguf", "awq", ...)
    loads_ideal: frozenset[str]  # ideal precisions that stand for a real file it loads (fp16 -> a 16-bit checkpoint)
    refusals: dict[str, str]  # family or ideal name -> why it cannot load it (one sentence)
    memory_fraction: float | None  # share of the card's total memory it allocates; None: what the driver leaves
    split: str  # TENSOR_PARALLEL or LAYER_SPLIT
    split_words: str
    reserves: str  # what it keeps besides weights and KV cache, in words
    fallback_ladder: tuple[str, ...]  # formats to try, most faithful first, when none chosen fits
    hardware_kinds: frozenset[str]  # "gpu", "apple", "cpu" it runs on
    kv_precisions: tuple[str, ...] = ("fp16", "bf16", "fp32")  # KV cache types it can be told to use
    kv_words: str = ""  # how it is told, and what it cannot do, in one sentence


RUNTIME_RULES: dict[str, RuntimeRules] = {
    "llama.cpp": RuntimeRules(
        name="llama.cpp",
        label="llama.cpp",
        loads_families=frozenset({"gguf"}),
        loads_ideal=frozenset({"fp32", "fp16", "bf16"}),
        refusals={
            "awq": "llama.cpp loads GGUF files only; an AWQ checkpoint needs vLLM or transformers (use a GGUF Q4_K_M).",
            "gptq": "llama.cpp loads GGUF files only; a GPTQ checkpoint needs vLLM or transformers (use a GGUF Q4_K_M).",
            "bnb": "llama.cpp loads GGUF files only; bitsandbytes quantizes at load time in transformers/vLLM "
                   "(use a GGUF Q4_K_M).",
            "fp8": "llama.cpp loads GGUF files only and has no FP8 weight type (use a GGUF Q8_0).",
            "int8": "llama.cpp loads GGUF files only; its 8-bit type is GGUF Q8_0.",
            "int4": "llama.cpp loads GGUF files only; its 4-bit types are GGUF Q4_K_M, Q4_0, IQ4_XS.",
            "int3": "llama.cpp loads GGUF files only; its 3-bit types are GGUF Q3_K_M, IQ3_XXS.",
            "int2": "llama.cpp loads GGUF files only; its 2-bit types are GGUF Q2_K, IQ2_XS.",
        },
        memory_fraction=None,
        split=LAYER_SPLIT,
        split_words="llama.cpp splits whole layers over the cards (--split-mode layer, the default)",
        reserves="a compute buffer for a 512-token micro-batch (FP32 FFN intermediates and logits) and the "
                 "CUDA/Metal context",
        fallback_ladder=("fp16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "IQ4_XS", "Q3_K_M", "IQ3_XXS", "Q2_K",
                         "IQ2_XS", "IQ2_XXS", "IQ1_M"),
        hardware_kinds=frozenset({"gpu", "apple", "cpu"}),
        kv_precisions=("fp16", "bf16", "fp32", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0", "iq4_nl"),
        kv_words="llama.cpp sets its KV cache type with -ctk/-ctv (f16, bf16, f32, q8_0, q5_1, q5_0, q4_1, q4_0, "
                 "iq4_nl; a quantized V cache needs flash attention, -fa on); it has no FP8 cache.",
    ),
    "vllm": RuntimeRules(
        name="vllm",
        label="vLLM",
        loads_families=frozenset({"awq", "gptq", "bnb", "fp8"}),
        loads_ideal=frozenset({"fp32", "fp16", "bf16", "fp8", "int8", "int4"}),
        refusals={
            "gguf": "vLLM's GGUF loader is experimental, single-file and slow; serve an AWQ, GPTQ or FP8 "
                    "checkpoint instead.",
            "int3": "vLLM has no 3-bit weight format for this model family; use AWQ/GPTQ 4-bit.",
            "int2": "vLLM has no 2-bit weight format for this model family; use AWQ/GPTQ 4-bit.",
        },
        memory_fraction=VLLM_GPU_MEMORY_UTILIZATION,
        split=TENSOR_PARALLEL,
        split_words="vLLM splits every layer over the cards (tensor parallel, -tp: a power of two that divides "
                    "the attention heads)",
        reserves="the profiling run's activation peak over max_num_batched_tokens, CUDA graphs and the CUDA "
                 "context; everything else up to gpu_memory_utilization becomes the KV cache pool",
        fallback_ladder=("fp16", "FP8-SCALED", "int8", "AWQ-INT4", "GPTQ-INT4"),
        hardware_kinds=frozenset({"gpu", "cpu"}),
        kv_precisions=("fp16", "bf16", "fp8"),
        kv_words="vLLM keeps its KV cache in the model's dtype (--kv-cache-dtype auto) or in FP8 (--kv-cache-dtype "
                 "fp8, fp8_e4m3 or fp8_e5m2); it has no q8_0/q4_0 cache.",
    ),
    "transformers": RuntimeRules(
        name="transformers",
        label="transformers",
        loads_families=frozenset({"awq", "gptq", "bnb", "fp8"}),
        loads_ideal=frozenset({"fp32", "fp16", "bf16", "fp8", "int8", "int4"}),
        refusals={
            "gguf": "transformers dequantizes a GGUF file to 16/32-bit when it loads it, so it takes FP16 memory, "
                    "not the file's size.",
            "int3": "transformers has no 3-bit weight format (bitsandbytes is 8 or 4 bits).",
            "int2": "transformers has no 2-bit weight format (bitsandbytes is 8 or 4 bits).",
        },
        memory_fraction=None,
        split=LAYER_SPLIT,
        split_words="transformers places whole layers on each card (device_map=\"auto\")",
        reserves="one prompt-length forward pass in 16-bit, the logits and the caching allocator's slack",
        fallback_ladder=("fp16", "FP8-SCALED", "int8", "NF4", "AWQ-INT4"),
        hardware_kinds=frozenset({"gpu", "apple", "cpu"}),
        kv_precisions=("fp16", "bf16", "fp32"),
        kv_words="transformers keeps its KV cache (DynamicCache) in the model's dtype; its quantized cache "
                 "(cache_implementation=\"quantized\", quanto/HQQ 2/4-bit with a full-precision residual window) "
                 "is not sized here.",
    ),
}


def rules(runtime: str) -> RuntimeRules:
    """The rules of a runtime by name (aliases as core.sizing.overhead.get_runtime reads them)."""
    return RUNTIME_RULES[get_runtime(runtime)]


def load_refusal(runtime: str, precision: str | Precision) -> str | None:
    """None when `runtime` loads `precision`; else one sentence saying why not and what to use."""
    r = rules(runtime)
    p = precision if isinstance(precision, Precision) else get_precision(precision)
    if p.family == "ideal":
        if p.name in r.loads_ideal:
            return None
        return r.refusals.get(p.name, f"{r.label} cannot load {p.label} weights.")
    if p.family in r.loads_families:
        return None
    return r.refusals.get(p.family, f"{r.label} cannot load {p.label} weights.")


def loads(runtime: str, precision: str | Precision) -> bool:
    return load_refusal(runtime, precision) is None


def kv_refusal(runtime: str, kv_precision: str) -> str | None:
    """None when `runtime` can keep its KV cache in `kv_precision`; else one sentence saying what it takes."""
    r = rules(runtime)
    if kv_precision in r.kv_precisions:
        return None
    return f"{r.label} cannot keep its KV cache in {kv_precision}: {r.kv_words}"


def kv_choices(runtime: str) -> tuple[str, ...]:
    """The KV cache precisions `runtime` takes, FP16 first (the page's selector offers these only)."""
    return rules(runtime).kv_precisions


def hardware_refusal(runtime: str, hw: Hardware) -> str | None:
    """None when `runtime` runs on this kind of device; else why not."""
    r = rules(runtime)
    if hw.kind in r.hardware_kinds:
        return None
    if hw.kind == "apple":
        return f"{r.label} has no Apple GPU (Metal) backend; use llama.cpp or MLX on a Mac."
    return f"{r.label} does not run on {hw.name}."


def card_budget_bytes(hw: Hardware, runtime: str) -> int:
    """Bytes the runtime may use on one card: vLLM takes gpu_memory_utilization x total (never more than the
    driver leaves); the others, the usable memory of the catalog."""
    r = rules(runtime)
    if r.memory_fraction is None or hw.kind != "gpu":
        return hw.usable_memory_bytes
    return min(hw.usable_memory_bytes, int(hw.memory_bytes * r.memory_fraction))


def budget_words(hw: Hardware, runtime: str) -> str:
    """'vLLM's 90% of 25.8 GB = 23.2 GB' or 'the 24.7 GB usable': how the budget was set, for captions."""
    r = rules(runtime)
    budget = card_budget_bytes(hw, runtime) / 1e9
    if r.memory_fraction is not None and hw.kind == "gpu":
        return (f"{r.label}'s gpu_memory_utilization {r.memory_fraction:g} x {hw.memory_bytes / 1e9:.1f} GB "
                f"= {budget:.1f} GB")
    return f"{budget:.1f} GB usable"


def runtime_fit(hw: Hardware, weights_bytes: int, kv_bytes: int, overhead_bytes: int, runtime: str,
                num_heads: int | None = None) -> Fit:
    """Fit on one card under the runtime's budget, with the cards needed counted the way it splits
    (tensor parallel for vLLM, whole layers for llama.cpp and transformers); the other count is None."""
    r = rules(runtime)
    budget = card_budget_bytes(hw, runtime)
    total = weights_bytes + kv_bytes + overhead_bytes
    multi = hw.kind == "gpu"
    tp = pooled = None
    if multi and r.split == TENSOR_PARALLEL:
        tp = gpus_needed_tensor_parallel(weights_bytes, kv_bytes, overhead_bytes, budget, num_heads)
    elif multi:
        pooled = gpus_needed_pooled(weights_bytes, kv_bytes, overhead_bytes, budget)
    return Fit(hw.id, hw.name, total, budget, total <= budget, budget - total, tp, pooled)


def usable_cards(cards: int, runtime: str, num_heads: int | None) -> int:
    """The most of `cards` the runtime can use at once: vLLM's tensor parallel size must be a power of two
    dividing the heads (3 cards run as TP 2); a layer split uses them all."""
    if rules(runtime).split != TENSOR_PARALLEL:
        return cards
    tp = 1
    while tp * 2 <= cards and (num_heads is None or num_heads % (tp * 2) == 0):
        tp *= 2
    return tp


def per_card_bytes(weights_bytes: int, kv_bytes: int, overhead_bytes: int, cards: int) -> int:
    """Each card holds its share of weights and KV cache and pays the runtime's overhead in full."""
    return -(-(weights_bytes + kv_bytes) // max(1, cards)) + overhead_bytes


def on_budget_hardware(hw: Hardware, runtime: str) -> Hardware:
    """The same card with usable memory set to the runtime's budget (for helpers that read usable memory)."""
    return replace(hw, usable_memory_bytes=card_budget_bytes(hw, runtime))


def rules_summary(runtime: str) -> dict[str, object]:
    """The rules as plain data (CLI JSON `runtime_rules`, page captions)."""
    from core.sizing.precisions import PRECISIONS

    r = rules(runtime)
    return {
        "runtime": r.name,
        "loads": [p.name for p in PRECISIONS if loads(r.name, p)],
        "memory_fraction": r.memory_fraction,
        "split": r.split,
        "split_words": r.split_words,
        "reserves": r.reserves,
        "fallback_ladder": list(r.fallback_ladder),
        "kv_precisions": list(r.kv_precisions),
    }
