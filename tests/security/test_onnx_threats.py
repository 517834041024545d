"""Threats 1, 2, 5, 9 and 22: hostile ONNX files are refused by the pure-Python scan before onnx/ORT load them."""

from __future__ import annotations

import subprocess
import sys

import pytest
from onnx import TensorProto, helper

from core.errors import QuantLensError
from core.gate.ingest import ONNX_NAME
from core.gate.onnx_scan import scan_onnx_bytes
from tests.security.fixtures import external_tensor, mark_external, model_bytes, onnx_model

TRAVERSALS = ["../outside/canary.bin", "sub/../../outside/canary.bin", "/etc/passwd", "canary.bin"]


@pytest.mark.parametrize("location", TRAVERSALS)
def test_onnx_initializer_with_external_data_is_refused_before_any_load(sandbox, location):
    error = sandbox.rejects(model_bytes(onnx_model(initializer_external=location)), "external_data_forbidden")
    assert "'W'" in error.message


def _const_node_external():
    return helper.make_node("Constant", [], ["W"], value=external_tensor("const_w"))


def _const_node_sparse_external():
    values = external_tensor("sparse_values")
    indices = helper.make_tensor("idx", TensorProto.INT64, [2], [0, 1])
    sparse = helper.make_sparse_tensor(values, indices, [2])
    return helper.make_node("Constant", [], ["W"], sparse_value=sparse)


def _if_subgraph_external():
    inner = helper.make_graph([helper.make_node("Identity", ["T"], ["out"])], "then", [],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2])],
                              initializer=[external_tensor("T")])
    other = helper.make_graph([helper.make_node("Identity", ["X"], ["out2"])], "else", [],
                              [helper.make_tensor_value_info("out2", TensorProto.FLOAT, [2])])
    return helper.make_node("If", ["cond"], ["W"], then_branch=inner, else_branch=other)


def _loop_in_if_external():
    """Two levels deep: a Loop body inside an If branch holds the external tensor."""
    body = helper.make_graph([helper.make_node("Identity", ["c"], ["c_out"])], "body", [], [],
                             initializer=[external_tensor("deep")])
    loop = helper.make_node("Loop", ["", "cond"], [], body=body)
    branch = helper.make_graph([loop], "then", [], [])
    return helper.make_node("If", ["cond"], ["W"], then_branch=branch, else_branch=branch)


def _placements():
    """The five places a naive `graph.initializer` scan misses (threat 2)."""
    yield "constant_value", onnx_model(nodes=[_const_node_external(), helper.make_node("Add", ["X", "W"], ["Y"])],
                                       initializers=[])
    yield "constant_sparse_value", onnx_model(
        nodes=[_const_node_sparse_external(), helper.make_node("Add", ["X", "W"], ["Y"])], initializers=[])
    values = external_tensor("sparse_init")
    sparse = helper.make_sparse_tensor(values, helper.make_tensor("i", TensorProto.INT64, [2], [0, 1]), [2])
    yield "sparse_initializer", onnx_model(sparse_initializers=[sparse])
    yield "if_subgraph", onnx_model(nodes=[_if_subgraph_external(), helper.make_node("Add", ["X", "W"], ["Y"])])
    yield "loop_inside_if", onnx_model(nodes=[_loop_in_if_external(), helper.make_node("Add", ["X", "W"], ["Y"])])
    func_node = helper.make_node("Constant", [], ["k"], value=external_tensor("in_function"))
    function = helper.make_function("local.fn", "Fn", ["a"], ["b"], [func_node,
                                    helper.make_node("Add", ["a", "k"], ["b"])], [helper.make_opsetid("", 17)])
    yield "model_local_function", onnx_model(nodes=[helper.make_node("Fn", ["X"], ["Y"], domain="local.fn")],
                                             functions=[function], opset_domains=(("local.fn", 1),))
    attr_tensors = helper.make_node("Add", ["X", "W"], ["Y"])
    attr_tensors.attribute.append(helper.make_attribute("hidden", [external_tensor("in_tensors_list")]))
    yield "attribute_tensors_list", onnx_model(nodes=[attr_tensors])


