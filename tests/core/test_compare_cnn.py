"""Convolutional models as people publish them: weights behind Constant nodes, old opsets, symbolic image sizes.

The CNN here is built with onnx.helper the way Paddle's exporter writes PaddleOCR (every weight a Constant node,
opset 11, input ['?', 3, '?', '?']) with random weights: it proves the plumbing (pre-processing, the INT8 method
choice, the verdict), not quality on real images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from core.compare.common.onnx_io import make_session
from core.compare.common.settings import CompareOptions
from core.compare.inputs.image_arrays import probed_generated_feeds
from core.compare.inputs.user_data import InputSpec
from core.compare.judge.verdict import NO_SMALLER, RECOMMENDED, SMALLER_BUT_SLOWER, USE_FP32, apply_verdicts
from core.compare.pipeline import compare_model
from core.compare.prepare.preprocess import preprocess_for_quantization
from core.compare.report import VariantResult
from core.compare.techniques.int8_auto import Candidate, pick, weight_profile
from core.compare.techniques.int8_weights import quantize_int8_weights


def build_paddle_style_cnn(path: Path, seed: int = 0, opset: int = 11) -> Path:
    """x[?,3,?,?] -> Conv3x3/s2 -> BN -> Relu -> depthwise Conv -> Conv1x1 -> GlobalAveragePool -> Flatten -> Gemm.

    Every weight is the output of a Constant node (as in Paddle's exports), not an initializer.
    """
    rng = np.random.default_rng(seed)
    consts = {
        "w1": rng.standard_normal((32, 3, 3, 3)) * 0.3, "b1": rng.standard_normal(32) * 0.1,
        "scale": rng.uniform(0.5, 1.5, 32), "bias": rng.standard_normal(32) * 0.1,
        "mean": rng.standard_normal(32) * 0.1, "var": rng.uniform(0.5, 1.5, 32),
        "wd": rng.standard_normal((32, 1, 3, 3)) * 0.3, "w2": rng.standard_normal((64, 32, 1, 1)) * 0.2,
        "wf": rng.standard_normal((10, 64)) * 0.2, "bf": rng.standard_normal(10) * 0.1,
    }
    nodes = [helper.make_node("Constant", [], [k], name=f"const_{k}",
                              value=numpy_helper.from_array(v.astype(np.float32), f"{k}_value"))
             for k, v in consts.items()]
    nodes += [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "scale", "bias", "mean", "var"], ["bn"], name="bn"),
        helper.make_node("Relu", ["bn"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "wd"], ["dw"], name="dwconv", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                         group=32),
        helper.make_node("Relu", ["dw"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["r2", "w2"], ["c2"], name="conv2", kernel_shape=[1, 1]),
        helper.make_node("Relu", ["c2"], ["r3"], name="relu3"),
        helper.make_node("GlobalAveragePool", ["r3"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "wf", "bf"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(nodes, "paddle_style_cnn",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["?", 3, "?", "?"])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["?", 10])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    onnx.save_model(model, str(path))
    return path


@pytest.fixture
def paddle_style_cnn(tmp_path) -> Path:
    return build_paddle_style_cnn(tmp_path / "cnn.onnx")


def _images(n: int = 2, size: int = 32) -> np.ndarray:
    return np.random.default_rng(1).uniform(-1, 1, (n, 3, size, size)).astype(np.float32)


def test_preprocessing_turns_constant_weights_into_initializers_at_opset_13_with_the_same_outputs(paddle_style_cnn,
                                                                                                  tmp_path):
    x = _images()
    before = make_session(paddle_style_cnn, 1).run(None, {"x": x})[0]
    result = preprocess_for_quantization(paddle_style_cnn)
    model = onnx.load(str(paddle_style_cnn))
    assert result.applied and (result.opset_before, result.opset_after) == (11, 13)
    assert "Constant" not in {n.op_type for n in model.graph.node}
    assert "BatchNormalization" not in {n.op_type for n in model.graph.node}  # fused into the Conv
    conv_weights = [n.input[1] for n in model.graph.node if n.op_type == "Conv"]
    assert set(conv_weights) <= {t.name for t in model.graph.initializer}
    np.testing.assert_allclose(make_session(paddle_style_cnn, 1).run(None, {"x": x})[0], before, rtol=1e-4, atol=1e-4)
    assert any("quant_pre_process" in note for note in result.notes)


def _magika_model() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("magika")
    assert spec is not None, "magika is pinned in requirements-dev.txt"
    return Path(spec.submodule_search_locations[0]) / "models" / "standard_v3_3" / "model.onnx"


def test_preprocessing_leaves_no_file_behind_in_the_working_directory(tmp_path, monkeypatch):
    # On magika's model ORT's symbolic shape inference gives up and saves its temp model into the current directory.
    model = tmp_path / "model.onnx"
    model.write_bytes(_magika_model().read_bytes())
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    assert preprocess_for_quantization(model).applied
    assert list(cwd.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "model.onnx"]


def test_preprocessing_a_model_it_cannot_handle_keeps_it_and_says_so(tmp_path):
    # A node of an unknown custom domain: ORT can neither infer nor load it, so the step is skipped with a note.
    graph = helper.make_graph([helper.make_node("Mystery", ["x"], ["y"], domain="com.example")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    path = tmp_path / "custom.onnx"
    onnx.save_model(model, str(path))
    result = preprocess_for_quantization(path)
    assert not result.applied
    assert any("skipped" in note for note in result.notes)
    assert [n.op_type for n in onnx.load(str(path)).graph.node] == ["Mystery"]


def test_image_inputs_with_symbolic_height_and_width_get_a_size_the_model_runs(paddle_style_cnn):
    preprocess_for_quantization(paddle_style_cnn)
    feeds = probed_generated_feeds(paddle_style_cnn, [InputSpec("x", "float32", ("?", 3, "?", "?"))], count=2)
    assert feeds[0]["x"].shape == (1, 3, 224, 224)
    assert feeds[0]["x"].min() >= -1.0 and feeds[0]["x"].max() <= 1.0
    assert not np.array_equal(feeds[0]["x"], feeds[1]["x"])


def test_weight_only_int8_stores_conv_weights_4x_smaller_and_keeps_outputs(paddle_style_cnn, tmp_path):
    preprocess_for_quantization(paddle_style_cnn)
    result = quantize_int8_weights(paddle_style_cnn, tmp_path / "w8.onnx")
    int8_inits = [t for t in onnx.load(str(result.path)).graph.initializer if t.data_type == TensorProto.INT8]
    assert sum(int(np.prod(t.dims)) for t in int8_inits) >= 32 * 27 + 64 * 32 + 640
    x = _images()
    ref = make_session(paddle_style_cnn, 1).run(None, {"x": x})[0]
    out = make_session(result.path, 1).run(None, {"x": x})[0]
    cosine = float((ref * out).sum() / np.linalg.norm(ref) / np.linalg.norm(out))
    assert cosine > 0.999


def test_a_transformer_style_model_keeps_dynamic_int8_and_a_cnn_is_recognised(paddle_style_cnn, tiny_onnx_gemm):
    preprocess_for_quantization(paddle_style_cnn)
    cnn = weight_profile(onnx.load(str(paddle_style_cnn)))
    assert cnn.has_conv and cnn.depthwise_conv == 32 * 9 and cnn.matmul == 640
    assert not weight_profile(onnx.load(str(tiny_onnx_gemm))).has_conv


def test_the_int8_method_kept_is_the_fastest_that_is_smaller_and_accurate_else_the_best_compromise():
    fast_bad = Candidate("static", 1.4, 0.90, 3.5)
    slow_good = Candidate("weights", 0.95, 0.999, 3.8)
    not_smaller = Candidate("dynamic-matmul", 1.0, 1.0, 1.01)
    assert pick([fast_bad, slow_good, not_smaller]).name == "weights"
    assert pick([Candidate("a", 1.2, 0.99, 3.0), Candidate("b", 1.5, 0.985, 3.0)]).name == "b"
    # none passes every floor: an "INT8" no smaller than FP32 is never kept over one that is smaller
    assert pick([Candidate("slow", 0.5, 0.999, 3.0), Candidate("same", 1.0, 1.0, 1.0)]).name == "slow"
    # fast enough but wrong loses to slower but trustworthy outputs (PaddleOCR's classifier: 0.85x/0.84 vs 0.6x/0.99)
    assert pick([Candidate("wrong", 0.85, 0.84, 1.6), Candidate("right", 0.6, 0.994, 1.7)]).name == "right"
    assert pick([Candidate("wrong", 0.3, 0.5, 2.0), Candidate("wronger", 0.9, 0.4, 2.0)]).name == "wronger"


def _result(precision: str, size_ratio: float, speedup: float, cosine: float) -> VariantResult:
    return VariantResult(precision=precision, label=precision.upper(), file_name="f.onnx", size_bytes=1,
                         size_ratio_vs_fp32=size_ratio, predicted_size_bytes=None, load_ms=1.0, peak_memory_bytes=1,
                         memory_method="x", latency_ms_p50=1.0, latency_ms_p95=1.0, speedup_vs_fp32=speedup,
                         quantize_seconds=0.0, is_reference=False, quality={"cosine_similarity_mean": cosine})


def test_a_variant_slower_and_worse_than_fp32_is_flagged_and_fp32_recommended():
    results = [_result("fp32", 1.0, 1.0, 1.0), _result("int8", 3.9, 0.25, 0.47), _result("int4", 1.0, 1.0, 1.0),
               _result("fp16", 2.0, 0.7, 0.9999), _result("int8-static", 3.9, 1.3, 0.999)]
    warnings = apply_verdicts(results)
    verdicts = {r.precision: r.verdict for r in results}
    assert verdicts == {"fp32": "baseline", "int8": USE_FP32, "int4": NO_SMALLER, "fp16": SMALLER_BUT_SLOWER,
                        "int8-static": RECOMMENDED}
    assert "keep FP32" in results[1].verdict_note and "0.25x" in results[1].verdict_note
    assert warnings == ["INT8 is slower and less accurate than FP32 on this model: FP32 is recommended."]


@pytest.mark.slow
def test_a_published_style_cnn_quantizes_to_int8_with_a_measured_method_and_verdicts(paddle_style_cnn, tmp_path):
    options = CompareOptions(precisions=("fp32", "int8", "int4"), reference="fp32", runs=3, warmup=1)
    report = compare_model(paddle_style_cnn, options, tmp_path / "out")
    int8 = report.result("int8")
    assert int8.settings["method"] == "auto"
    # every recipe was either measured or reported as skipped (time budget, or one clearly best)
    tried = {c["name"] for c in int8.settings["candidates"]} | set(int8.settings["skipped"])
    assert tried >= {"static QDQ", "static QDQ, every op, head in float", "weight-only int8, float compute"}
    assert int8.settings["chosen"] in {c["name"] for c in int8.settings["candidates"]}
    assert int8.label != "INT8 dynamic"
    assert any("chosen by measuring" in n for n in int8.notes)
    assert all(r.verdict for r in report.results)
    assert report.model["inputs"][0]["shape"] == [1, 3, 224, 224]
    assert any("quant_pre_process" in n for n in report.model["preprocessing"])


@pytest.mark.slow
def test_magikas_published_model_quantizes_to_int8_without_error_and_says_what_it_kept(tmp_path):
    """magika's real file-type model (int32 byte inputs, Conv + Dense, an ai.onnx.ml opset entry), as shipped."""
    model = _magika_model()
    options = CompareOptions(precisions=("fp32", "int8", "int4"), reference="fp32", runs=3, warmup=1)
    report = compare_model(model, options, tmp_path / "out")
    int8 = report.result("int8")
    assert int8.size_ratio_vs_fp32 >= 2  # its weights are in a Conv and Dense layers: int8 storage must show
    # Which recipe wins depends on measured speed (a busy machine changes it), so the test holds the rule, not a
    # recipe: the choice is pick()'s over what was measured, and every candidate keeps the outputs close.
    from core.compare.techniques.int8_auto import Candidate, pick

    measured = [Candidate(**c) for c in int8.settings["candidates"]]
    assert pick(measured).name == int8.settings["chosen"]
    assert int8.quality["cosine_similarity_mean"] >= 0.9
    built = {c["name"] for c in int8.settings["candidates"]}
    assert "static QDQ" in built  # ORT's int32-bias adjustment fails on this graph; the retry without it works
    assert not any("Not built: static QDQ:" in n for n in int8.notes)
    assert int8.verdict in {"recommended", "smaller_but_slower"}
    assert all(r.verdict for r in report.results)
    assert abs(int8.predicted_size_bytes / int8.size_bytes - 1) < 0.25  # the format model knows int8 Conv weights


def test_int8_on_a_cnn_measures_every_candidate_it_builds_with_the_probe_the_comparison_hands_it(paddle_style_cnn,
                                                                                                 tmp_path):
    # Building (techniques/) never imports judging (judge/): the search gets its probe from the caller.
    from core.compare.inputs.feeds import array_feeds
    from core.compare.judge.candidates import CandidateProbe
    from core.compare.techniques.int8_auto import quantize_int8

    preprocess_for_quantization(paddle_style_cnn)
    x = _images(4)
    feeds = array_feeds([{"x": x[i:i + 1]} for i in range(len(x))], "npz")
    probed: list[str] = []

    def recording_probe(*args):
        probe = CandidateProbe(*args)
        measure_one = probe.measure

        def measure(name, q):
            probed.append(name)
            return measure_one(name, q)

        probe.measure = measure
        return probe

    searched = quantize_int8(paddle_style_cnn, tmp_path / "searched.onnx", CompareOptions(), feeds, recording_probe)
    assert probed and probed == [c["name"] for c in searched.settings["candidates"]]
    assert searched.settings["chosen"] in probed

    unprobed = quantize_int8(paddle_style_cnn, tmp_path / "unprobed.onnx", CompareOptions(), feeds)
    assert "candidates" not in unprobed.settings and unprobed.path.is_file(), "no probe: static QDQ, no search"
