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
  compute, the fast CPU path). Block 128 keeps ORT's fast kernel; the accuracy plain RTN loses there (MiniLM
  cosine 0.957) comes back from calibration on the user's inputs: per-block clipping ranges that minimise
  activation-weighted error, and the third of the layers that 4 bits damage most stored at 8 bits
  (MatMulNBits bits=8, same accuracy_level: measured as fast as 4-bit on ORT 1.32). Gemm is rewritten to
  MatMul first so Gemm layers are quantized too, and the large embedding tables (Gather) stored at 4 bits
  as an option: without it MiniLM's INT4 file is only 1.7x smaller than FP32, because the FP32 word
  embeddings are half the model. The tables are dequantized after the lookup with plain ONNX ops rather
  than ORT's GatherBlockQuantized, whose CPU kernel made the model ~3% slower than plain ORT (see
  quantize_gather_tables_int4); small tables (positions, token types) stay FP32 (under 1 MB).
  MiniLM: cosine 0.980, 6.2x smaller, plain ORT al=4's speed.

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
    fuse_transformer_ops: bool = True  # ORT's transformer optimizer first, for BERT-like encoders (see below)


@dataclass(frozen=True)
class Int8StaticConfig:
    calibration: str = "minmax"  # minmax | percentile | entropy
    percentile: float = 99.999
    outlier_ratio: float = 10.0  # keep a MatMul in float when max|x| > outlier_ratio * p99(|x|) of its input
    per_channel: bool = True
    quantize_embeddings: bool = True  # embedding tables (Gather on a constant) stored as int8 + scale


@dataclass(frozen=True)
class Int4Config:
    """Defaults chosen on MiniLM (cosine vs FP32, x smaller, speed vs plain ORT accuracy_level=4):

    plain RTN block 128: 0.957, 7.1x, same speed; block 32: 0.975 but ~10% slower, block 64 ~15% slower
    (smaller blocks leave ORT's fast int8-compute path); block 128 + calibrated clipping + the most-damaged
    third of the layers at 8 bits + only the word-embedding table at 4 bits: 0.980, 6.2x, 0.98-1.0x the
    plain speed (paired, no thread spinning). Calibration uses the user's own inputs.
    """

    block_size: int = 128
    symmetric: bool = False
    algorithm: str = "rtn"  # rtn | hqq
    accuracy_level: int = 4  # MatMulNBits compute type: 0 default, 1 fp32, 2 fp16, 3 bf16, 4 int8
    quantize_embeddings: bool = True
    embedding_block_size: int = 64  # embedding rows tolerate bigger blocks; keeps the file >= 5x smaller
    clip_search: bool = True  # per block, the clipping range that minimises activation-weighted error (rtn only)
    eight_bit_fraction: float = 1 / 3  # share of MatMul layers, most damaged by 4 bits, stored at 8 bits
    embedding_min_share: float = 0.02  # tables under this share of the float weights (positions...) stay float


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
        try:
            wrapped.convert_float_to_float16(keep_io_types=config.keep_io_types, use_symbolic_shape_infer=False)
        except Exception as exc:  # the converter raises bare Exceptions and onnx errors alike
            raise QuantLensError("quantize_failed", f"FP16 conversion failed: {_short(exc)}") from None
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
    if config.fuse_transformer_ops:
        model = fuse_encoder_ops(model, notes)
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


def fuse_encoder_ops(model, notes: list[str]):
    """ORT's transformer optimizer (model_type bert, graph-pattern fusions only, no session) before INT8.

    Why: it fuses each self-attention block into one Attention op, which dynamic quantization turns into
    QAttention, plus SkipLayerNormalization/BiasGelu/EmbedLayerNormalization: the flow ORT documents for
    BERT-like models. MiniLM: 2.02x faster than FP32 vs 1.94x unfused, cosine 0.9938 vs 0.9940, same size.
    Kept only when attention blocks were actually fused (a BERT-like encoder); any other graph, or any
    optimizer failure, goes on unfused.
    """
    import onnx

    try:
        from onnxruntime.transformers.optimizer import optimize_model

        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        optimized = optimize_model(copy, model_type="bert", num_heads=0, hidden_size=0, opt_level=0)
        fused = optimized.get_fused_operator_statistics()
    except Exception:  # the optimizer raises whatever its pattern matchers hit; fusion is only an optimisation
        return model
    if not fused.get("Attention"):
        return model
    names = ("Attention", "SkipLayerNormalization", "BiasGelu", "EmbedLayerNormalization")
    notes.append("Transformer ops fused first (ORT's optimizer: " + ", ".join(
        f"{fused[n]} {n}" for n in names if fused.get(n)) + ") so attention runs as one quantized QAttention op.")
    result = optimized.model
    if not any(entry.domain == "com.microsoft" for entry in result.opset_import):
        result.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    return result


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


