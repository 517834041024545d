"""Reference numbers for the sizing engine, kept inline so the tests run without ../shared.

Copied from ../shared/reference/ (README.md tables and configs/*.json); `test_inline_reference_matches_shared`
checks the copy against the originals whenever ../shared is present.
"""

from pathlib import Path

SHARED_REFERENCE = Path(__file__).resolve().parents[2] / "../shared/reference"

CONFIGS = {
    "gpt2": {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12,
             "n_positions": 1024, "n_ctx": 1024, "vocab_size": 50257, "activation_function": "gelu_new",
             "layer_norm_epsilon": 1e-05, "tie_word_embeddings": True},
    "llama-3.1-8b": {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
                     "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
                     "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 131072,
                     "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "tie_word_embeddings": False, "hidden_act": "silu",
                     "attention_bias": False, "mlp_bias": False, "torch_dtype": "bfloat16"},
    "mistral-7b-v0.1": {"architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 4096,
                        "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
                        "num_key_value_heads": 8, "vocab_size": 32000, "max_position_embeddings": 32768,
                        "sliding_window": 4096, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
                        "tie_word_embeddings": False, "hidden_act": "silu", "torch_dtype": "bfloat16"},
    "mixtral-8x7b": {"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "hidden_size": 4096,
                     "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
                     "num_key_value_heads": 8, "vocab_size": 32000, "num_local_experts": 8, "num_experts_per_tok": 2,
                     "max_position_embeddings": 32768, "sliding_window": None, "rms_norm_eps": 1e-05,
                     "rope_theta": 1000000.0, "tie_word_embeddings": False, "hidden_act": "silu",
                     "torch_dtype": "bfloat16"},
    "phi-3-mini-4k": {"architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "hidden_size": 3072,
                      "intermediate_size": 8192, "num_hidden_layers": 32, "num_attention_heads": 32,
                      "num_key_value_heads": 32, "vocab_size": 32064, "max_position_embeddings": 4096,
                      "sliding_window": 2047, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
                      "tie_word_embeddings": False, "hidden_act": "silu", "torch_dtype": "bfloat16"},
    "qwen2.5-0.5b": {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 896,
                     "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
                     "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 32768,
                     "max_window_layers": 21, "use_sliding_window": False, "sliding_window": 32768,
                     "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "tie_word_embeddings": True,
                     "hidden_act": "silu", "torch_dtype": "bfloat16"},
}

# README "configs/" table: parameters as PyTorch counts them on the meta device.
PARAMETERS = {
    "llama-3.1-8b": 8_030_261_248,
    "mistral-7b-v0.1": 7_241_732_096,
    "mixtral-8x7b": 46_702_792_704,
    "phi-3-mini-4k": 3_821_079_552,
    "qwen2.5-0.5b": 494_032_768,
    "gpt2": 124_439_808,
}
MIXTRAL_ACTIVE = 12_879_925_248

# README: KV cache bytes per token at FP16 (K and V, all layers).
KV_BYTES_PER_TOKEN_FP16 = {
    "llama-3.1-8b": 131_072,
    "phi-3-mini-4k": 393_216,
    "qwen2.5-0.5b": 12_288,
    "gpt2": 36_864,
}

# README: llama.cpp quantize table, Llama-3-8B file sizes in GiB (tools/quantize/quantize.cpp).
LLAMA3_8B_GGUF_GIB = {
    "Q2_K": 2.96, "Q3_K_S": 3.41, "Q3_K_M": 3.74, "Q3_K_L": 4.03, "Q4_0": 4.34, "Q4_1": 4.78, "Q4_K_S": 4.37,
    "Q4_K_M": 4.58, "Q5_0": 5.21, "Q5_1": 5.65, "Q5_K_S": 5.21, "Q5_K_M": 5.33, "Q6_K": 6.14, "Q8_0": 7.96,
}
LLAMA3_8B_PPL_DELTA = {
    "Q2_K": 3.5199, "Q3_K_S": 1.6321, "Q3_K_M": 0.6569, "Q3_K_L": 0.5562, "Q4_0": 0.4685, "Q4_1": 0.4511,
    "Q4_K_S": 0.2689, "Q4_K_M": 0.1754, "Q5_0": 0.1316, "Q5_1": 0.1062, "Q5_K_S": 0.1049, "Q5_K_M": 0.0569,
    "Q6_K": 0.0217, "Q8_0": 0.0026,
}
# README: bits per weight of the ggml block types.
GGML_BPW = {
    "Q8_0": 8.5, "Q5_1": 6.0, "Q5_0": 5.5, "Q4_1": 5.0, "Q4_0": 4.5, "IQ4_NL": 4.5, "MXFP4": 4.25, "Q6_K": 6.5625,
    "Q5_K": 5.5, "Q4_K": 4.5, "Q3_K": 3.4375, "Q2_K": 2.625, "IQ4_XS": 4.25, "IQ3_S": 3.4375, "IQ3_XXS": 3.0625,
    "IQ2_S": 2.5625, "IQ2_XS": 2.3125, "IQ2_XXS": 2.0625, "IQ1_M": 1.75, "IQ1_S": 1.5625,
}
