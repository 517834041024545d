"""Each quantization technique on a tiny Gemm model, and the save rules every technique follows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from core.compare.common.onnx_io import check_no_external_data, load_model_checked, make_session, save_model_fixed
from core.compare.common.settings import Int4Config
from core.compare.techniques.fp16 import quantize_fp16
from core.compare.techniques.graph import rewrite_gemm_to_matmul
from core.compare.techniques.int4 import quantize_int4
from core.compare.techniques.int8_dynamic import quantize_int8_dynamic
from core.errors import QuantLensError


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    return make_session(path, 1).run(None, {"x": x})[0]


def test_gemm_rewrite_to_matmul_gives_the_same_outputs(tiny_onnx_gemm, tmp_path):
    model = load_model_checked(tiny_onnx_gemm)
    assert rewrite_gemm_to_matmul(model) == 2
    ops = [n.op_type for n in model.graph.node]
    assert "Gemm" not in ops and ops.count("MatMul") == 2 and ops.count("Add") == 2
    rewritten = tmp_path / "rewritten.onnx"
    save_model_fixed(model, rewritten)
    x = np.random.default_rng(0).standard_normal((3, 64)).astype(np.float32)
    np.testing.assert_allclose(_run(rewritten, x), _run(tiny_onnx_gemm, x), rtol=1e-5, atol=1e-5)


def test_int4_quantizes_gemm_layers_after_rewrite(tiny_onnx_gemm, tmp_path):
    result = quantize_int4(tiny_onnx_gemm, tmp_path / "int4.onnx", Int4Config(block_size=16))
    ops = [n.op_type for n in onnx.load(str(result.path)).graph.node]
    assert ops.count("MatMulNBits") == 2 and "Gemm" not in ops
    x = np.random.default_rng(0).standard_normal((2, 64)).astype(np.float32)
    ref, out = _run(tiny_onnx_gemm, x), _run(result.path, x)
    assert np.abs(out - ref).max() < 0.1 * np.abs(ref).max()


def test_fp16_keeps_float32_inputs_and_outputs(tiny_onnx_gemm, tmp_path):
    result = quantize_fp16(tiny_onnx_gemm, tmp_path / "fp16.onnx")
    model = onnx.load(str(result.path))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    assert _run(result.path, np.ones((1, 64), np.float32)).dtype == np.float32


def test_int8_dynamic_is_per_channel_by_default_and_writes_one_file(tiny_onnx_gemm, tmp_path):
    result = quantize_int8_dynamic(tiny_onnx_gemm, tmp_path / "int8.onnx")
    assert result.settings["per_channel"] is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["int8.onnx"]
    assert result.size_bytes == (tmp_path / "int8.onnx").stat().st_size


@pytest.mark.parametrize("settings, message", [
    ({"block_size": 24}, "power of two"),
    ({"algorithm": "gptq"}, "rtn, hqq"),
    ({"accuracy_level": 7}, "0, 1, 2, 3, 4"),
    ({"eight_bit_fraction": 1.5}, "from 0 to 1"),
    ({"block_size": True}, "an integer"),
])
def test_bad_int4_settings_are_refused_when_written_before_any_work(settings, message):
    """The settings validate themselves, so a bad value never reaches the worker after FP16 and INT8 have run."""
    with pytest.raises(QuantLensError) as err:
        Int4Config(**settings)
    assert err.value.code == "bad_option" and message in err.value.message
    assert "int4." in err.value.message


def test_a_model_pointing_at_external_data_is_refused_and_never_resaved_there(tiny_onnx_gemm, tmp_path):
    """Threat 4: a re-save must never write to a location that came from the model."""
    model = onnx.load(str(tiny_onnx_gemm))
    tensor = model.graph.initializer[0]
    tensor.data_location = onnx.TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../../victim.bin"
    with pytest.raises(QuantLensError) as err:
        check_no_external_data(model)
    assert err.value.code == "external_data_forbidden"
    with pytest.raises(QuantLensError):
        save_model_fixed(model, tmp_path / "out" / "model.onnx")
    assert not (tmp_path.parent / "victim.bin").exists() and not (tmp_path / "out" / "model.onnx").exists()


def test_embedding_table_at_4_bits_looks_up_rows_within_half_a_step_using_plain_onnx_ops(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    from core.compare.techniques.int4 import quantize_gather_tables_int4

    rng = np.random.default_rng(0)
    table = rng.standard_normal((300, 96)).astype(np.float32)  # 96 = 3 blocks of 32 once 64 does not divide it
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["rows"], name="embed", axis=0)], "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("rows", TensorProto.FLOAT, ["batch", "seq", 96])],
        [numpy_helper.from_array(table, "table")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert quantize_gather_tables_int4(model, {"embed"}, block_size=64) == 1
    assert {n.op_type for n in model.graph.node} <= {"Gather", "Cast", "Mod", "Div", "Unsqueeze", "Concat", "Reshape",
                                                      "Sub", "Mul", "Shape"}
    path = tmp_path / "embed4.onnx"
    size = save_model_fixed(model, path)
    assert size < table.nbytes / 5  # 4-bit values plus a scale and zero point per 32 values
    ids = np.array([[0, 5, 299, 5], [1, 2, 3, 4]], np.int64)
    got = make_session(path, 1).run(None, {"ids": ids})[0]
    want = table[ids]
    step = (np.maximum(want.reshape(2, 4, 3, 32).max(-1), 0) - np.minimum(want.reshape(2, 4, 3, 32).min(-1), 0)) / 15
    assert got.shape == (2, 4, 96)
    assert np.all(np.abs(got - want).reshape(2, 4, 3, 32) <= step[..., None] / 2 + 1e-6)
