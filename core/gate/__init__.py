"""The upload gate: the first and only code that reads a user's bytes before the confined worker does.

Rule of this part: pure Python, no ML library (onnx, onnxruntime, torch, transformers, optimum) and no
streamlit: a hostile file must not reach a parser with native code before it has been checked here.
tests/core/test_import_rules.py holds that rule.

Modules: ingest (zip/folder/ONNX/safetensors validation, spooling, config checks), onnx_scan (a protobuf
walker that counts nodes and initializers without onnx), safetensors_header (header-only reads), confined
(the same checks in a child process with a memory, CPU and time budget: what the page and CLI call).
"""

from core.gate.confined import GateBudget, validate_model_path_confined, validate_upload_confined
from core.gate.ingest import (
    UploadLimits,
    ValidatedUpload,
    check_config,
    sniff,
    spool_upload,
    validate_model_dir,
    validate_model_path,
    validate_upload,
)
from core.gate.onnx_scan import OnnxSummary, scan_onnx_bytes, scan_onnx_file
from core.gate.safetensors_header import SafetensorsHeader, TensorEntry, parse_header_bytes, read_header

__all__ = [
    "GateBudget", "validate_model_path_confined", "validate_upload_confined",
    "OnnxSummary", "SafetensorsHeader", "TensorEntry", "UploadLimits", "ValidatedUpload", "check_config",
    "parse_header_bytes", "read_header", "scan_onnx_bytes", "scan_onnx_file", "sniff", "spool_upload",
    "validate_model_dir", "validate_model_path", "validate_upload",
]
