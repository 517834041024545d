"""Specification: labels say what the files hold. "INT4" only where 4-bit weights exist, already-quantized uploads
are recognised and counted by their real parameters, a failed precision leaves no file, and TF weights or random
bytes are named for what they are. Models are built locally (random weights: plumbing, not accuracy)."""

from __future__ import annotations

import os
from pathlib import Path

import onnx
import pytest

from bench._shared.onnx_models import build_gemm_relu_onnx
from core.compare.measure.stored_size import count_onnx_parameters
from core.compare.prepare.bit_census import already_quantized, census
from core.compare.report import variant_label
from core.errors import QuantLensError


def test_an_int4_file_whose_layers_are_all_8_bit_is_not_called_int4():
    all_eight = {"eight_bit_layers": ["fc1"], "bits": {"layers_4bit": 0, "bytes_4bit": 0, "layers_8bit": 1}}
    mixed = {"eight_bit_layers": ["fc1"], "bits": {"layers_4bit": 3, "bytes_4bit": 900, "layers_8bit": 1}}
    assert variant_label("int4", all_eight) == "INT8 weight-only (no layer at 4 bits)"
    assert variant_label("int4", mixed) == "INT4 weight-only (mixed 4/8-bit)"


def test_int4_says_how_many_layers_and_bytes_sit_at_4_8_and_float_bits(tmp_path):
    from core.compare.common.settings import Int4Config
    from core.compare.techniques.int4 import quantize_int4

    model = build_gemm_relu_onnx(tmp_path / "m.onnx", in_features=256, hidden=256, out_features=256)
    only_eight = quantize_int4(model, tmp_path / "eight.onnx", Int4Config(block_size=32, eight_bit_fraction=1.0))
    bits = only_eight.settings["bits"]
    assert bits["layers_4bit"] == 0 and bits["layers_8bit"] == 2
    assert not any("the rest at 4 bits" in n for n in only_eight.notes)
    assert any("No layer is stored at 4 bits" in n for n in only_eight.notes)
    assert variant_label("int4", only_eight.settings).startswith("INT8")
    four = quantize_int4(model, tmp_path / "four.onnx", Int4Config(block_size=32, eight_bit_fraction=0.0))
    assert four.settings["bits"]["layers_4bit"] == 2 and four.settings["bits"]["bytes_4bit"] > 0
    assert any(n.startswith("Stored weights: 2 layer(s) at 4 bits") for n in four.notes)


def test_an_already_int8_upload_is_recognised_and_counted_by_its_real_parameters(tmp_path):
    from onnxruntime.quantization import quantize_dynamic

    fp32 = build_gemm_relu_onnx(tmp_path / "m.onnx", in_features=128, hidden=128, out_features=64)
    int8 = tmp_path / "int8.onnx"
    quantize_dynamic(str(fp32), str(int8))
    assert already_quantized(onnx.load(str(fp32))) is None
    notice = already_quantized(onnx.load(str(int8)))
    assert notice and "already INT8" in notice and "nothing to gain" in notice
    real = count_onnx_parameters(fp32)
    assert abs(count_onnx_parameters(int8) - real) / real < 0.05  # the int8 weights count, not only float biases
    assert census(onnx.load(str(int8))).layers_8bit >= 1


def test_a_failed_precision_leaves_no_partial_file(tmp_path):
    from core.compare.common.settings import FILE_NAMES
    from core.compare.pipeline import _remove_partial

    partial = tmp_path / FILE_NAMES["fp16"]
    partial.write_bytes(b"\x08\x07half a model")
    _remove_partial(tmp_path, "fp16")
    assert not partial.exists()


def _refusal(tmp_path: Path, name: str, data: bytes) -> QuantLensError:
    from core.gate.ingest import validate_upload

    src = tmp_path / name
    src.write_bytes(data)
    (tmp_path / "dest").mkdir(exist_ok=True)
    with pytest.raises(QuantLensError) as caught:
        validate_upload(src, tmp_path / "dest")
    return caught.value


def test_tensorflow_hdf5_weights_are_named_as_such_with_the_command_that_converts_them(tmp_path):
    import io
    import zipfile

    error = _refusal(tmp_path, "tf_model.h5", b"\x89HDF\r\n\x1a\n" + os.urandom(2000))
    assert "TensorFlow/Keras weights (HDF5)" in error.message and "from_tf=True" in error.message
    assert "pickle" not in error.message
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("tf_model.h5", b"\x89HDF\r\n\x1a\n")
    error = _refusal(tmp_path, "folder.zip", buffer.getvalue())
    assert "tf_model.h5 is TensorFlow/Keras weights" in error.message and "tf2onnx.convert" in error.message


def test_random_bytes_are_not_a_model_we_can_read_not_a_pickle(tmp_path):
    error = _refusal(tmp_path, "blob.onnx", b"\xff" + os.urandom(4000))
    assert error.code == "invalid_onnx" and "not a model we can read" in error.message
    assert "pickle" not in error.message
