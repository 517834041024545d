"""INT8 dynamic: int8 weights, activations quantized at run time from each input's own range."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from core.compare.common.onnx_io import load_model_checked, quiet_ort_logging, resave_fixed, short_error
from core.compare.common.settings import Int8DynamicConfig
from core.compare.techniques.base import QuantizedModel
from core.compare.techniques.graph import fuse_encoder_ops, rewrite_gemms_noted
from core.errors import QuantLensError


def quantize_int8_dynamic(src: Path, dst: Path, config: Int8DynamicConfig = Int8DynamicConfig(),  # noqa: B008
                          op_types: list[str] | None = None) -> QuantizedModel:
    """int8 weights, activations quantized at run time from each input's own range (no calibration).

    `op_types` narrows the ops quantized (e.g. ["MatMul"] to keep a CNN's Conv layers in float).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quiet_ort_logging()
    started = time.perf_counter()
    model = load_model_checked(src)
    notes: list[str] = []
    rewrite_gemms_noted(model, notes)
    if config.fuse_transformer_ops:
        model = fuse_encoder_ops(model, notes)
    if op_types is not None:
        notes.append(f"Only {', '.join(op_types)} quantized; every other layer kept in float.")
    elif not config.quantize_embeddings:
        op_types = ["MatMul", "Attention", "Conv", "LSTM"]
        notes.append("Embedding tables kept in float (quantize_embeddings off).")
    dst = Path(dst)
    try:
        quantize_dynamic(model, dst, per_channel=config.per_channel, reduce_range=config.reduce_range,
                         weight_type=QuantType.QInt8, op_types_to_quantize=op_types,
                         use_external_data_format=False, extra_options={"DefaultTensorType": 1})
    except (ValueError, RuntimeError, KeyError, AssertionError) as exc:
        raise QuantLensError("quantize_failed", f"INT8 dynamic quantization failed: {short_error(exc)}") from None
    size = resave_fixed(dst)
    return QuantizedModel("int8", dst, size, time.perf_counter() - started, asdict(config), tuple(notes))
