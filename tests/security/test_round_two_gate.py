"""Red-team round two against the upload gate (threats 26-30 in docs/threats.md): what got through, now refused.

Each test names what an attacker tried and what the user (or the server operator) now sees instead.
"""

from __future__ import annotations

import json
import resource
import shutil

import pytest

from core.errors import QuantLensError
from core.gate.confined import GateBudget, validate_upload_confined
from core.gate.ingest import UploadLimits, spool_upload
from tests.security.fixtures import TINY_CONFIG, hf_folder_files, hf_zip, onnx_model, zip_bytes


def _clear(sandbox) -> None:
    """Empty the job dir between two uploads in one test (each upload is spooled to the same fixed name)."""
    for entry in sandbox.job_dir.iterdir():
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def _tokenizer_of_empty_lists(count: int) -> bytes:
    """A tokenizer.json that is a dict (so the gate's type check passes) holding `count` empty lists."""
    return b'{"added_tokens": [], "model": {"merges": [' + b"[]," * (count - 1) + b"[]]}}"


# ------------------------------------------------------------------------------------------ the gate as a bomb
def test_a_tokenizer_of_millions_of_empty_lists_is_refused_unread(sandbox):
    error = sandbox.rejects(hf_zip(**{"tokenizer.json": _tokenizer_of_empty_lists(2_500_000)}), "invalid_tokenizer")
    assert "JSON lists and objects" in error.message


def test_json_files_together_are_bounded_not_only_each_one(sandbox):
    big = json.dumps({"added_tokens": [], "pad": "x" * (3 * 2**20)}).encode()
    limits = UploadLimits(max_json_total_bytes=5 * 2**20)
    error = sandbox.rejects(hf_zip(**{"tokenizer.json": big, "tokenizer_config.json": big}), "invalid_tokenizer",
                            limits=limits)
    assert "add up to" in error.message


def test_a_config_nested_a_million_deep_says_so_instead_of_not_utf8(sandbox):
    deep = b"[" * 1_000_000 + b"]" * 1_000_000  # 2 MB: under the size cap
    error = sandbox.rejects(hf_zip(**{"config.json": deep}), "invalid_config")
    assert "JSON lists and objects" in error.message or "nests" in error.message
    assert "UTF-8" not in error.message


def test_a_config_nested_deeper_than_python_reads_is_named_as_too_deep(sandbox):
    deep = b"[" * 5_000 + b"]" * 5_000
    error = sandbox.rejects(hf_zip(**{"config.json": deep}), "invalid_config")
    assert "nests JSON lists or objects too deeply" in error.message


def test_checking_an_upload_in_the_confined_gate_costs_the_server_no_memory(tmp_path):
    """1.9 M lists pass the count cap but need ~150 MB to parse: the child hits its budget, the server does not."""
    job = tmp_path / "job"
    job.mkdir()
    upload = spool_upload(hf_zip(**{"tokenizer.json": _tokenizer_of_empty_lists(1_900_000)}), job)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(QuantLensError) as caught:
        validate_upload_confined(upload, job, budget=GateBudget(memory_bytes=96 * 2**20))
    assert caught.value.code == "upload_too_complex", caught.value.one_line()
    assert "memory" in caught.value.message
    assert sorted(p.name for p in job.iterdir()) == ["upload.bin"]  # the child's staging folder is gone
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 64 * 1024


def test_the_confined_gate_gives_the_same_answer_as_the_gate(tmp_path):
    job = tmp_path / "job"
    job.mkdir()
    validated = validate_upload_confined(spool_upload(hf_zip(), job), job)
    assert validated.kind == "hf_folder" and validated.path == (job / "model").resolve()
    assert "config.json" in validated.files and len(validated.sha256) == 64
    with pytest.raises(QuantLensError) as caught:
        validate_upload_confined(spool_upload(hf_zip(**{"modeling_x.py": b"import os"}), tmp_path), tmp_path)
    assert caught.value.code == "remote_code_forbidden"


def test_a_text_file_renamed_onnx_is_refused_by_the_confined_gate(tmp_path):
    upload = spool_upload(b"hello, I am not a model\n" * 10, tmp_path)
    with pytest.raises(QuantLensError) as caught:
        validate_upload_confined(upload, tmp_path)
    assert caught.value.code == "invalid_onnx"


# ------------------------------------------------------------------------------------------ names and configs
def test_a_module_folder_name_with_a_trailing_newline_is_refused(sandbox):
    files = hf_folder_files()
    entries = [(name, data) for name, data in files.items()] + [("1_Pooling\n/config.json", b"{}")]
    sandbox.rejects(zip_bytes(entries), "archive_path_forbidden")


@pytest.mark.parametrize("key, value", [("type_vocab_size", 100_000_000), ("max_position_embeddings", 2**30),
                                        ("intermediate_size", 10**8)])