CANDIDATE_CLIPS = (1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6)
MAX_SAMPLE_ROWS = 256  # activation rows kept per layer for the error estimate


def matmul_activation_samples(model, feeds: list[dict], max_rows: int = MAX_SAMPLE_ROWS) -> dict[str, Any]:
    """Input activations (rows x K, float32, at most `max_rows` rows) of each MatMul with a constant 2-D weight."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    inits = {t.name: t for t in model.graph.initializer}
    targets = {n.name: n.input[0] for n in model.graph.node
               if n.op_type == "MatMul" and len(n.input) == 2 and n.input[1] in inits and len(inits[n.input[1]].dims) == 2}
    if not targets or not feeds:
        return {}
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    present = {o.name for o in probe.graph.output}
    for name in dict.fromkeys(targets.values()):
        if name not in present:
            probe.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    wanted = set(targets.values())
    rows: dict[str, list] = {n: [] for n in wanted}
    for feed in feeds:
        for name, value in zip(names, session.run(None, feed), strict=True):
            if name in wanted:
                value = np.asarray(value, dtype=np.float32)
                rows[name].append(value.reshape(-1, value.shape[-1]))
    rng = np.random.default_rng(0)
    samples = {}
    for tensor, parts in rows.items():
        x = np.concatenate(parts)
        samples[tensor] = x[rng.choice(len(x), max_rows, replace=False)] if len(x) > max_rows else x
    return {node: samples[tensor] for node, tensor in targets.items()}


def _rtn_blocks(blocks, lo, hi):
    """ORT's asymmetric 4-bit round-to-nearest of [blocks, rows, N] with per-block range [lo, hi]."""
    import numpy as np

    scale = (hi - lo) / 15.0
    scale = np.where(scale == 0, 1.0, scale)
    zero = np.clip(np.round(-lo / scale), 0, 15)
    return (np.clip(np.round(blocks / scale) + zero, 0, 15) - zero) * scale


def clip_weights(w, block_size: int, importance=None):
    """Clip each block of W (K x N, blocks along K) to the range that minimises sum_k importance_k * error^2.

    Plain RTN spends its 16 levels on the block's extreme values; shrinking the range trades a clipped
    outlier for finer steps everywhere else, and weighting by E[x_k^2] of the layer's real inputs makes the
    trade where the activations are. Returns the clipped weights: ORT's quantizer then lands on those ranges.
    """
    import numpy as np

    k, n = w.shape
    pad = (-k) % block_size
    blocks = np.pad(w.astype(np.float32), ((0, pad), (0, 0))).reshape(-1, block_size, n)
    weight = np.ones(k, np.float32) if importance is None else importance.astype(np.float32)
    weight = np.pad(weight, (0, pad)).reshape(-1, block_size, 1)
    lo0 = np.minimum(blocks.min(1, keepdims=True), 0)
    hi0 = np.maximum(blocks.max(1, keepdims=True), 0)
    best_err = np.full(lo0.shape, np.inf, np.float32)
    best = np.ones(lo0.shape, np.float32)
    for factor in CANDIDATE_CLIPS:
        err = (((_rtn_blocks(blocks, lo0 * factor, hi0 * factor) - blocks) ** 2) * weight).sum(1, keepdims=True)
        better = err < best_err
        best_err = np.where(better, err, best_err)
        best = np.where(better, factor, best)
    return np.clip(blocks, lo0 * best, hi0 * best).reshape(-1, n)[:k].astype(w.dtype)


