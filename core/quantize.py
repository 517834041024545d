"""ONNX FP32 model -> FP16 / INT8 / INT4 variants, one function per technique, each with its settings as data.

Every technique is ONNX Runtime's own (so what QuantLens measures is what a user gets by running the same
ORT tools), with the choices that keep accuracy where the plain defaults lose it:

- FP16: `OnnxModel.convert_float_to_float16(keep_io_types=True)` (onnxconverter-common's output fails to
  load in onnxruntime 1.32).
- INT8 dynamic: per-channel weights by default: MiniLM keeps cosine 0.992 vs 0.965 per-tensor, same speed.
- INT8 static (QDQ, calibrated on the user's inputs): plain MinMax on every op gives cosine 0.71-0.81 on
  MiniLM. We quantize only MatMuls with constant weights (per-channel), and keep in float the MatMuls whose
  input activations have outliers (max |x| more than `outlier_ratio` times the 99th percentile, measured on
  the calibration inputs): those are BERT's well-known outlier channels after GELU, which an 8-bit static
  scale cannot cover. Dynamic quantization does not have the problem (its scale follows each input), which
  is why it stays the default.
- INT4: weight-only, block-wise `MatMulNBitsQuantizer` (RTN or HQQ), `accuracy_level` exposed (4 = int8
  compute, the fast CPU path), Gemm rewritten to MatMul first so Gemm layers are quantized too, and the
  embedding tables (Gather) quantized as an option (`GatherBlockQuantized`): without it MiniLM's INT4 file
  is only 1.7x smaller than FP32, because the FP32 word embeddings are half the model.

Files are always written to the fixed path the caller gives, with every tensor inside the file (threat 4:
a re-save never uses a location that came from the model).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.errors import QuantLensError

MAX_SINGLE_FILE_BYTES = 1_900_000_000  # protobuf's 2 GiB limit, with room for the graph itself


@dataclass(frozen=True)
class Fp16Config:
    keep_io_types: bool = True  # inputs/outputs stay float32, so callers feed and read the same arrays


@dataclass(frozen=True)
class Int8DynamicConfig:
    per_channel: bool = True
    reduce_range: bool = False  # 7-bit weights, only for CPUs without VNNI that saturate; costs accuracy
    quantize_embeddings: bool = True  # Gather tables to int8 (4x smaller file); off keeps them float


@dataclass(frozen=True)
class Int8StaticConfig:
    calibration: str = "minmax"  # minmax | percentile | entropy
    percentile: float = 99.999
    outlier_ratio: float = 10.0  # keep a MatMul in float when max|x| > outlier_ratio * p99(|x|) of its input
    per_channel: bool = True
    quantize_embeddings: bool = True  # embedding tables (Gather on a constant) stored as int8 + scale


@dataclass(frozen=True)
class Int4Config:
    block_size: int = 16  # MiniLM: 16 -> cosine 0.98, 32 -> 0.972, 128 -> 0.959 (with 4-bit embeddings)
    symmetric: bool = False
    algorithm: str = "rtn"  # rtn | hqq
    accuracy_level: int = 4  # MatMulNBits compute type: 0 default, 1 fp32, 2 fp16, 3 bf16, 4 int8
    quantize_embeddings: bool = True
    embedding_block_size: int = 64  # embedding rows tolerate bigger blocks; keeps the file >= 5x smaller


@dataclass(frozen=True)
class QuantizedModel:
    """One written variant. `notes` say in plain words what was kept in float and why."""

    precision: str
    path: Path
    size_bytes: int
    seconds: float
    settings: dict[str, Any]
    notes: tuple[str, ...] = field(default=())


# ----------------------------------------------------------------------------------------------------------
# Loading and saving: external data is refused, and files only ever go where we say.
# ----------------------------------------------------------------------------------------------------------


def _iter_tensors(model):
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

    for tensor in _iter_tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
            raise QuantLensError("external_data_forbidden",
                                 "The model refers to tensor data in other files; QuantLens accepts single-file models only.")


def load_model_checked(path: Path):
    """onnx.load without following any external-data reference, then refuse the model if it has one."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    check_no_external_data(model)
    return model