def test_size_keys_the_first_round_missed_are_bounded(sandbox, key, value):
    config = {**TINY_CONFIG, key: value}
    sandbox.rejects(hf_zip(**{"config.json": json.dumps(config).encode()}), "config_out_of_bounds")


@pytest.mark.parametrize("key, value", [("type_vocab_size", 1_000_000), ("max_position_embeddings", 10_000_000),
                                        ("intermediate_size", 1_000_000)])
def test_size_keys_within_bounds_must_still_match_the_weights(sandbox, key, value):
    config = {**TINY_CONFIG, key: value}
    error = sandbox.rejects(hf_zip(**{"config.json": json.dumps(config).encode()}), "config_out_of_bounds")
    assert "does not match the weights" in error.message


def test_a_config_already_quantized_with_bitsandbytes_is_refused_in_one_sentence(sandbox):
    config = {**TINY_CONFIG, "quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": True}}
    error = sandbox.rejects(hf_zip(**{"config.json": json.dumps(config).encode()}), "already_quantized")
    assert "bitsandbytes" in error.message


def test_the_gate_and_the_calculator_read_one_table_of_bounds():
    from core.config_bounds import BOUNDS, KEY_BOUNDS
    from core.gate import ingest
    from core.sizing import architecture

    assert ingest.CONFIG_BOUNDS is KEY_BOUNDS
    assert architecture._BOUNDS is BOUNDS
    assert KEY_BOUNDS["hidden_size"] == BOUNDS["hidden_size"]


# ------------------------------------------------------------------------------------------ ONNX
@pytest.mark.parametrize("domain, op", [("com.microsoft", "PythonOp"), ("com.microsoft", "ATen"),
                                        ("", "ATen"), ("com.microsoft", "PythonOpGrad")])
def test_python_and_aten_nodes_are_refused_by_name(sandbox, domain, op):
    from onnx import helper

    node = helper.make_node(op, ["X"], ["Y"], domain=domain)
    model = onnx_model(nodes=[node], initializers=[], opset_domains=(("com.microsoft", 1),) if domain else ())
    error = sandbox.rejects(model.SerializeToString(), "unsupported_operator")
    assert op in error.message


def test_an_initializer_whose_dims_lie_about_its_bytes_is_refused(sandbox):
    from onnx import TensorProto

    weight = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[1000, 1000], raw_data=b"\x00" * 8)
    error = sandbox.rejects(onnx_model(initializers=[weight]).SerializeToString(), "invalid_onnx")
    assert "1,000,000 elements but holds 8 bytes" in error.message


def test_a_declared_input_of_two_to_the_forty_squared_is_refused(sandbox):
    from onnx import TensorProto, helper

    model = onnx_model()
    model.graph.input[0].CopyFrom(helper.make_tensor_value_info("X", TensorProto.FLOAT, [2**40, 2**40]))
    sandbox.rejects(model.SerializeToString(), "invalid_onnx")
    _clear(sandbox)
    model.graph.input[0].CopyFrom(helper.make_tensor_value_info("X", TensorProto.FLOAT, [2**20, 2**20]))
    error = sandbox.rejects(model.SerializeToString(), "input_too_large")
    assert "'X'" in error.message


def test_a_minus_one_input_dimension_is_read_as_dynamic_not_refused(sandbox):
    """Paddle2ONNX writes -1 for a free dimension (PaddleOCR's published classifier: x [-1, 3, 48, 192])."""
    from onnx import TensorProto, helper

    model = onnx_model()
    model.graph.input[0].CopyFrom(helper.make_tensor_value_info("X", TensorProto.FLOAT, [-1, 3, 48, 192]))
    validated = sandbox.validate(model.SerializeToString())
    assert validated.kind == "onnx"


def test_twenty_nested_ifs_are_refused_before_the_converter_sees_them(sandbox):
    from onnx import TensorProto, helper

    def leaf():
        return helper.make_graph([helper.make_node("Identity", ["X"], ["Y"])], "leaf", [],
                                 [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2])])

    def branch(level: int):  # the red team's 2.6 KB shape: each then-branch holds the next If
        if level == 0:
            return leaf()
        node = helper.make_node("If", ["C"], ["Y"], then_branch=branch(level - 1), else_branch=leaf())
        return helper.make_graph([node], f"g{level}", [], [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2])])

    top = helper.make_node("If", ["C"], ["Y"], then_branch=branch(1), else_branch=leaf())
    shallow = onnx_model(nodes=[top], initializers=[])
    shallow.graph.input.append(helper.make_tensor_value_info("C", TensorProto.BOOL, []))
    sandbox.validate(shallow.SerializeToString())  # two levels: a real model's worth
    _clear(sandbox)

    deep_branch = branch(20)
    deep = onnx_model(nodes=[helper.make_node("If", ["C"], ["Y"], then_branch=deep_branch, else_branch=deep_branch)],
                      initializers=[])
    error = sandbox.rejects(deep.SerializeToString(), "invalid_onnx")
    assert "nested more than" in error.message