def _plan_int4(model, config: Int4Config, feeds: list[dict] | None) -> tuple[list[str], int]:
    """Clip weights in place (rtn) and pick the layers to keep at 8 bits; returns (8-bit node names, clipped)."""
    import numpy as np
    from onnx import numpy_helper

    samples = matmul_activation_samples(model, feeds or [])
    inits = {t.name: t for t in model.graph.initializer}
    uses: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    damage: dict[str, float] = {}
    clipped = 0
    for node in model.graph.node:
        if node.op_type != "MatMul" or len(node.input) != 2 or node.input[1] not in inits:
            continue
        tensor = inits[node.input[1]]
        w = numpy_helper.to_array(tensor)
        if w.ndim != 2 or w.dtype != np.float32:
            continue
        x = samples.get(node.name)
        # damage of plain 4-bit RTN, relative to the layer's output on the real inputs (or to the weights)
        k, n = w.shape
        pad = (-k) % config.block_size
        blocks = np.pad(w, ((0, pad), (0, 0))).reshape(-1, config.block_size, n)
        lo, hi = np.minimum(blocks.min(1, keepdims=True), 0), np.maximum(blocks.max(1, keepdims=True), 0)
        delta = (_rtn_blocks(blocks, lo, hi) - blocks).reshape(-1, n)[:k]
        if x is not None and len(x):
            damage[node.name] = float(np.linalg.norm(x @ delta) / max(np.linalg.norm(x @ w), 1e-12))
        else:
            damage[node.name] = float(np.linalg.norm(delta) / max(np.linalg.norm(w), 1e-12))
        if config.clip_search and config.algorithm == "rtn" and uses.get(tensor.name, 0) == 1:
            importance = (x.astype(np.float64) ** 2).mean(0) if x is not None else None
            tensor.CopyFrom(numpy_helper.from_array(clip_weights(w, config.block_size, importance), tensor.name))
            clipped += 1
    count = int(np.ceil(len(damage) * config.eight_bit_fraction)) if damage else 0
    ranked = sorted(damage, key=damage.get, reverse=True)
    return ranked[:count], clipped


def quantize_int4(src: Path, dst: Path, config: Int4Config = Int4Config(),  # noqa: B008
                  calibration_feeds: list[dict] | None = None) -> QuantizedModel:
    """4-bit block-wise weights (MatMulNBits); the most damaged layers at 8 bits; optionally 4-bit embeddings.

    `calibration_feeds` (the user's inputs) weight the clipping search and the damage ranking by the real
    activations; without them both fall back to plain weight error.
    """
    nbits = _nbits_module()
    _quiet_ort_logging()
    if config.algorithm not in ("rtn", "hqq"):
        raise QuantLensError("bad_option", f"Unknown INT4 algorithm {config.algorithm!r}; use rtn or hqq.")
    for label, size in (("block size", config.block_size), ("embedding block size", config.embedding_block_size)):
        if size < 16 or size & (size - 1):
            raise QuantLensError("bad_option", f"INT4 {label} must be a power of two, at least 16 (got {size}).")
    if config.accuracy_level not in (0, 1, 2, 3, 4):
        raise QuantLensError("bad_option", f"INT4 accuracy_level must be 0-4 (got {config.accuracy_level}).")
    if not 0 <= config.embedding_min_share <= 1:
        raise QuantLensError("bad_option", f"INT4 embedding_min_share must be from 0 to 1 (got {config.embedding_min_share}).")
    if not 0 <= config.eight_bit_fraction <= 1:
        raise QuantLensError("bad_option", f"INT4 eight_bit_fraction must be from 0 to 1 (got {config.eight_bit_fraction}).")
    started = time.perf_counter()
    model = load_model_checked(src)
    notes = []
    gemms = rewrite_gemm_to_matmul(model)
    if gemms:
        notes.append(f"{gemms} Gemm layer(s) rewritten to MatMul+Add so they are quantized too.")
    eight_bit, clipped = _plan_int4(model, config, calibration_feeds)
    if clipped:
        notes.append(f"Clipping ranges of {clipped} layer(s) chosen to minimise error on "
                     f"{'your inputs' if calibration_feeds else 'the weights'}.")
    if eight_bit:
        notes.append(f"Mixed 4/8-bit: {len(eight_bit)} layer(s) most damaged by 4 bits stored at 8 bits "
                     f"({config.eight_bit_fraction:.0%} of the MatMul layers); the rest at 4 bits.")
    level = config.accuracy_level or None
    if config.algorithm == "hqq":
        algo = nbits.HQQWeightOnlyQuantConfig(block_size=config.block_size, bits=4, op_types_to_quantize=("MatMul",))
    else:
        algo = nbits.DefaultWeightOnlyQuantConfig(block_size=config.block_size, is_symmetric=config.symmetric,
                                                  accuracy_level=level, op_types_to_quantize=("MatMul",))
    try:
        quantizer = nbits.MatMulNBitsQuantizer(model, algo_config=algo, nodes_to_exclude=eight_bit)
        quantizer.process()
        model = quantizer.model.model
        if config.algorithm == "hqq" and config.accuracy_level:
            _set_accuracy_level(model, config.accuracy_level)
        if eight_bit:  # the remaining constant-weight MatMuls are exactly the excluded ones
            algo8 = nbits.DefaultWeightOnlyQuantConfig(block_size=config.block_size, is_symmetric=config.symmetric,
                                                       accuracy_level=level, op_types_to_quantize=("MatMul",), bits=8)
            quantizer = nbits.MatMulNBitsQuantizer(model, algo_config=algo8)
            quantizer.process()
            model = quantizer.model.model
        embedded = 0
        if config.quantize_embeddings:
            tables, small = embedding_gathers(model, config.embedding_min_share)
            embedded = quantize_gather_tables_int4(model, set(tables), config.embedding_block_size)
            if small:
                notes.append(f"{len(small)} small embedding table(s) (each under {config.embedding_min_share:.0%} of "
                             "the weights, e.g. positions) kept in FP32: quantizing them saves little and costs speed.")
    except (ValueError, RuntimeError, KeyError, AssertionError, NotImplementedError) as exc:
        raise QuantLensError("quantize_failed", f"INT4 quantization failed: {_short(exc)}") from None
    counts = _op_counts(model)
    if not counts.get("MatMulNBits"):
        notes.append("No MatMul with a constant weight was found: nothing was quantized to INT4.")
    if config.quantize_embeddings and not embedded and not any("small embedding" in n for n in notes):
        notes.append("No embedding table (Gather on a constant) was found to quantize.")
    if not config.quantize_embeddings:
        notes.append("Embedding tables kept in FP32 (quantize_embeddings off): the file stays much larger.")
    size = save_model_fixed(model, dst)
    settings = asdict(config) | {"quantized_matmuls": counts.get("MatMulNBits", 0), "eight_bit_layers": eight_bit,
                                 "quantized_embeddings": embedded}
    return QuantizedModel("int4", Path(dst), size, time.perf_counter() - started, settings, tuple(notes))


