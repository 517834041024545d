"""Model families QuantLens knows, in one table: how each one's config.json becomes tensors and KV cache.

Why a table: the parameter count, the "unknown family" warning and the runtime KV rules used to keep their
own lists, and families with their own rules (starcoder2, cohere, internlm2) were still warned about as
unknown. Now `architecture` reads a family's static shape rules from here, the warning fires exactly for
model types missing here, and `kv_cache` asks here whether llama.cpp honours a family's attention window.

Each row cites where the rule comes from: transformers' modeling_<family>.py (what PyTorch builds) and
llama.cpp's src/llama-model.cpp (which architectures it loads with a sliding-window cache, `swa_type`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    """Static rules of one `model_type`. Config-dependent switches (biases named per family) stay in code."""

    label: str
    reader: str = "decoder"  # "decoder" | "gpt2" | "bert"
    qkv_bias: bool = False
    o_bias: bool = False
    gated_mlp: bool = True
    norm: str = "rms"  # "rms", "layer" (weight + bias), "layer_no_bias"
    norms_per_layer: int = 2
    qk_norm: bool = False
    qk_norm_full_width: bool = False
    fused_qkv: bool = False
    fused_gate_up: bool = False
    attention_sinks: bool = False
    tie_default: bool = False
    window_rule: str = "config"  # how layer windows follow from the config (see architecture._layer_windows)
    window_kind: str = "sliding"  # "sliding" or "chunked" (Llama 4: attention within fixed 8192-token chunks)
    # llama.cpp loads this family with an interleaved sliding-window cache (llama-model.cpp sets
    # hparams.swa_type != NONE); for all others it allocates the full context on every layer.
    llama_cpp_swa: bool = False
    mxfp4_experts: bool = False  # experts ship in MXFP4 and stay so in every GGUF (gpt-oss)


FAMILIES: dict[str, Family] = {
    "llama": Family("Llama"),
    # llama.cpp converts Mistral/Mixtral as LLM_ARCH_LLAMA, which has no sliding window: v0.1's 4096 window is
    # ignored and every layer caches the whole context (convert_hf_to_gguf.py MistralModel -> LlamaModel).
    "mistral": Family("Mistral", window_rule="all"),
    "mixtral": Family("Mixtral", window_rule="all"),
    "qwen2": Family("Qwen2", qkv_bias=True, window_rule="qwen"),
    "qwen2_moe": Family("Qwen2-MoE", qkv_bias=True, window_rule="qwen"),
    "qwen3": Family("Qwen3", qk_norm=True, window_rule="qwen"),
    "qwen3_moe": Family("Qwen3-MoE", qk_norm=True, window_rule="qwen"),
    "gemma": Family("Gemma", tie_default=True),
    # llama-model.cpp: LLM_ARCH_GEMMA2 / GEMMA3 set swa_type = LLAMA_SWA_TYPE_STANDARD
    "gemma2": Family("Gemma 2", norms_per_layer=4, tie_default=True, window_rule="gemma2", llama_cpp_swa=True),
    "gemma3_text": Family("Gemma 3", norms_per_layer=4, qk_norm=True, tie_default=True, window_rule="gemma3",
                          llama_cpp_swa=True),
    "gemma3": Family("Gemma 3", norms_per_layer=4, qk_norm=True, tie_default=True, window_rule="gemma3",
                     llama_cpp_swa=True),
    # Phi-3: llama-model.cpp LLM_ARCH_PHI3 leaves swa_type NONE ("sliding window is disabled for Phi-3")
    "phi3": Family("Phi-3", fused_qkv=True, fused_gate_up=True, window_rule="all"),
    "phi": Family("Phi-2", qkv_bias=True, o_bias=True, gated_mlp=False, norm="layer", norms_per_layer=1),
    "gpt2": Family("GPT-2", reader="gpt2"),
    "bert": Family("BERT", reader="bert"),
    "gpt_neox": Family("GPT-NeoX", gated_mlp=False, norm="layer", fused_qkv=True),
    "falcon": Family("Falcon", gated_mlp=False, norm="layer", fused_qkv=True, tie_default=True),
    "deepseek_v2": Family("DeepSeek-V2"),
    "deepseek_v3": Family("DeepSeek-V3"),
    # llama-model.cpp: LLM_ARCH_OPENAI_MOE (gpt-oss) uses swa_type STANDARD on every other layer
    "gpt_oss": Family("gpt-oss", qkv_bias=True, o_bias=True, attention_sinks=True, llama_cpp_swa=True,
                      mxfp4_experts=True),
    "olmo2": Family("OLMo 2", qk_norm=True, qk_norm_full_width=True),
    # modeling_starcoder2.py: LayerNorm with bias, plain (c_fc, c_proj) MLP, use_bias for every linear layer
    "starcoder2": Family("StarCoder2", gated_mlp=False, norm="layer", window_rule="all"),
    # modeling_cohere.py: one LayerNorm without bias per block (parallel attention + MLP); ties by default
    "cohere": Family("Command-R", norm="layer_no_bias", norms_per_layer=1, tie_default=True),
    # modeling_internlm2.py: Llama layout; config "bias" switches the attention biases
    "internlm2": Family("InternLM2"),
    # modeling_llama4.py: shared expert + routed experts on interleaved layers, chunked attention on RoPE
    # layers, L2 qk-norm without weights; llama-model.cpp LLM_ARCH_LLAMA4 uses swa_type CHUNKED (n_swa = 8192)
    "llama4_text": Family("Llama 4", window_rule="llama4", window_kind="chunked", llama_cpp_swa=True),
}
# A multimodal wrapper's model_type, read through its text_config.
TEXT_CONFIG_TYPES = {"gemma3": "gemma3_text", "llama4": "llama4_text"}

LLAMA_LIKE = Family("Llama-style (unknown family)")


def family(model_type: str) -> Family:
    """The family's rules, or Llama's for an unknown model type (the caller warns about it)."""
    return FAMILIES.get(model_type, LLAMA_LIKE)


def is_known(model_type: str) -> bool:
    return model_type in FAMILIES
