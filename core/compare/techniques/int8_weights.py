"""INT8 weight-only: Conv/MatMul/Gemm weights stored as int8 + per-channel scale, computed in float.

Why: on small CPU CNNs (MobileNet-style blocks with HardSwish and squeeze-excite, PaddleOCR's classifier)
int8 *compute* loses to ORT's blocked float Conv kernels: every float op between two QLinearConv needs a
QuantizeLinear/DequantizeLinear pair, and the static QDQ file ran 0.2-0.7x FP32's speed here. Storing the
weights in int8 still makes the file ~4x smaller, and a DequantizeLinear on a constant is folded (or run once
per call on the weights only), so speed stays at FP32's and the error is only the weights' rounding
(symmetric, one scale per output channel).
"""

from __future__ import annotations

import time
from pathlib import Path

from core.compare.common.onnx_io import load_model_checked, save_model_fixed
from core.compare.techniques.base import QuantizedModel
from core.errors import QuantLensError

MIN_WEIGHT_VALUES = 256  # smaller tensors (biases, tiny layers) stay float: nothing to gain


def quantize_int8_weights(src: Path, dst: Path) -> QuantizedModel:
    """Every constant float Conv/MatMul/Gemm weight of >= MIN_WEIGHT_VALUES values as int8 + DequantizeLinear."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    started = time.perf_counter()
    model = load_model_checked(src)
    inits = {t.name: t for t in model.graph.initializer}
    done: dict[str, str] = {}
    new_nodes = []
    for node in model.graph.node:
        if node.op_type not in ("Conv", "MatMul", "Gemm") or len(node.input) < 2:
            continue
        name = node.input[1]
        tensor = inits.get(name)
        if tensor is None or tensor.data_type != onnx.TensorProto.FLOAT or len(tensor.dims) < 2:
            continue
        if node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute):
            axis = 0
        else:
            axis = 0 if node.op_type == "Conv" else 1
        if int(np.prod(tensor.dims)) < MIN_WEIGHT_VALUES:
            continue
        if name not in done:
            w = numpy_helper.to_array(tensor).astype(np.float32)
            reduce = tuple(i for i in range(w.ndim) if i != axis)
            scale = (np.abs(w).max(axis=reduce) / 127.0).astype(np.float32)
            scale = np.where(scale == 0, np.float32(1.0), scale)
            shape = [1] * w.ndim
            shape[axis] = -1
            q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
            qname, sname, zname, out = f"{name}_int8", f"{name}_int8_scale", f"{name}_int8_zero", f"{name}_dq"
            model.graph.initializer.extend([numpy_helper.from_array(q, qname), numpy_helper.from_array(scale, sname),
                                            numpy_helper.from_array(np.zeros(scale.shape, np.int8), zname)])
            new_nodes.append(helper.make_node("DequantizeLinear", [qname, sname, zname], [out], name=out, axis=axis))
            done[name] = out
        node.input[1] = done[name]
    if not done:
        raise QuantLensError("quantize_failed", "No Conv, MatMul or Gemm weight large enough to store as int8.")
    still_read = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
    for name in done:
        if name not in still_read:
            model.graph.initializer.remove(inits[name])
    nodes = new_nodes + list(model.graph.node)
    model.graph.ClearField("node")
    model.graph.node.extend(nodes)
    size = save_model_fixed(model, dst)
    notes = (f"Weight-only INT8: {len(done)} weight tensor(s) stored as int8 with one scale per output channel, "
             "computed in float.",)
    settings = {"method_used": "weights", "per_channel": True, "quantized_layers": len(done)}
    return QuantizedModel("int8", Path(dst), size, time.perf_counter() - started, settings, notes)