PLACEMENTS = list(_placements())


@pytest.mark.parametrize(("where", "model"), PLACEMENTS, ids=[p[0] for p in PLACEMENTS])
def test_external_data_hidden_anywhere_in_the_model_is_found(sandbox, where, model):
    sandbox.rejects(model_bytes(model), "external_data_forbidden")


def _naive_scan(data: bytes) -> None:
    """What a validator that only looks at graph.initializer would do."""
    import onnx

    model = onnx.ModelProto.FromString(data)
    for tensor in model.graph.initializer:
        if tensor.data_location == TensorProto.EXTERNAL:
            raise QuantLensError("external_data_forbidden", "naive")


def test_the_placement_fixtures_defeat_a_naive_initializer_only_scan():
    """Mutation check: if the scan were naive, the parametrised test above would fail for these placements."""
    missed = []
    for where, model in PLACEMENTS:
        try:
            _naive_scan(model_bytes(model))
            missed.append(where)
        except QuantLensError:
            pass
    assert set(missed) >= {"constant_value", "constant_sparse_value", "sparse_initializer", "if_subgraph",
                           "model_local_function"}


@pytest.mark.parametrize("extra", [{"__class__": "x"}, {"length": str(10**15)}, {"offset": "-1"}])
def test_external_data_info_abuse_is_refused_without_allocating(sandbox, extra):
    """Threat 5 (CVE-2026-34445): odd keys/bounds never reach ExternalDataInfo; the tensor is refused outright."""
    weight = helper.make_tensor("W", TensorProto.FLOAT, [2], [1.0, 2.0])
    mark_external(weight, "w.bin", **extra)
    sandbox.rejects(model_bytes(onnx_model(initializers=[weight])), "external_data_forbidden")


def test_external_data_entry_without_location_flag_is_still_refused():
    weight = helper.make_tensor("W", TensorProto.FLOAT, [2], [1.0, 2.0])
    entry = weight.external_data.add()
    entry.key, entry.value = "location", "../x"
    with pytest.raises(QuantLensError) as caught:
        scan_onnx_bytes(model_bytes(onnx_model(initializers=[weight])))
    assert caught.value.code == "external_data_forbidden"


def test_the_scan_imports_no_onnx_or_runtime_library(tmp_path):
    """The gate must decide before any ML library is loaded (threats 1, 9)."""
    path = tmp_path / "m.onnx"
    path.write_bytes(model_bytes(onnx_model(initializer_external="../x")))
    code = (
        "import sys; from pathlib import Path; from core.gate.ingest import validate_model_path\n"
        "from core.errors import QuantLensError\n"
        f"try:\n    validate_model_path(Path({str(path)!r}))\nexcept QuantLensError as e:\n    print(e.code)\n"
        "heavy = [m for m in ('onnx', 'onnxruntime', 'torch', 'transformers', 'numpy', 'safetensors') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["external_data_forbidden", "[]"]


@pytest.mark.parametrize(("domain", "op"), [("evil.custom", "Backdoor"), ("com.microsoft", "EPContext"),
                                            ("", "EPContext")])
def test_custom_operators_and_epcontext_are_refused_and_named(sandbox, domain, op):
    node = helper.make_node(op, ["X"], ["Y"], domain=domain)
    if op == "EPContext":
        node.attribute.append(helper.make_attribute("ep_cache_context", "../x"))
    model = onnx_model(nodes=[node], opset_domains=((domain, 1),) if domain else ())
    error = sandbox.rejects(model_bytes(model), "unsupported_operator")
    assert op in error.message


def test_custom_operator_hidden_in_a_subgraph_is_refused(sandbox):
    evil = helper.make_node("Backdoor", ["X"], ["out"], domain="evil.custom")
    branch = helper.make_graph([evil], "then", [], [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2])])
    node = helper.make_node("If", ["cond"], ["Y"], then_branch=branch, else_branch=branch)
    error = sandbox.rejects(model_bytes(onnx_model(nodes=[node])), "unsupported_operator")
    assert "evil.custom::Backdoor" in error.message