def save_model_fixed(model, path: Path) -> int:
    """Write `model` to exactly `path`: one file, or for a >1.9 GB model `path` + `<name>.data` beside it.

    Returns the bytes written. Any external-data location the model carried is dropped first.
    """
    import onnx

    check_no_external_data(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if model.ByteSize() < MAX_SINGLE_FILE_BYTES:
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


def _quiet_ort_logging() -> None:
    """ORT's quantization modules call logging.basicConfig(level=INFO) on import; keep our output readable."""
    logging.getLogger().setLevel(logging.WARNING)
    for name in ("onnxruntime", "onnxruntime.quantization", "onnxruntime.transformers"):
        logging.getLogger(name).setLevel(logging.WARNING)


# ----------------------------------------------------------------------------------------------------------
# Graph rewrites
# ----------------------------------------------------------------------------------------------------------


def rewrite_gemm_to_matmul(model) -> int:
    """Rewrite Gemm(A, W[, C]) with a constant W as MatMul(A, W') (+ Add(C')), in place; return how many.

    Why: ORT's weight-only INT4 quantizer and its dynamic INT8 quantizer handle MatMul; a Gemm (what
    torch.nn.Linear exports to for 2-D inputs, and what many non-transformer models use) would silently stay
    FP32. alpha, beta and transB are folded into the constants; transA=1 Gemms are left alone.
    """
    import numpy as np
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    consumers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    new_nodes = []
    rewritten = 0
    for node in graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        weight = inits.get(node.input[1]) if node.op_type == "Gemm" and len(node.input) > 1 else None
        if weight is None or attrs.get("transA", 0) or node.domain not in ("", "ai.onnx"):
            new_nodes.append(node)
            continue
        w = numpy_helper.to_array(weight)
        if w.ndim != 2 or w.dtype.kind != "f":
            new_nodes.append(node)
            continue
        if attrs.get("transB", 0):
            w = w.T
        alpha = float(attrs.get("alpha", 1.0))
        if alpha != 1.0:
            w = w * np.asarray(alpha, dtype=w.dtype)
        base = node.name or node.output[0]
        w_name = f"{weight.name}_matmul"
        graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(w), w_name))
        if consumers.get(weight.name, 0) <= 1:
            graph.initializer.remove(weight)
        has_bias = len(node.input) > 2 and node.input[2] != ""
        mm_out = f"{node.output[0]}_matmul" if has_bias else node.output[0]
        new_nodes.append(onnx.helper.make_node("MatMul", [node.input[0], w_name], [mm_out], name=f"{base}_MatMul"))
        if has_bias:
            bias_name = node.input[2]
            beta = float(attrs.get("beta", 1.0))
            if beta != 1.0:
                bias = inits.get(bias_name)
                if bias is None:
                    scale_name = f"{base}_beta"
                    graph.initializer.append(numpy_helper.from_array(np.asarray(beta, dtype=w.dtype), scale_name))
                    scaled = f"{bias_name}_scaled_{base}"
                    new_nodes.append(onnx.helper.make_node("Mul", [bias_name, scale_name], [scaled], name=f"{base}_Beta"))
                    bias_name = scaled
                else:
                    b = numpy_helper.to_array(bias) * np.asarray(beta, dtype=w.dtype)
                    bias_name = f"{bias.name}_scaled_{base}"
                    graph.initializer.append(numpy_helper.from_array(b, bias_name))
            new_nodes.append(onnx.helper.make_node("Add", [mm_out, bias_name], [node.output[0]], name=f"{base}_Add"))
        rewritten += 1
    if rewritten:
        graph.ClearField("node")
        graph.node.extend(new_nodes)
    return rewritten


def _opset(model, domain: str = "") -> int:
    for entry in model.opset_import:
        if entry.domain in (domain, "ai.onnx" if domain == "" else domain):
            return entry.version
    return 0


# ----------------------------------------------------------------------------------------------------------
# The techniques
# ----------------------------------------------------------------------------------------------------------


def quantize_fp16(src: Path, dst: Path, config: Fp16Config = Fp16Config()) -> QuantizedModel:  # noqa: B008
    """Weights and compute in float16; inputs/outputs stay float32 (keep_io_types)."""
    from onnxruntime.transformers.onnx_model import OnnxModel

    _quiet_ort_logging()
    started = time.perf_counter()
    model = load_model_checked(src)
    wrapped = OnnxModel(model)
    try:
        wrapped.convert_float_to_float16(keep_io_types=config.keep_io_types, use_symbolic_shape_infer=True)
    except Exception:  # symbolic shape inference fails on some graphs; ONNX's own inference then works
        wrapped = OnnxModel(load_model_checked(src))
        wrapped.convert_float_to_float16(keep_io_types=config.keep_io_types, use_symbolic_shape_infer=False)
    size = save_model_fixed(wrapped.model, dst)
    return QuantizedModel("fp16", Path(dst), size, time.perf_counter() - started, asdict(config))


