"""Scan an ONNX file's protobuf bytes in pure Python for what must never reach onnx/onnxruntime.

Why not `onnx.load`: loading is exactly the step that follows external-data paths (CVE-2022-25882,
CVE-2024-27318) and runs C++ parsers on untrusted bytes. This reader walks the wire format itself and only
looks at the fields that matter, skipping tensor payloads without copying them:

- external data anywhere: TensorProto.data_location == EXTERNAL or any external_data entry, in graph
  initializers, sparse initializers, Constant/attribute tensors (t, tensors, sparse_tensor, sparse_tensors),
  subgraphs of If/Loop/Scan (g, graphs) at any depth, model-local functions and training-info graphs;
- operators: every (domain, op_type) used by any node. Allowed: the standard domains "" / "ai.onnx" /
  "ai.onnx.ml", ONNX Runtime's built-in "com.microsoft" contrib ops (the quantizer we run emits them, e.g.
  MatMulNBits, and they live in the same onnxruntime binary, so accepting them loads no extra code), and
  calls to model-local functions. Everything else needs a custom-op library and is refused as
  `unsupported_operator`, as is `EPContext` (its `ep_cache_context` names a file or blob a provider loads);
- recursive model-local functions (a known crash class in shape inference) are refused as `invalid_onnx`.

Schema reference: onnx/onnx.proto3 (field numbers below). Unknown fields are skipped, as protobuf does.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import QuantLensError

ALLOWED_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "com.microsoft"})
# EPContext names a file or blob a provider loads; PythonOp/PythonOpGrad call back into Python code and ATen into
# torch, neither of which an inference session on this server has (round two, threat 26 in docs/threats.md).
FORBIDDEN_OPS = frozenset({(domain, op) for domain in ("", "ai.onnx", "com.microsoft")
                           for op in ("EPContext", "PythonOp", "PythonOpGrad", "ATen")})
MAX_DEPTH = 64  # nested messages; real models nest graphs a handful of levels
MAX_FIELDS = 5_000_000  # wire fields visited (~2.5 s of CPU at worst); real models need far fewer
MAX_NODES = 2_000_000
MAX_GRAPH_NESTING = 4  # subgraphs inside subgraphs (If in Loop in If...); converters walk them exponentially
MAX_DIM = 2**31  # one declared dimension of a graph input or an initializer
MAX_TENSOR_ELEMENTS = 2**32  # elements of one initializer
MAX_INPUT_ELEMENTS = 2**28  # elements of one declared graph input (1 GiB of float32 generated for it)
# TensorProto.DataType -> bits per element, for checking raw_data against the declared dims
_ELEMENT_BITS = {1: 32, 2: 8, 3: 8, 4: 16, 5: 16, 6: 32, 7: 64, 9: 8, 10: 16, 11: 64, 12: 32, 13: 64, 14: 64,
                 15: 128, 16: 16, 17: 8, 18: 8, 19: 8, 20: 8, 21: 4, 22: 4, 23: 4}

# (message, field number) -> embedded message type; only the paths that can lead to a tensor, graph or node.
_CHILDREN: dict[tuple[str, int], str] = {
    ("model", 7): "graph",
    ("model", 25): "function",
    ("model", 20): "training",
    ("training", 1): "graph",
    ("training", 2): "graph",
    ("graph", 1): "node",
    ("graph", 5): "tensor",
    ("graph", 15): "sparse",
    ("node", 5): "attribute",
    ("function", 7): "node",
    ("function", 11): "attribute",
    ("attribute", 5): "tensor",
    ("attribute", 6): "graph",
    ("attribute", 10): "tensor",
    ("attribute", 11): "graph",
    ("attribute", 22): "sparse",
    ("attribute", 23): "sparse",
    ("sparse", 1): "tensor",
    ("sparse", 2): "tensor",
}
# (message, field number) -> string fields we read.
_STRINGS = {("node", 4): "op_type", ("node", 7): "domain", ("node", 3): "name", ("function", 1): "name",
            ("function", 10): "domain", ("tensor", 8): "name", ("attribute", 1): "name"}


@dataclass(frozen=True)
class OnnxSummary:
    """What the scan found in a model that passed: the operators it uses (for display and later checks)."""

    ops: frozenset[tuple[str, str]]
    functions: frozenset[tuple[str, str]]
    nodes: int


@dataclass
class _Scan:
    fields: int = 0
    nodes: int = 0
    ops: set[tuple[str, str]] = field(default_factory=set)
    # function (domain, name) -> ops its body calls
    function_calls: dict[tuple[str, str], set[tuple[str, str]]] = field(default_factory=dict)
    has_graph: bool = False


def _invalid(why: str) -> QuantLensError:
    return QuantLensError("invalid_onnx", f"The file is not a valid ONNX model: {why}.")


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _invalid("a number field is truncated")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(buf: memoryview, start: int, end: int, scan: _Scan) -> Iterator[tuple[int, int, int, int]]:
    """Yield (field number, wire type, value or payload start, payload end) for one message's bytes."""
    pos = start
    while pos < end:
        scan.fields += 1
        if scan.fields > MAX_FIELDS:
            raise _invalid("the model has too many protobuf fields to check")
        tag, pos = _varint(buf, pos, end)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise _invalid("a field number is zero")
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield number, wire, value, pos
        elif wire == 1:
            pos += 8
            if pos > end:
                raise _invalid("a fixed-size field is truncated")
            yield number, wire, 0, pos
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            if length > end - pos:
                raise _invalid("a field is longer than its message")
            yield number, wire, pos, pos + length
            pos += length
        elif wire == 5:
            pos += 4
            if pos > end:
                raise _invalid("a fixed-size field is truncated")
            yield number, wire, 0, pos
        else:
            raise _invalid(f"unsupported protobuf wire type {wire}")


