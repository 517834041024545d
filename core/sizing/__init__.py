"""Sizing: how much memory a model needs at a precision, and whether it fits.

Rule of this part: standard library only. It runs on every calculator click and at app start-up, so it never
imports onnx, onnxruntime, torch, transformers, optimum or streamlit (tests/core/test_import_rules.py holds it).

Modules: precisions (the registry of formats), architecture (config.json → Architecture and its tensor
inventory), gguf (llama.cpp's per-tensor type rules), weights, kv_cache, overhead, hardware (fit, GPUs needed,
tokens/s), training, catalog (+ data/), and engine (the facade the page and CLI call, re-exported here).
"""

from core.sizing.engine import (
    DEFAULT_MAX_CONTEXT,
    MYTH_70B_INT4,
    SEED_MODELS,
    SEED_PRECISIONS,
    CalculatorResult,
    HardwareDetail,
    MemoryEstimate,
    ModelSpec,
    architecture_known,
    calculate,
    context_points,
    decode_speed,
    estimate,
    estimate_all,
    fit,
    fit_matrix,
    format_params,
    max_context,
    memory_vs_context,
    model_from_architecture,
    model_from_catalog,
    model_from_config,
    model_from_params,
    model_summary,
    myth_notes,
    resolve_model,
    seed_table,
    weights_bytes,
)

__all__ = [
    "DEFAULT_MAX_CONTEXT", "MYTH_70B_INT4", "SEED_MODELS", "SEED_PRECISIONS", "CalculatorResult", "HardwareDetail",
    "MemoryEstimate", "ModelSpec", "architecture_known", "calculate", "context_points", "decode_speed", "estimate", "estimate_all", "fit",
    "fit_matrix", "format_params", "max_context", "memory_vs_context", "model_from_architecture",
    "model_from_catalog", "model_from_config", "model_from_params", "model_summary", "myth_notes", "resolve_model",
    "seed_table", "weights_bytes",
]
