"""Sizes predicted before measuring: parameters x bits (the calculator's ideal) and a model of the stored format.

Both sit next to the measured file in every report, so each comparison checks the sizing arithmetic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.compare.common.onnx_io import load_model_checked
from core.compare.common.settings import BITS
from core.compare.techniques.graph import embedding_gathers
from core.errors import QuantLensError


def count_onnx_parameters(path: Path) -> int:
    """Elements of all floating-point weights, counted the way the sizing engine counts.

    Not only initializers: exporters such as Paddle2ONNX store weights in Constant nodes, and control flow
    (silero-vad) keeps them inside If/Loop subgraphs; counting initializers alone showed PaddleOCR's
    classifier as 0.0M parameters.
    """
    import onnx

    from core.compare.common.onnx_io import iter_tensors

    model = load_model_checked(path)
    # an already-quantized upload keeps its weights in int8 (QLinearConv, MatMulInteger, DequantizeLinear) or packed
    # 4-bit bytes (MatMulNBits: 8/bits values per byte); counting floats only gave 61,788 for a 66M-parameter INT8
    packed = {n.input[1]: 8 // max(1, next((a.i for a in n.attribute if a.name == "bits"), 4))
              for n in model.graph.node if n.op_type == "MatMulNBits" and len(n.input) > 1}
    integer = (onnx.TensorProto.INT8, onnx.TensorProto.UINT8, onnx.TensorProto.INT4, onnx.TensorProto.UINT4)
    total = 0
    for tensor in iter_tensors(model):
        count = 1
        for d in tensor.dims:
            count *= d
        if tensor.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16,
                                onnx.TensorProto.DOUBLE):
            total += count
        elif tensor.data_type in integer and count >= 16:  # zero points and tiny lookup tables are not weights
            total += count * packed.get(tensor.name, 1)
    return total


def parameter_count(config: dict, fp32_path: Path) -> tuple[int, str]:
    """Parameters from config.json through the sizing engine when it knows the architecture, else from the graph."""
    if config:
        try:
            from core.sizing.architecture import architecture_from_config
            from core.sizing.architecture import parameter_count as arch_count

            return int(arch_count(architecture_from_config(config))), "config.json (core.sizing.architecture)"
        except (ImportError, QuantLensError, KeyError, ValueError, TypeError):
            pass
    return count_onnx_parameters(fp32_path), "ONNX initializers"


def predicted_bytes(parameters: int, precision: str) -> int:
    """The sizing engine's weights-only estimate: parameters x bits per weight (core.sizing.precisions when present)."""
    bits: float = BITS[precision]
    try:
        from core.sizing.precisions import get_precision

        bits = float(get_precision(precision.split("-")[0]).bits_per_weight)
    except (ImportError, QuantLensError, AttributeError):
        pass
    return int(round(parameters * bits / 8))