def _text(buf: memoryview, start: int, end: int) -> str:
    try:
        return bytes(buf[start:end]).decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid("a name is not UTF-8") from None


def _walk(buf: memoryview, kind: str, start: int, end: int, where: str, depth: int, scan: _Scan,
          calls: set[tuple[str, str]] | None, graphs: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise _invalid("graphs are nested too deeply")
    if kind == "graph":
        graphs += 1
        if graphs > MAX_GRAPH_NESTING + 1:
            raise _invalid(f"subgraphs are nested more than {MAX_GRAPH_NESTING} deep ({where})")
    strings: dict[str, str] = {}
    children: list[tuple[str, int, int]] = []
    external = False
    dims: list[int] = []
    data_type, raw_bytes = 0, -1
    for number, wire, a, b in _fields(buf, start, end, scan):
        key = (kind, number)
        if wire == 2 and key in _CHILDREN:
            children.append((_CHILDREN[key], a, b))
        elif wire == 2 and key in _STRINGS:
            strings[_STRINGS[key]] = _text(buf, a, b)
        elif kind == "tensor" and ((number == 13 and wire == 2) or (number == 14 and wire == 0 and a != 0)):
            external = True  # external_data entry, or data_location != DEFAULT
        elif kind == "tensor" and number == 1:
            dims.extend([a] if wire == 0 else _packed_varints(buf, a, b))
        elif kind == "tensor" and number == 2 and wire == 0:
            data_type = a
        elif kind == "tensor" and number == 9 and wire == 2:
            raw_bytes = b - a
        elif kind == "graph" and number == 11 and wire == 2:
            _check_declared_input(buf, a, b, where, scan)
        elif kind == "model" and number == 7:
            raise _invalid("the graph field has the wrong type")

    label = strings.get("name") or strings.get("op_type") or ""
    here = f"{where}/{kind}" + (f"[{label}]" if label else "")
    if external:
        raise QuantLensError(
            "external_data_forbidden",
            f"The model stores tensor {label or '(unnamed)'!r} in an external file ({here}); upload a single .onnx "
            "file with all weights inside it.",
        )
    if kind == "tensor":
        _check_tensor_size(label, dims, data_type, raw_bytes)
    if kind == "graph":
        scan.has_graph = True
    if kind == "node":
        scan.nodes += 1
        if scan.nodes > MAX_NODES:
            raise _invalid("the model has too many nodes")
        op = (strings.get("domain", ""), strings.get("op_type", ""))
        if not op[1]:
            raise _invalid(f"a node has no operator type ({here})")
        scan.ops.add(op)
        if calls is not None:
            calls.add(op)
    function_calls = calls
    if kind == "function":
        name = (strings.get("domain", ""), strings.get("name", ""))
        function_calls = scan.function_calls.setdefault(name, set())
    for child_kind, a, b in children:
        _walk(buf, child_kind, a, b, here, depth + 1, scan, function_calls, graphs)


def _packed_varints(buf: memoryview, start: int, end: int) -> list[int]:
    values, pos = [], start
    while pos < end:
        value, pos = _varint(buf, pos, end)
        values.append(value)
    return values


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _check_tensor_size(label: str, dims: list[int], data_type: int, raw_bytes: int) -> None:
    """Declared dims must be sane and, where the data is raw bytes, match them: a lying shape makes the runtime
    allocate what the header says or read past what the file holds."""
    elements = 1
    for dim in map(_signed, dims):
        if dim < 0 or dim > MAX_DIM:
            raise _invalid(f"tensor {label or '(unnamed)'!r} declares a dimension of {dim}")
        elements *= dim
    if elements > MAX_TENSOR_ELEMENTS:
        raise _invalid(f"tensor {label or '(unnamed)'!r} declares {elements:,} elements")
    bits = _ELEMENT_BITS.get(data_type)
    if raw_bytes >= 0 and bits is not None and raw_bytes != (elements * bits + 7) // 8:
        raise _invalid(f"tensor {label or '(unnamed)'!r} declares {elements:,} elements but holds {raw_bytes:,} bytes")


# ValueInfoProto.type (2) -> TypeProto.tensor_type (1) -> TypeProto.Tensor.shape (2) -> TensorShapeProto.dim (1)
_INPUT_PATH = (2, 1, 2)


def _check_declared_input(buf: memoryview, start: int, end: int, where: str, scan: _Scan) -> None:
    """A graph input's declared fixed dims: QuantLens generates inputs of that shape, so they must be sane."""
    spans = [(start, end)]
    for field_number in _INPUT_PATH:
        spans = [(a, b) for s, e in spans for n, w, a, b in _fields(buf, s, e, scan) if n == field_number and w == 2]
    name = ""
    for number, wire, a, b in _fields(buf, start, end, scan):
        if number == 1 and wire == 2:
            name = _text(buf, a, b)[:80]
    elements = 1
    for s, e in spans:
        for number, wire, a, b in _fields(buf, s, e, scan):
            if number != 1 or wire != 2:
                continue
            for n, w, value, _ in _fields(buf, a, b, scan):
                if n == 1 and w == 0:  # dim_value (dim_param, a name, leaves the size to us)
                    dim = _signed(value)
                    if dim < 0:  # exporters such as Paddle2ONNX write -1 for a dynamic size: a free dim
                        continue
                    if dim > MAX_DIM:
                        raise _invalid(f"input {name!r} declares a dimension of {dim}")
                    elements *= max(dim, 1)
    if elements > MAX_INPUT_ELEMENTS:
        raise QuantLensError("input_too_large", f"The model's input {name!r} declares {elements:,} elements, more than "
                                                f"the {MAX_INPUT_ELEMENTS:,} QuantLens generates for one input.")


def _find_recursion(calls: dict[tuple[str, str], set[tuple[str, str]]]) -> tuple[str, str] | None:
    """A model-local function that (indirectly) calls itself; depth-first search with colours."""
    colour: dict[tuple[str, str], int] = {}
    for root in calls:
        if colour.get(root):
            continue
        stack: list[tuple[tuple[str, str], Iterator[tuple[str, str]]]] = [(root, iter(calls[root]))]
        colour[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                colour[node] = 2
                stack.pop()
            elif nxt in calls:
                if colour.get(nxt) == 1:
                    return nxt
                if not colour.get(nxt):
                    colour[nxt] = 1
                    stack.append((nxt, iter(calls[nxt])))
    return None


def scan_onnx_bytes(data: bytes | memoryview | mmap.mmap) -> OnnxSummary:
    """Check serialized ModelProto bytes; raise QuantLensError on anything that must not be loaded."""
    scan = _Scan()
    with memoryview(data) as buf:  # released on exit so a mapped file can always be closed
        _walk(buf, "model", 0, len(buf), "model", 0, scan, None)
    if not scan.has_graph:
        raise _invalid("it has no graph")
    functions = frozenset(scan.function_calls)
    forbidden = sorted(
        op for op in scan.ops
        if op in FORBIDDEN_OPS or (op not in functions and op[0] not in ALLOWED_DOMAINS)
    )
    if forbidden:
        names = ", ".join(f"{domain or 'ai.onnx'}::{op_type}" for domain, op_type in forbidden[:10])
        raise QuantLensError(
            "unsupported_operator",
            f"The model uses operators QuantLens does not run ({names}); only standard ONNX and ONNX Runtime "
            "built-in operators are allowed.",
        )
    recursive = _find_recursion(scan.function_calls)
    if recursive is not None:
        raise _invalid(f"model-local function {recursive[0]}::{recursive[1]} calls itself")
    return OnnxSummary(ops=frozenset(scan.ops), functions=functions, nodes=scan.nodes)


def scan_onnx_file(path: Path) -> OnnxSummary:
    """Map the file read-only (no copy into memory) and scan it."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            raise _invalid("the file is empty")
        with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as mapped:
            return scan_onnx_bytes(mapped)
    finally:
        os.close(fd)
