"""INT8 static (QDQ): activation scales fixed from the user's inputs; outlier layers kept in float."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from core.compare.common.onnx_io import load_model_checked, quiet_ort_logging, resave_fixed, short_error
from core.compare.common.settings import Int8StaticConfig
from core.compare.techniques.base import QuantizedModel
from core.compare.techniques.calibration import activation_outlier_ratios, calibration_reader
from core.compare.techniques.graph import rewrite_gemms_noted
from core.errors import QuantLensError


def quantize_int8_static(src: Path, dst: Path, calibration_feeds: list[dict],
                         config: Int8StaticConfig = Int8StaticConfig()) -> QuantizedModel:  # noqa: B008
    """int8 QDQ with activation scales fixed from `calibration_feeds` (the user's inputs, equal shapes)."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    quiet_ort_logging()
    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    if not calibration_feeds:
        raise QuantLensError("no_inputs", "Static INT8 needs at least one calibration input.")
    started = time.perf_counter()
    model = load_model_checked(src)
    notes: list[str] = []
    rewrite_gemms_noted(model, notes)
    ratios = activation_outlier_ratios(model, calibration_feeds)
    if not ratios:
        raise QuantLensError("quantize_failed", "Static INT8 found no MatMul with constant weights to quantize.")
    kept = sorted(name for name, ratio in ratios.items() if ratio > config.outlier_ratio)
    if kept:
        notes.append(f"{len(kept)} of {len(ratios)} MatMul layers kept in float: their inputs have outliers more "
                     f"than {config.outlier_ratio:g}x the 99th percentile, which one static 8-bit scale cannot cover.")
    include = [name for name in ratios if name not in kept]
    if not include:
        raise QuantLensError("quantize_failed", "Every MatMul has outlier activations; static INT8 would keep the whole model in float.")
    op_types = ["MatMul"]
    if config.quantize_embeddings:
        inits = {t.name for t in model.graph.initializer}
        tables = [n.name for n in model.graph.node if n.op_type == "Gather" and n.input and n.input[0] in inits and n.name]
        include += tables
        op_types.append("Gather")

    extra = {"DefaultTensorType": 1}
    if config.calibration == "percentile":
        extra["CalibPercentile"] = config.percentile
    dst = Path(dst)
    try:
        quantize_static(model, dst, calibration_reader(calibration_feeds), quant_format=QuantFormat.QDQ, op_types_to_quantize=op_types,
                        nodes_to_quantize=include, per_channel=config.per_channel,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=methods[config.calibration], use_external_data_format=False,
                        extra_options=extra)
    except (ValueError, RuntimeError, KeyError, AssertionError) as exc:
        raise QuantLensError("quantize_failed", f"INT8 static quantization failed: {short_error(exc)}") from None
    size = resave_fixed(dst)
    settings = asdict(config) | {"kept_float": kept}
    return QuantizedModel("int8-static", dst, size, time.perf_counter() - started, settings, tuple(notes))
