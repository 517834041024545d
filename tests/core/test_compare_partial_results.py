"""Specification: every precision that can be made is shown, and each one that cannot says why.

Models are built here with onnx.helper (random weights: they prove plumbing, not quality): a scikit-learn
style logistic regression (ai.onnx.ml LinearClassifier, the kind skl2onnx writes), a small CNN and a graph whose
weights sit in a Constant node.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from core.compare.common.settings import Int8DynamicConfig
from core.compare.pipeline import CompareOptions, compare_model, to_json_dict
from core.compare.report import ComparisonReport

FAST = {"runs": 5, "warmup": 1}


def build_logistic_regression(path: Path) -> Path:
    """X[batch, 4] -> LinearClassifier (3 classes, softmax): only ai.onnx.ml, as a pure scikit-learn export has."""
    rng = np.random.default_rng(0)
    node = helper.make_node("LinearClassifier", ["X"], ["label", "probabilities"], domain="ai.onnx.ml",
                            coefficients=rng.standard_normal(12).tolist(), intercepts=[0.1, -0.2, 0.3],
                            classlabels_ints=[0, 1, 2], multi_class=1, post_transform="SOFTMAX")
    graph = helper.make_graph([node], "logreg", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 4])],
                              [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
                               helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("ai.onnx.ml", 3)], ir_version=9)
    onnx.checker.check_model(model)
    onnx.save_model(model, str(path))
    return path


def build_small_cnn(path: Path, weights_in_constant: bool = False) -> Path:
    """x[1, 3, 16, 16] -> Conv(16) -> Relu -> Conv(16) -> GlobalAveragePool: no MatMul, so nothing for INT4."""
    rng = np.random.default_rng(1)
    w1 = rng.standard_normal((16, 3, 3, 3)).astype(np.float32) * 0.2
    w2 = rng.standard_normal((16, 16, 3, 3)).astype(np.float32) * 0.1
    nodes = [helper.make_node("Conv", ["x", "w1"], ["h"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Conv", ["r", "w2"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["c"], ["y"])]
    initializers = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")]
    if weights_in_constant:  # how Paddle2ONNX and some exporters store weights
        nodes.insert(0, helper.make_node("Constant", [], ["w2"], value=numpy_helper.from_array(w2, "w2_value")))
        initializers = initializers[:1]
    graph = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 1, 1])],
                              initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save_model(model, str(path))
    return path


@pytest.fixture(scope="module")
def logreg_report(tmp_path_factory) -> ComparisonReport:
    out = tmp_path_factory.mktemp("logreg")
    source = build_logistic_regression(out / "logreg.onnx")
    return compare_model(source, CompareOptions(reference="fp32", **FAST), out / "out")


def test_a_scikit_learn_model_shows_fp32_and_says_why_int8_cannot_be_made(logreg_report):
    """After pre-processing (opset upgrade, ORT's quant_pre_process) ORT's quantizer may write a file or refuse;
    either way FP32 is shown and INT8 says, in one sentence, that the ai.onnx.ml weights cannot be converted."""
    shown = {r.precision: r for r in logreg_report.results}
    assert "fp32" in shown
    if "int8" in shown:
        int8 = shown["int8"]
        assert int8.status == "unchanged" and "ai.onnx.ml" in int8.notes[0] and "keep FP32" in int8.notes[0]
    else:
        failure = logreg_report.failure("int8")
        assert failure["code"] == "unsupported_operators" and failure["stage"] == "quantize"
        assert "ai.onnx.ml" in failure["message"] and "\n" not in failure["message"]
        assert any("INT8 dynamic is not shown" in w for w in logreg_report.warnings)


def test_precisions_that_converted_no_weight_are_reported_unchanged_not_faster_or_smaller(logreg_report):
    assert logreg_report.result("fp16").status == "unchanged"
    assert logreg_report.result("int4").status == "unchanged"
    assert logreg_report.result("fp32").status == "ok"
    assert logreg_report.result("int4").notes[0].startswith("Unchanged:")


def test_the_partial_report_is_plain_json_and_reads_back(logreg_report):
    data = to_json_dict(logreg_report)
    again = ComparisonReport.from_dict(data)
    assert again.failed == logreg_report.failed and again.result("int4").status == "unchanged"


def test_a_report_written_before_these_fields_still_reads_back(logreg_report):
    data = to_json_dict(logreg_report)
    data.pop("failed"), data.pop("latency_noise_floor")
    for r in data["results"]:
        r.pop("status"), r.pop("speedup_paired")
    old = ComparisonReport.from_dict(data)
    assert old.failed == [] and old.results[0].status == "ok"


def test_speed_ups_are_paired_per_round_with_spread_and_a_noise_floor(logreg_report):
    floor = logreg_report.latency_noise_floor
    assert floor is not None and floor >= 0.02
    for r in logreg_report.results:
        paired = r.speedup_paired
        assert paired["rounds"] == 5 and paired["p10"] <= paired["median"] <= paired["p90"]
        # an unchanged file is FP32's computation: its measured ratio is noise, never a speed-up
        assert r.speedup_vs_fp32 == (1.0 if r.status == "unchanged" else paired["median"])
        assert paired["within_noise"] == (abs(paired["median"] - 1) <= floor)


def test_the_report_says_how_long_each_step_took(logreg_report):
    timings = logreg_report.timings
    for step in ("prepare", "inputs", "check_fp32", "quantize_fp16", "quantize_int8", "quantize_int4",
                 "run_fp32", "run_int4", "timing", "quality"):
        assert timings[f"{step}_seconds"] >= 0, step
    if logreg_report.failed:  # a precision that failed was never run, so it has no run time
        assert all(f"run_{f['precision']}_seconds" not in timings for f in logreg_report.failed)
    steps = sum(v for k, v in timings.items() if k not in ("total_seconds", "export_seconds"))
    assert steps <= timings["total_seconds"]


def test_a_cnn_without_matmul_gets_int8_but_int4_is_unchanged(tmp_path):
    source = build_small_cnn(tmp_path / "cnn.onnx")
    report = compare_model(source, CompareOptions(reference="fp32", **FAST), tmp_path / "out")
    assert report.result("int8").status == "ok" and report.result("fp16").status == "ok"
    assert report.result("int4").status == "unchanged"


def test_weights_in_constant_nodes_are_counted_as_parameters(tmp_path):
    from core.compare.measure.stored_size import count_onnx_parameters

    plain = build_small_cnn(tmp_path / "plain.onnx")
    constant = build_small_cnn(tmp_path / "constant.onnx", weights_in_constant=True)
    assert count_onnx_parameters(constant) == count_onnx_parameters(plain) == 16 * 3 * 9 + 16 * 16 * 9


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_predicted_sizes_hold_for_a_cnn(tmp_path, precision):
    """Conv weights are quantized by dynamic INT8 and Constant-held weights are converted to FP16: both predicted."""
    from core.compare.measure.stored_size import predicted_stored_bytes
    from core.compare.techniques import quantize

    for constant in (False, True):
        source = build_small_cnn(tmp_path / f"cnn_{constant}.onnx", weights_in_constant=constant)
        out = tmp_path / f"out_{constant}"
        out.mkdir()
        # dynamic INT8 named explicitly: the automatic choice for CNNs (techniques/int8_auto) calibrates on feeds
        options = CompareOptions(reference="fp32", int8=Int8DynamicConfig(method="dynamic"))
        built = quantize(precision, source, out, options, feeds=None)
        predicted = predicted_stored_bytes(source, precision, built.settings)
        assert abs(predicted - built.size_bytes) / built.size_bytes < 0.25, (constant, predicted, built.size_bytes)
