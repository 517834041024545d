"""FP16: weights and compute in float16; inputs and outputs stay float32 (keep_io_types).

Why not `OnnxModel.convert_float_to_float16` as it stands: after converting it always runs ORT's symbolic shape
inference again to find useless Casts, and on CNNs with Resize nodes that sympy pass dominates (PaddleOCR's
4.7 MB detector: 37-44 s of a 0.3 s conversion, measured on 2 cores). Plain ONNX graphs get ORT's converter
(`float16.convert_float_to_float16`, which runs ONNX's own type inference) followed by the same Cast clean-up
reading the types it recorded; graphs with com.microsoft ops (which ONNX inference does not know) keep the
symbolic path, falling back to ONNX inference where symbolic inference fails.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from core.compare.common.onnx_io import load_model_checked, quiet_ort_logging, save_model_fixed, short_error
from core.compare.common.settings import Fp16Config
from core.compare.techniques.base import QuantizedModel
from core.errors import QuantLensError

MICROSOFT_DOMAIN = "com.microsoft"


def needs_symbolic_inference(model) -> bool:
    """True when the graph uses contrib ops that ONNX's own type inference cannot type."""
    return any(node.domain == MICROSOFT_DOMAIN for node in model.graph.node)


def convert_plain(model, keep_io_types: bool):
    """ORT's converter with ONNX type inference, then the wrapper's Cast clean-up without re-inferring shapes."""
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    wrapped = OnnxModel(convert_float_to_float16(model, keep_io_types=keep_io_types))
    wrapped.disable_shape_inference()
    wrapped.remove_cascaded_cast_nodes()
    wrapped.remove_useless_cast_nodes()
    return wrapped.model


def convert_symbolic(model, keep_io_types: bool, symbolic: bool):
    from onnxruntime.transformers.onnx_model import OnnxModel

    wrapped = OnnxModel(model)
    wrapped.convert_float_to_float16(keep_io_types=keep_io_types, use_symbolic_shape_infer=symbolic)
    return wrapped.model


def quantize_fp16(src: Path, dst: Path, config: Fp16Config = Fp16Config()) -> QuantizedModel:  # noqa: B008
    """Weights and compute in float16; inputs/outputs stay float32 (keep_io_types)."""
    quiet_ort_logging()
    started = time.perf_counter()
    model = load_model_checked(src)
    attempts = ([lambda m: convert_symbolic(m, config.keep_io_types, True),
                 lambda m: convert_symbolic(m, config.keep_io_types, False)]
                if needs_symbolic_inference(model) else
                [lambda m: convert_plain(m, config.keep_io_types),
                 lambda m: convert_symbolic(m, config.keep_io_types, True)])
    converted = None
    for i, attempt in enumerate(attempts):
        try:
            converted = attempt(model if i == 0 else load_model_checked(src))
            break
        except Exception as exc:  # the converter raises bare Exceptions and onnx errors alike
            if i == len(attempts) - 1:
                raise QuantLensError("quantize_failed", f"FP16 conversion failed: {short_error(exc)}") from None
    size = save_model_fixed(converted, dst)
    return QuantizedModel("fp16", Path(dst), size, time.perf_counter() - started, asdict(config))
