"""Quantize & compare: export a model to ONNX, make FP16/INT8/INT4 variants with ONNX Runtime, run them all
on the user's inputs and report quality, size, memory and latency against the reference.

Folders in the order data goes through them: common/ (options, ONNX files, forked steps, memory) → inputs/ (the
user's data) → prepare/ (one FP32 ONNX file and its feeds) → techniques/ (FP16/INT8/INT4 files) → measure/ (run
and measure each) → judge/ (what the numbers mean); pipeline, isolated_steps and report orchestrate on top. A
module imports only its own or an earlier stage, and there is no import circle (tests/core/test_compare_layers.py).

Rule of this part: onnx, onnxruntime, torch and transformers are imported inside the functions that use them,
and the whole pipeline runs only inside the confined job worker (core.jobs). Importing this package is cheap.
"""

from core.compare.pipeline import (
    CompareOptions,
    ComparisonReport,
    VariantResult,
    compare_model,
    run_comparison_job,
    to_json_dict,
    write_report,
)

__all__ = [
    "CompareOptions", "ComparisonReport", "VariantResult", "compare_model", "run_comparison_job", "to_json_dict",
    "write_report",
]
