"""Specification: memory limits are stated and checked up front, and failures name their cause."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from core.compare.common.memory import GIB, check_fits, estimated_peak_bytes, largest_parameters, upload_parameters
from core.errors import QuantLensError


def test_a_memory_limit_states_the_largest_model_it_accepts():
    # measured (core/compare/common/memory.py): a 109.5M BERT-base-shaped folder compares at FP32/FP16/INT8/INT4 under
    # 3 GiB, its largest step peaking at 2985 MiB of address space; the demo (22.7M) at 1524 MiB
    assert largest_parameters(3 * GIB) >= 109_482_240 and largest_parameters(2 * GIB) < 66_000_000
    assert 2985 * 2**20 <= estimated_peak_bytes(109_482_240) <= 3 * GIB
    assert estimated_peak_bytes(22_713_216) >= 1524 * 2**20
    assert largest_parameters(6 * GIB) > largest_parameters(3 * GIB) > largest_parameters(2 * GIB)
    assert estimated_peak_bytes(largest_parameters(3 * GIB)) <= 3 * GIB


def test_a_model_over_the_limit_is_refused_up_front_naming_the_limit_and_how_to_raise_it():
    with pytest.raises(QuantLensError) as caught:
        check_fits(500_000_000, 3 * GIB, "Model qwen.zip")
    message = caught.value.message
    assert caught.value.code == "model_too_large_for_memory"
    assert "3.0 GiB" in message and "--memory-gib" in message and "QUANTLENS_JOB_MEMORY_GB" in message
    assert "500M parameters" in message and "\n" not in message
    check_fits(22_700_000, 3 * GIB)  # the demo's MiniLM: accepted


def test_the_upload_size_is_read_from_config_json_without_loading_weights(tmp_path):
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "not-a-known-one", "torch_dtype": "bfloat16"}))
    (folder / "model.safetensors").write_bytes(b"\0" * 2_000_000)
    assert upload_parameters(folder) == 1_000_000  # unknown architecture: bytes / 2 for bfloat16
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"\0" * 4000)
    assert upload_parameters(onnx_file) == 1000 and upload_parameters("demo") == 0


def _scalar_rate_model(path):
    """y = Reshape(x[1, 16], [16001 - sr, -1]): runs only with the real sample rate, like silero-vad's `sr`."""
    nodes = [helper.make_node("Sub", ["rate", "sr"], ["rows"]),
             helper.make_node("Unsqueeze", ["rows", "axes"], ["rows1"]),
             helper.make_node("Concat", ["rows1", "minus_one"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["y"])]
    inits = [numpy_helper.from_array(np.array(16001, np.int64), "rate"),
             numpy_helper.from_array(np.array([0], np.int64), "axes"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus_one")]
    graph = helper.make_graph(nodes, "rate", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16]),
                                              helper.make_tensor_value_info("sr", TensorProto.INT64, [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return path


def test_a_made_up_scalar_input_that_breaks_fp32_is_named_with_the_npz_that_fixes_it(tmp_path):
    from core.compare.pipeline import CompareOptions, compare_model

    source = _scalar_rate_model(tmp_path / "vad.onnx")
    with pytest.raises(QuantLensError) as caught:
        compare_model(source, CompareOptions(runs=1, warmup=1), tmp_path / "out")
    message = caught.value.message
    assert caught.value.code == "model_failed_runtime" and "\n" not in message
    assert "scalar input(s) sr" in message and "np.savez" in message
    assert not (tmp_path / "out" / "model_int8.onnx").exists()  # stopped before any quantizing


def test_the_same_model_compares_once_given_the_real_sample_rate(tmp_path):
    from core.compare.pipeline import CompareOptions, compare_model

    source = _scalar_rate_model(tmp_path / "vad.onnx")
    np.savez(tmp_path / "inputs.npz", x=np.ones((1, 16), np.float32), sr=np.array(16000, np.int64))
    report = compare_model(source, CompareOptions(reference="fp32", runs=2, warmup=1), tmp_path / "out",
                           inputs={"npz": tmp_path / "inputs.npz"})
    assert report.result("fp32").status == "ok"


def test_an_npz_carries_many_samples_for_a_model_with_a_scalar_and_a_state_input(tmp_path):
    """silero-vad's shape: audio [1, 16], a state [2, 1, 4] whose batch axis is not the first, a scalar `sr`."""
    from core.compare.inputs.user_data import InputSpec, feeds_from_npz

    specs = [InputSpec("x", "float32", (1, 16)), InputSpec("state", "float32", (2, "batch", 4)),
             InputSpec("sr", "int64", ())]
    np.savez(tmp_path / "in.npz", x=np.arange(5 * 16, dtype=np.float32).reshape(5, 1, 16),
             state=np.zeros((5, 2, 1, 4), np.float32), sr=np.array(16000))
    feeds = feeds_from_npz(tmp_path / "in.npz", specs)
    assert len(feeds) == 5
    assert feeds[3]["x"].shape == (1, 16) and feeds[3]["x"][0, 0] == 48
    assert feeds[3]["state"].shape == (2, 1, 4) and feeds[3]["sr"].shape == () and int(feeds[3]["sr"]) == 16000


def test_samples_axes_of_different_lengths_are_refused_naming_both(tmp_path):
    from core.compare.inputs.user_data import InputSpec, feeds_from_npz

    specs = [InputSpec("x", "float32", (1, 16)), InputSpec("state", "float32", (2, 1, 4))]
    np.savez(tmp_path / "in.npz", x=np.zeros((5, 1, 16), np.float32), state=np.zeros((3, 2, 1, 4), np.float32))
    with pytest.raises(QuantLensError) as caught:
        feeds_from_npz(tmp_path / "in.npz", specs)
    assert caught.value.code == "bad_inputs" and "x has 5" in caught.value.message and "state has 3" in caught.value.message