def embedding_gathers(model, min_share: float) -> tuple[list[str], list[str]]:
    """Gather nodes on a constant table: (tables holding at least `min_share` of the float weights, the rest).

    Why not every table: each quantized table becomes a GatherBlockQuantized node, which costs run time.
    The word embeddings are the bulk of the bytes (MiniLM: 51% of the weights); position and token-type
    tables are under 1% together, so keeping them in float costs under 1 MB.
    """
    import onnx

    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE)
    sizes = {}
    for tensor in model.graph.initializer:
        count = 1
        for d in tensor.dims:
            count *= d
        sizes[tensor.name] = count if tensor.data_type in floats else 0
    total = max(1, sum(sizes.values()))
    large, small = [], []
    for n in model.graph.node:
        if n.op_type == "Gather" and n.input and sizes.get(n.input[0]):
            (large if sizes[n.input[0]] >= min_share * total else small).append(n.name)
    return large, small


def quantize_gather_tables_int4(model, node_names: set[str], block_size: int) -> int:
    """Store the tables of the named Gather nodes at 4 bits, dequantized after the lookup; returns how many.

    Why not ORT's GatherBlockQuantized: on ORT 1.32 its CPU kernel takes ~0.4 ms for 128 MiniLM tokens
    (~3% of the whole INT4 model's run), while a plain Gather of the packed rows plus a few element-wise
    ops on those 128 rows costs ~0.05 ms; the stored bytes are the same (4-bit values, nibble-packed, and a
    float scale and an 8-bit zero point per block of `block_size` values along each row). Asymmetric
    round-to-nearest, like ORT's. Only standard ONNX ops, no opset upgrade. A table whose row length is not
    a multiple of a power-of-two block of at least 16 stays in float.
    """
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    uses: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    old_style_unsqueeze = _opset(model) < 13
    new_nodes, done = [], 0
    for node in model.graph.node:
        table = inits.get(node.input[0]) if node.op_type == "Gather" and node.name in node_names else None
        axis = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 0)
        if table is None or axis != 0 or len(table.dims) != 2 or table.data_type != onnx.TensorProto.FLOAT:
            new_nodes.append(node)
            continue
        rows, cols = table.dims
        block = block_size
        while block >= 16 and cols % block:
            block //= 2
        if block < 16:
            new_nodes.append(node)
            continue
        w = numpy_helper.to_array(table).astype(np.float32).reshape(rows, cols // block, block)
        lo, hi = np.minimum(w.min(-1), 0), np.maximum(w.max(-1), 0)
        scale = ((hi - lo) / 15.0).astype(np.float32)
        scale = np.where(scale == 0, np.float32(1.0), scale)
        zero = np.clip(np.round(-lo / scale), 0, 15).astype(np.uint8)
        q = np.clip(np.round(w / scale[..., None]) + zero[..., None], 0, 15).astype(np.uint8).reshape(rows, cols)
        packed = (q[:, 0::2] | (q[:, 1::2] << 4)).astype(np.uint8)  # even columns in the low nibble
        base, ids, p = table.name, node.input[1], f"{node.name}_q4"

        def t(suffix: str, p=p) -> str:
            return f"{p}_{suffix}"

        consts = {t("packed"): packed, t("scales"): scale, t("zero_points"): zero, t("sixteen"): np.array(16, np.int32),
                  t("block_shape"): np.array([-1, cols // block, block], np.int64),
                  t("scale_shape"): np.array([-1, cols // block, 1], np.int64),
                  t("last"): np.array([-1], np.int64), t("cols"): np.array([cols], np.int64)}
        model.graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in consts.items())

        def unsqueeze(src: str, dst: str) -> Any:
            if old_style_unsqueeze:
                return helper.make_node("Unsqueeze", [src], [dst], name=dst, axes=[-1])
            return helper.make_node("Unsqueeze", [src, t("last")], [dst], name=dst)

        new_nodes += [
            helper.make_node("Gather", [t("packed"), ids], [t("rows")], name=t("rows"), axis=0),
            helper.make_node("Cast", [t("rows")], [t("rows32")], name=t("rows32"), to=onnx.TensorProto.INT32),
            helper.make_node("Mod", [t("rows32"), t("sixteen")], [t("low")], name=t("low")),
            helper.make_node("Div", [t("rows32"), t("sixteen")], [t("high")], name=t("high")),
            unsqueeze(t("low"), t("low1")), unsqueeze(t("high"), t("high1")),
            helper.make_node("Concat", [t("low1"), t("high1")], [t("pairs")], name=t("pairs"), axis=-1),
            helper.make_node("Cast", [t("pairs")], [t("values")], name=t("values"), to=onnx.TensorProto.FLOAT),
            helper.make_node("Reshape", [t("values"), t("block_shape")], [t("blocks")], name=t("blocks")),
            helper.make_node("Gather", [t("zero_points"), ids], [t("zp_rows")], name=t("zp_rows"), axis=0),
            helper.make_node("Cast", [t("zp_rows")], [t("zp_float")], name=t("zp_float"), to=onnx.TensorProto.FLOAT),
            helper.make_node("Reshape", [t("zp_float"), t("scale_shape")], [t("zp_blocks")], name=t("zp_blocks")),
            helper.make_node("Gather", [t("scales"), ids], [t("scale_rows")], name=t("scale_rows"), axis=0),
            helper.make_node("Reshape", [t("scale_rows"), t("scale_shape")], [t("scale_blocks")], name=t("scale_blocks")),
            helper.make_node("Sub", [t("blocks"), t("zp_blocks")], [t("centered")], name=t("centered")),
            helper.make_node("Mul", [t("centered"), t("scale_blocks")], [t("dequantized")], name=t("dequantized")),
            helper.make_node("Shape", [ids], [t("ids_shape")], name=t("ids_shape")),
            helper.make_node("Concat", [t("ids_shape"), t("cols")], [t("out_shape")], name=t("out_shape"), axis=0),
            helper.make_node("Reshape", [t("dequantized"), t("out_shape")], [node.output[0]], name=t("out")),
        ]
        if uses.get(base, 0) == 1:
            model.graph.initializer.remove(table)
        done += 1
    if done:
        model.graph.ClearField("node")
        model.graph.node.extend(new_nodes)
    return done


def _nbits_module():
    """ORT's MatMulNBits quantizer imports `onnx_ir` at module level, which onnxruntime does not install."""
    try:
        from onnxruntime.quantization import matmul_nbits_quantizer
    except ModuleNotFoundError as exc:
        raise QuantLensError("missing_dependency", f"INT4 needs the Python package {exc.name!r} "
                                                   "(pip install -r requirements.txt installs onnx-ir).") from None
    return matmul_nbits_quantizer


def _set_accuracy_level(model, level: int) -> None:
    import onnx

    for node in model.graph.node:
        if node.op_type == "MatMulNBits":
            kept = [a for a in node.attribute if a.name != "accuracy_level"]
            node.ClearField("attribute")
            node.attribute.extend(kept + [onnx.helper.make_attribute("accuracy_level", level)])


def _op_counts(model) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:200] + "...") if len(text) > 200 else (text or exc.__class__.__name__)
