"""What bench/ and tests/ both build on: small local models and the local Hugging Face Hub stand-in.

Why here and not in tests/: a bench script measures the product the way a user runs it, so it imports from core/
and bench/ only (tests/core/test_compare_layers.py holds that rule); the tests import these from here too, so both
measure the same models.

Modules: onnx_models (build_gemm_relu_onnx), causal_lm_models (Llama/Qwen2-shaped folders with their own
tokenizer), hub_server (a local Hub on 127.0.0.1 answering huggingface_hub's calls), llamacpp_records (reading `make
truth`'s recorded llama.cpp answers).
"""

__all__ = ["causal_lm_models", "hub_server", "llamacpp_records", "onnx_models"]
