"""FP16: weights and compute in float16; inputs and outputs stay float32 (keep_io_types)."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from core.compare.onnx_io import load_model_checked, quiet_ort_logging, save_model_fixed, short_error
from core.compare.settings import Fp16Config
from core.compare.techniques.base import QuantizedModel
from core.errors import QuantLensError


def quantize_fp16(src: Path, dst: Path, config: Fp16Config = Fp16Config()) -> QuantizedModel:  # noqa: B008
    """Weights and compute in float16; inputs/outputs stay float32 (keep_io_types)."""
    from onnxruntime.transformers.onnx_model import OnnxModel

    quiet_ort_logging()
    started = time.perf_counter()
    model = load_model_checked(src)
    wrapped = OnnxModel(model)
    try:
        wrapped.convert_float_to_float16(keep_io_types=config.keep_io_types, use_symbolic_shape_infer=True)
    except Exception:  # symbolic shape inference fails on some graphs; ONNX's own inference then works
        wrapped = OnnxModel(load_model_checked(src))
        try:
            wrapped.convert_float_to_float16(keep_io_types=config.keep_io_types, use_symbolic_shape_infer=False)
        except Exception as exc:  # the converter raises bare Exceptions and onnx errors alike
            raise QuantLensError("quantize_failed", f"FP16 conversion failed: {short_error(exc)}") from None
    size = save_model_fixed(wrapped.model, dst)
    return QuantizedModel("fp16", Path(dst), size, time.perf_counter() - started, asdict(config))