def quantize_int8_dynamic(src: Path, dst: Path, config: Int8DynamicConfig = Int8DynamicConfig()) -> QuantizedModel:  # noqa: B008
    """int8 weights, activations quantized at run time from each input's own range (no calibration)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    _quiet_ort_logging()
    started = time.perf_counter()
    model = load_model_checked(src)
    notes = []
    gemms = rewrite_gemm_to_matmul(model)
    if gemms:
        notes.append(f"{gemms} Gemm layer(s) rewritten to MatMul+Add so they are quantized too.")
    op_types = None if config.quantize_embeddings else ["MatMul", "Attention", "Conv", "LSTM"]
    if not config.quantize_embeddings:
        notes.append("Embedding tables kept in float (quantize_embeddings off).")
    dst = Path(dst)
    try:
        quantize_dynamic(model, dst, per_channel=config.per_channel, reduce_range=config.reduce_range,
                         weight_type=QuantType.QInt8, op_types_to_quantize=op_types,
                         use_external_data_format=False, extra_options={"DefaultTensorType": 1})
    except (ValueError, RuntimeError, KeyError, AssertionError) as exc:
        raise QuantLensError("quantize_failed", f"INT8 dynamic quantization failed: {_short(exc)}") from None
    size = _resave_fixed(dst)
    return QuantizedModel("int8", dst, size, time.perf_counter() - started, asdict(config), tuple(notes))


def _resave_fixed(path: Path) -> int:
    """Reload what an ORT tool wrote and save it again through save_model_fixed (one file, fixed name)."""
    model = load_model_checked(path)
    return save_model_fixed(model, path)


def activation_outlier_ratios(model, feeds: list[dict]) -> dict[str, float]:
    """For each MatMul with a constant weight: max|x| / p99(|x|) of its activation input over `feeds`."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    inits = {t.name for t in model.graph.initializer}
    targets: dict[str, str] = {}
    for node in model.graph.node:
        if node.op_type == "MatMul" and len(node.input) == 2 and node.input[1] in inits and node.input[0] not in inits:
            targets[node.name] = node.input[0]
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    outputs = {o.name for o in probe.graph.output}
    for name in dict.fromkeys(targets.values()):
        if name not in outputs:
            probe.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    wanted = set(targets.values())
    collected: dict[str, list] = {n: [] for n in wanted}
    for feed in feeds:
        for name, value in zip(names, session.run(None, feed), strict=True):
            if name in wanted:
                collected[name].append(np.abs(np.asarray(value, dtype=np.float32)).ravel())
    ratios = {}
    for node_name, tensor in targets.items():
        values = np.concatenate(collected[tensor]) if collected[tensor] else np.zeros(1, np.float32)
        p99 = float(np.percentile(values, 99))
        ratios[node_name] = float(values.max()) / p99 if p99 > 0 else 1.0
    return ratios