def test_custom_op_library_is_never_registered_for_a_refused_model(sandbox, monkeypatch):
    """Threat 9: the spy would record a call if anything tried to load a custom-op library."""
    import onnxruntime as ort

    calls = []
    monkeypatch.setattr(ort.SessionOptions, "register_custom_ops_library", lambda *a: calls.append(a), raising=False)
    node = helper.make_node("Backdoor", ["X"], ["Y"], domain="evil.custom")
    sandbox.rejects(model_bytes(onnx_model(nodes=[node], opset_domains=(("evil.custom", 1),))), "unsupported_operator")
    assert calls == []


def test_microsoft_contrib_ops_and_local_functions_are_accepted(sandbox):
    """ORT's own quantizer emits com.microsoft ops (MatMulNBits...); exporters emit local functions."""
    fn = helper.make_function("pkg.local", "Double", ["a"], ["b"], [helper.make_node("Add", ["a", "a"], ["b"])],
                              [helper.make_opsetid("", 17)])
    nodes = [helper.make_node("Gelu", ["X"], ["G"], domain="com.microsoft"),
             helper.make_node("Double", ["G"], ["Y"], domain="pkg.local")]
    model = onnx_model(nodes=nodes, functions=[fn], opset_domains=(("com.microsoft", 1), ("pkg.local", 1)))
    upload = sandbox.validate(model_bytes(model))
    assert upload.kind == "onnx"


def test_recursive_model_local_function_is_refused(sandbox):
    """Threat 6 (recursive functions crash shape inference): refused before ORT sees it."""
    fa = helper.make_function("loop.fn", "A", ["x"], ["y"], [helper.make_node("B", ["x"], ["y"], domain="loop.fn")],
                              [helper.make_opsetid("", 17), helper.make_opsetid("loop.fn", 1)])
    fb = helper.make_function("loop.fn", "B", ["x"], ["y"], [helper.make_node("A", ["x"], ["y"], domain="loop.fn")],
                              [helper.make_opsetid("", 17), helper.make_opsetid("loop.fn", 1)])
    model = onnx_model(nodes=[helper.make_node("A", ["X"], ["Y"], domain="loop.fn")], functions=[fa, fb],
                       opset_domains=(("loop.fn", 1),))
    error = sandbox.rejects(model_bytes(model), "invalid_onnx")
    assert "calls itself" in error.message


def test_deeply_nested_subgraphs_are_refused_without_recursion_error(sandbox):
    leaf = helper.make_graph([helper.make_node("Identity", ["X"], ["Y"])], "leaf", [], [])
    graph = leaf
    for level in range(25):  # 75 nested messages: over our 64, under protobuf's own 100
        node = helper.make_node("If", ["c"], [f"o{level}"], then_branch=graph, else_branch=leaf)
        graph = helper.make_graph([node], f"g{level}", [], [])
    model = onnx_model(nodes=[helper.make_node("If", ["c"], ["Y"], then_branch=graph, else_branch=leaf)])
    sandbox.rejects(model_bytes(model), "invalid_onnx")


@pytest.mark.parametrize("data", [b"\x08", b"\x0a\xff\xff\xff\xff\x0f", b"\x0b\x00", b"garbage!" * 10])
def test_truncated_or_garbage_protobuf_is_invalid_onnx(sandbox, data):
    sandbox.rejects(data, "invalid_onnx")


def test_a_valid_onnx_upload_gets_a_fixed_name_inside_the_job_dir(sandbox):
    """Threat 22: the client's file name (`../../x.onnx`, `a.onnx:stream`) is never used for a path."""
    data = model_bytes(onnx_model())
    upload = sandbox.validate(data)
    assert upload.path == sandbox.job_dir / ONNX_NAME
    assert upload.path.read_bytes() == data
    assert upload.path.resolve().is_relative_to(sandbox.job_dir.resolve())
    assert upload.files == (ONNX_NAME,) and upload.total_bytes == len(data) and len(upload.sha256) == 64
    sandbox.assert_outside_untouched()
