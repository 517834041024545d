"""INT8 for convolutional models: static QDQ, per-channel weights, activation scales from the user's inputs.

Why not dynamic INT8 (what transformers get): it turns Conv into ConvInteger, which ONNX Runtime runs on CPU
~5x slower than the float Conv (PaddleOCR detector/recognizer 0.18-0.28x, magika 0.28x) and which computes
each activation's range per call. ORT's guidance for CNNs is static QDQ, per-channel, calibrated on
representative inputs: ORT then fuses DequantizeLinear→Conv→QuantizeLinear into QLinearConv.

Only the ops that carry weights (Conv, MatMul, Gemm) are quantized: quantizing every Add/Mul/Sigmoid as well
(the plain default) adds a requantization per op and, on PaddleOCR's classifier, halved the speed for no size.
`keep_depthwise` leaves grouped (depthwise) convolutions in float, where int8 kernels are often slower.
"""

from __future__ import annotations

import time
from pathlib import Path

from core.compare.common.onnx_io import load_model_checked, quiet_ort_logging, resave_fixed, short_error
from core.compare.techniques.base import QuantizedModel
from core.compare.techniques.calibration import calibration_reader
from core.errors import QuantLensError

WEIGHT_OPS = ("Conv", "MatMul", "Gemm")


def is_depthwise(node) -> bool:
    return node.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in node.attribute)


def weighted_nodes(model, keep_depthwise: bool = False) -> list[str]:
    """Names of the Conv/MatMul/Gemm nodes whose weight is a constant (what static INT8 can store as int8)."""
    inits = {t.name for t in model.graph.initializer}
    names = []
    for node in model.graph.node:
        if node.op_type not in WEIGHT_OPS or len(node.input) < 2 or not node.name:
            continue
        if node.input[1] not in inits and not (node.op_type != "Conv" and node.input[0] in inits):
            continue
        if keep_depthwise and is_depthwise(node):
            continue
        names.append(node.name)
    return names


def head_nodes(model) -> list[str]:
    """The nodes between the last weighted layers and the graph outputs (a detector's box decoding, Concat, Sigmoid).

    Why: a YOLO head concatenates box coordinates (0-640) and class scores (0-1) into one output; one 8-bit scale
    over that Concat makes every score 0 or 1.25 (nudenet's YOLOv8n lost 5 of 6 detections). These nodes stay float.
    """
    producer = {o: n for n in model.graph.node for o in n.output}
    found: dict[str, None] = {}
    stack = [o.name for o in model.graph.output]
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.op_type in WEIGHT_OPS or node.name in found or len(found) > 64:
            continue
        if node.name:
            found[node.name] = None
        stack.extend(node.input)
    return list(found)


def quantize_int8_conv(src: Path, dst: Path, calibration_feeds: list[dict], *, per_channel: bool = True,
                       keep_depthwise: bool = False, all_ops: bool = False,
                       keep_head_float: bool = True) -> QuantizedModel:
    """Static QDQ INT8 of every constant-weight Conv/MatMul/Gemm, calibrated (MinMax) on `calibration_feeds`.

    `all_ops` quantizes every op ORT can (Add, Mul, pooling, Resize...) too, as ORT's default does: fewer
    float islands, which is faster on some models (detectors) and slower on others; int8_auto measures both.
    The head's final nodes (`head_nodes`) stay float either way.
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    quiet_ort_logging()
    if not calibration_feeds:
        raise QuantLensError("no_inputs", "Static INT8 needs at least one calibration input.")
    started = time.perf_counter()
    model = load_model_checked(src)
    nodes = weighted_nodes(model, keep_depthwise)
    if not nodes:
        raise QuantLensError("quantize_failed", "Static INT8 found no Conv, MatMul or Gemm with constant weights.")
    depthwise = sum(1 for n in model.graph.node if is_depthwise(n)) if keep_depthwise else 0
    head = head_nodes(model) if all_ops and keep_head_float else []

    dst = Path(dst)
    # ORT 1.32's int32-bias scale adjustment fails on some graphs (magika: "truth value of an array ... is
    # ambiguous"); the retry skips only that adjustment, which ORT documents as optional.
    for extra in ({}, {"QDQDisableWeightAdjustForInt32Bias": True}):
        try:
            quantize_static(model, dst, calibration_reader(calibration_feeds), quant_format=QuantFormat.QDQ,
                            op_types_to_quantize=None if all_ops else list(WEIGHT_OPS),
                            nodes_to_quantize=None if all_ops else nodes, nodes_to_exclude=head,
                            per_channel=per_channel,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax, use_external_data_format=False,
                            extra_options=extra)
            break
        except Exception as exc:  # noqa: BLE001 - any ORT error (Fail, InvalidGraph...) is this recipe failing
            error = exc
            model = load_model_checked(src)  # quantize_static may have changed the model in place
    else:
        raise QuantLensError("quantize_failed", f"INT8 static quantization failed: {short_error(error)}") from None
    size = resave_fixed(dst)
    what = "every op ONNX Runtime can quantize" if all_ops else f"{len(nodes)} Conv/MatMul/Gemm layer(s)"
    notes = [f"Static QDQ INT8 ({'per-channel' if per_channel else 'per-tensor'} weights) on {what}, activation "
             f"scales calibrated on {len(calibration_feeds)} input(s)."]
    if head:
        notes.append(f"{len(head)} node(s) of the output head kept in float (outputs that mix coordinates and "
                     "scores lose the scores under one 8-bit scale).")
    if depthwise:
        notes.append(f"{depthwise} depthwise convolution(s) kept in float (their int8 kernels are slower on CPU).")
    settings = {"method_used": "static", "per_channel": per_channel, "keep_depthwise": keep_depthwise, "all_ops": all_ops,
                "quantized_layers": len(nodes)}
    return QuantizedModel("int8", dst, size, time.perf_counter() - started, settings, tuple(notes))