def quantize_int8_static(src: Path, dst: Path, calibration_feeds: list[dict],
                         config: Int8StaticConfig = Int8StaticConfig()) -> QuantizedModel:  # noqa: B008
    """int8 QDQ with activation scales fixed from `calibration_feeds` (the user's inputs, equal shapes)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    _quiet_ort_logging()
    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    if config.calibration not in methods:
        raise QuantLensError("bad_option", f"Unknown calibration method {config.calibration!r}; use one of {', '.join(methods)}.")
    if not calibration_feeds:
        raise QuantLensError("no_inputs", "Static INT8 needs at least one calibration input.")
    started = time.perf_counter()
    model = load_model_checked(src)
    notes = []
    gemms = rewrite_gemm_to_matmul(model)
    if gemms:
        notes.append(f"{gemms} Gemm layer(s) rewritten to MatMul+Add so they are quantized too.")
    ratios = activation_outlier_ratios(model, calibration_feeds)
    if not ratios:
        raise QuantLensError("quantize_failed", "Static INT8 found no MatMul with constant weights to quantize.")
    kept = sorted(name for name, ratio in ratios.items() if ratio > config.outlier_ratio)
    if kept:
        notes.append(f"{len(kept)} of {len(ratios)} MatMul layers kept in float: their inputs have outliers more "
                     f"than {config.outlier_ratio:g}x the 99th percentile, which one static 8-bit scale cannot cover.")
    include = [name for name in ratios if name not in kept]
    if not include:
        raise QuantLensError("quantize_failed", "Every MatMul has outlier activations; static INT8 would keep the whole model in float.")
    op_types = ["MatMul"]
    if config.quantize_embeddings:
        inits = {t.name for t in model.graph.initializer}
        tables = [n.name for n in model.graph.node if n.op_type == "Gather" and n.input and n.input[0] in inits and n.name]
        include += tables
        op_types.append("Gather")

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(calibration_feeds)

        def get_next(self):
            return next(self._it, None)

        def rewind(self) -> None:
            self._it = iter(calibration_feeds)

    extra = {"DefaultTensorType": 1}
    if config.calibration == "percentile":
        extra["CalibPercentile"] = config.percentile
    dst = Path(dst)
    try:
        quantize_static(model, dst, _Reader(), quant_format=QuantFormat.QDQ, op_types_to_quantize=op_types,
                        nodes_to_quantize=include, per_channel=config.per_channel,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=methods[config.calibration], use_external_data_format=False,
                        extra_options=extra)
    except (ValueError, RuntimeError, KeyError, AssertionError) as exc:
        raise QuantLensError("quantize_failed", f"INT8 static quantization failed: {_short(exc)}") from None
    size = _resave_fixed(dst)
    settings = asdict(config) | {"kept_float": kept}
    return QuantizedModel("int8-static", dst, size, time.perf_counter() - started, settings, tuple(notes))


def quantize_int4(src: Path, dst: Path, config: Int4Config = Int4Config()) -> QuantizedModel:  # noqa: B008
    """4-bit block-wise weights (MatMulNBits), optionally 4-bit embedding tables (GatherBlockQuantized)."""
    from onnxruntime.quantization import matmul_nbits_quantizer as nbits

    _quiet_ort_logging()
    if config.algorithm not in ("rtn", "hqq"):
        raise QuantLensError("bad_option", f"Unknown INT4 algorithm {config.algorithm!r}; use rtn or hqq.")
    for label, size in (("block size", config.block_size), ("embedding block size", config.embedding_block_size)):
        if size < 16 or size & (size - 1):
            raise QuantLensError("bad_option", f"INT4 {label} must be a power of two, at least 16 (got {size}).")
    if config.accuracy_level not in (0, 1, 2, 3, 4):
        raise QuantLensError("bad_option", f"INT4 accuracy_level must be 0-4 (got {config.accuracy_level}).")
    started = time.perf_counter()
    model = load_model_checked(src)
    notes = []
    gemms = rewrite_gemm_to_matmul(model)
    if gemms:
        notes.append(f"{gemms} Gemm layer(s) rewritten to MatMul+Add so they are quantized too.")
    if config.algorithm == "hqq":
        algo = nbits.HQQWeightOnlyQuantConfig(block_size=config.block_size, bits=4, op_types_to_quantize=("MatMul",))
    else:
        algo = nbits.DefaultWeightOnlyQuantConfig(block_size=config.block_size, is_symmetric=config.symmetric,
                                                  accuracy_level=config.accuracy_level or None,
                                                  op_types_to_quantize=("MatMul",))
    try:
        quantizer = nbits.MatMulNBitsQuantizer(model, algo_config=algo)
        quantizer.process()
        model = quantizer.model.model
        if config.algorithm == "hqq" and config.accuracy_level:
            _set_accuracy_level(model, config.accuracy_level)
        if config.quantize_embeddings:
            if _opset(model) < 21:
                model = _upgrade_opset(model, 21, notes)
            if _opset(model) >= 21:
                gather = nbits.DefaultWeightOnlyQuantConfig(
                    block_size=config.embedding_block_size, is_symmetric=config.symmetric,
                    op_types_to_quantize=("Gather",), quant_axes=(("Gather", 1),))
                quantizer = nbits.MatMulNBitsQuantizer(model, algo_config=gather)
                quantizer.process()
                model = quantizer.model.model
    except (ValueError, RuntimeError, KeyError, AssertionError, NotImplementedError) as exc:
        raise QuantLensError("quantize_failed", f"INT4 quantization failed: {_short(exc)}") from None
    counts = _op_counts(model)
    if not counts.get("MatMulNBits"):
        notes.append("No MatMul with a constant weight was found: nothing was quantized to INT4.")
    if config.quantize_embeddings and not counts.get("GatherBlockQuantized"):
        notes.append("No embedding table (Gather on a constant) was found to quantize.")
    if not config.quantize_embeddings:
        notes.append("Embedding tables kept in FP32 (quantize_embeddings off): the file stays much larger.")
    size = save_model_fixed(model, dst)
    settings = asdict(config) | {"quantized_matmuls": counts.get("MatMulNBits", 0),
                                 "quantized_embeddings": counts.get("GatherBlockQuantized", 0)}
    return QuantizedModel("int4", Path(dst), size, time.perf_counter() - started, settings, tuple(notes))


def _set_accuracy_level(model, level: int) -> None:
    import onnx

    for node in model.graph.node:
        if node.op_type == "MatMulNBits":
            kept = [a for a in node.attribute if a.name != "accuracy_level"]
            node.ClearField("attribute")
            node.attribute.extend(kept + [onnx.helper.make_attribute("accuracy_level", level)])


def _upgrade_opset(model, version: int, notes: list[str]):
    import onnx
    from onnx import version_converter

    try:
        upgraded = version_converter.convert_version(model, version)
        onnx.checker.check_model(upgraded)
        return upgraded
    except Exception as exc:  # the converter lacks adapters for some ops: keep embeddings in float instead
        notes.append(f"Embeddings kept in float: the model's opset {_opset(model)} could not be upgraded to "
                     f"{version} for int4 tables ({_short(exc)}).")
        return model


def _op_counts(model) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:200] + "...") if len(text) > 200 else (text or exc.__class__.__name__)
