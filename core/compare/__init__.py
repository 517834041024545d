"""Quantize & compare: export a model to ONNX, make FP16/INT8/INT4 variants with ONNX Runtime, run them all
on the user's inputs and report quality, size, memory and latency against the reference.

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
