"""Loading and saving ONNX files: external data is refused, and files only ever go where we say.

Files are always written to the fixed path the caller gives, with every tensor inside the file (threat 4 in
docs/threats.md: a re-save never uses a location that came from the model).
"""

from __future__ import annotations

import logging
from pathlib import Path

from core.errors import QuantLensError

MAX_SINGLE_FILE_BYTES = 1_900_000_000  # protobuf's 2 GiB limit, with room for the graph itself


def iter_tensors(model):
    """Every TensorProto in the model: initializers, sparse tensors, attribute tensors, subgraphs, functions."""
    import onnx

    def from_graph(graph):
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield sparse.values
            yield sparse.indices
        for node in graph.node:
            yield from from_node(node)

    def from_node(node):
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                yield attr.t
            elif attr.type == onnx.AttributeProto.TENSORS:
                yield from attr.tensors
            elif attr.type == onnx.AttributeProto.SPARSE_TENSOR:
                yield attr.sparse_tensor.values
                yield attr.sparse_tensor.indices
            elif attr.type == onnx.AttributeProto.SPARSE_TENSORS:
                for sparse in attr.sparse_tensors:
                    yield sparse.values
                    yield sparse.indices
            elif attr.type == onnx.AttributeProto.GRAPH:
                yield from from_graph(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from from_graph(sub)

    yield from from_graph(model.graph)
    for function in model.functions:
        for node in function.node:
            yield from from_node(node)


def check_no_external_data(model) -> None:
    import onnx

    for tensor in iter_tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
            raise QuantLensError("external_data_forbidden",
                                 "The model refers to tensor data in other files; QuantLens accepts single-file models only.")


def load_model_checked(path: Path):
    """onnx.load without following any external-data reference, then refuse the model if it has one."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    check_no_external_data(model)
    return model


def tensor_data_bytes(model) -> int:
    """Bytes of tensor data in the model, counted without serialising it.

    Why not `model.ByteSize()`: protobuf refuses to size a message over 2 GB, which is exactly the case the
    external-data branch of save_model_fixed exists for.
    """
    total = 0
    for tensor in iter_tensors(model):
        total += len(tensor.raw_data) + 4 * (len(tensor.float_data) + len(tensor.int32_data)) \
            + 8 * (len(tensor.int64_data) + len(tensor.double_data) + len(tensor.uint64_data)) \
            + sum(len(v) for v in tensor.string_data)
    return total


def save_model_fixed(model, path: Path, limit_bytes: int = MAX_SINGLE_FILE_BYTES) -> int:
    """Write `model` to exactly `path`: one file, or for a >1.9 GB model `path` + `<name>.data` beside it.

    Returns the bytes written. Any external-data location the model carried is dropped first.
    """
    import onnx

    check_no_external_data(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if tensor_data_bytes(model) < limit_bytes:
        onnx.save_model(model, str(path), save_as_external_data=False)
        return path.stat().st_size
    data_name = path.name + ".data"
    (path.parent / data_name).unlink(missing_ok=True)
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=data_name, size_threshold=1024)
    return path.stat().st_size + (path.parent / data_name).stat().st_size


def model_file_bytes(path: Path) -> int:
    """Size on disk of a model written by save_model_fixed (the .onnx plus its fixed-name data file, if any)."""
    path = Path(path)
    data = path.parent / (path.name + ".data")
    return path.stat().st_size + (data.stat().st_size if data.exists() else 0)


def resave_fixed(path: Path) -> int:
    """Reload what an ORT tool wrote and save it again through save_model_fixed (one file, fixed name)."""
    model = load_model_checked(path)
    return save_model_fixed(model, path)


def quiet_ort_logging() -> None:
    """ORT's quantization modules call logging.basicConfig(level=INFO) on import; keep our output readable."""
    logging.getLogger().setLevel(logging.WARNING)
    for name in ("onnxruntime", "onnxruntime.quantization", "onnxruntime.transformers"):
        logging.getLogger(name).setLevel(logging.WARNING)


def short_error(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:200] + "...") if len(text) > 200 else (text or exc.__class__.__name__)


def make_session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # No CPU arena: it keeps the largest activation buffers it grew to until the session ends, and under the
    # job's address-space limit (RLIMIT_AS) that reservation counts in full while every variant is loaded.
    options.enable_cpu_mem_arena = False
    # No spin-waiting: variants are timed turn by turn with every session loaded, and an idle session's
    # spinning pool threads would steal the cores from the one being timed (on 2 cores, measured: p50 40 ms
    # with spinning vs 15 ms without for MiniLM INT4, and the same file timed 14% apart from itself).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
