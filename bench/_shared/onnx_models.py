"""Small ONNX models built locally (no downloads) with onnx.helper: random weights prove plumbing, not quality.

Shared by bench/ (which must not import from tests/) and the tests that build the same model.
"""

from __future__ import annotations

from pathlib import Path


def build_gemm_relu_onnx(path: Path, in_features: int = 64, hidden: int = 64, out_features: int = 16, seed: int = 0) -> Path:
    """x[batch, in] -> Gemm(transB=1) -> Relu -> Gemm -> y[batch, out]; batch is a symbolic dim."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1 = numpy_helper.from_array(rng.standard_normal((hidden, in_features)).astype(np.float32) * 0.1, "w1")
    b1 = numpy_helper.from_array(rng.standard_normal(hidden).astype(np.float32) * 0.1, "b1")
    w2 = numpy_helper.from_array(rng.standard_normal((hidden, out_features)).astype(np.float32) * 0.1, "w2")
    b2 = numpy_helper.from_array(rng.standard_normal(out_features).astype(np.float32) * 0.1, "b2")
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], name="fc2", alpha=0.5, beta=2.0),
    ]
    graph = helper.make_graph(
        nodes, "gemm_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", in_features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", out_features])],
        initializer=[w1, b1, w2, b2],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save_model(model, str(path))
    return path