def predicted_stored_bytes(fp32_path: Path, precision: str, settings: dict[str, Any]) -> int:
    """The file size this precision's stored format should give, predicted from the FP32 graph and settings.

    Parameters x bits (predicted_bytes) is the calculator's ideal; real files also hold a scale (and zero
    point) per block or channel, the layers a technique leaves in float (LayerNorm, biases, small or
    unquantized tables), INT4 layers stored at 8 bits, and the graph itself. This walks the FP32
    initializers and applies the format each technique writes, so the prediction can be checked against
    the measured file: a gap means the model of the format (or the quantizer) changed.
    """
    import math

    import onnx

    model = load_model_checked(fp32_path)
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE)
    inits = {t.name: t for t in model.graph.initializer}
    elem_bytes = {onnx.TensorProto.FLOAT: 4, onnx.TensorProto.FLOAT16: 2, onnx.TensorProto.BFLOAT16: 2,
                  onnx.TensorProto.DOUBLE: 8}
    matmul_weights: dict[str, str] = {}  # initializer -> consuming MatMul/Gemm node name
    gather_tables: set[str] = set()
    conv_weights: set[str] = set()  # dynamic INT8 quantizes Conv weights too (ConvInteger), per output channel
    for node in model.graph.node:
        if node.op_type in ("MatMul", "Gemm") and len(node.input) > 1 and node.input[1] in inits \
                and len(inits[node.input[1]].dims) == 2:
            matmul_weights[node.input[1]] = node.name if node.op_type == "MatMul" else f"{node.name or node.output[0]}_MatMul"
        elif node.op_type == "Gather" and node.input and node.input[0] in inits:
            gather_tables.add(node.input[0])
        elif node.op_type == "Conv" and len(node.input) > 1 and node.input[1] in inits:
            conv_weights.add(node.input[1])
    # Conv weights become int8 (a scale and zero point per output channel) under dynamic INT8 (ConvInteger) and the
    # CNN methods of techniques/int8_auto (static QDQ, weight-only); the MatMul-only method leaves them in float.
    if settings.get("method_used") == "dynamic-matmul":
        conv_weights = set()
    eight_bit = set(settings.get("eight_bit_layers") or ())
    if precision == "int4" and settings.get("quantize_embeddings", True):
        large = set(embedding_gathers(model, float(settings.get("embedding_min_share", 0.0)))[0])
        int4_tables = {n.input[0] for n in model.graph.node if n.name in large}
    else:
        int4_tables = set()
    total = 0
    weight_bytes = 0
    for name, tensor in inits.items():
        count = math.prod(tensor.dims) if tensor.dims else 1
        stored = tensor.data_type in floats
        own = count * elem_bytes.get(tensor.data_type, 4) if stored else len(tensor.raw_data) or count * 8
        weight_bytes += own
        if not stored:
            total += own
            continue
        if precision == "fp32":
            total += count * 4
        elif precision == "fp16":
            total += count * 2
        elif precision == "int8" and name in conv_weights and len(tensor.dims) >= 2:
            channels = tensor.dims[0] if settings.get("per_channel", True) else 1
            total += count + channels * 5
        elif precision in ("int8", "int8-static") and (name in matmul_weights or (
                name in gather_tables and settings.get("quantize_embeddings", True))):
            channels = tensor.dims[-1] if name in matmul_weights and settings.get("per_channel", True) else 1
            total += count + channels * 5  # int8 values + a float scale and an 8-bit zero point per channel
        elif precision == "int8" and name in conv_weights:
            total += count + tensor.dims[0] * 5
        elif precision == "int4" and name in matmul_weights:
            k, n = tensor.dims
            block = int(settings.get("block_size", 128))
            blocks = math.ceil(k / block)
            bits = 8 if matmul_weights[name] in eight_bit else 4
            zero_points = 0 if settings.get("symmetric") else n * math.ceil(blocks * bits / 8)
            total += n * blocks * block * bits // 8 + n * blocks * 4 + zero_points
        elif precision == "int4" and name in int4_tables and len(tensor.dims) == 2:
            rows, cols = tensor.dims
            block = int(settings.get("embedding_block_size", 64))
            while block >= 16 and cols % block:
                block //= 2
            if block < 16:
                total += count * 4
                continue
            blocks = cols // block
            total += rows * cols // 2 + rows * blocks * (4 + 1)  # nibbles + a float scale and uint8 zero point
        else:
            total += count * 4  # left in float by the technique (LayerNorm, biases, small tables)
    graph_bytes = max(0, Path(fp32_path).stat().st_size - weight_bytes)
    if precision == "fp16":  # weights held in Constant nodes and subgraphs are converted to float16 too
        graph_bytes -= _non_initializer_float_bytes(model) // 2
    return int(total + max(0, graph_bytes))


def _non_initializer_float_bytes(model) -> int:
    """FP32 bytes of float tensors outside the main graph's initializers (Constant nodes, subgraphs)."""
    import math

    import onnx

    from core.compare.common.onnx_io import iter_tensors

    def float_bytes(tensors) -> int:
        return sum(4 * (math.prod(t.dims) if t.dims else 1) for t in tensors if t.data_type == onnx.TensorProto.FLOAT)

    return max(0, float_bytes(iter_tensors(model)) - float_bytes(model.graph.initializer))
