"""INT4 weight-only: block-wise MatMulNBits, the most damaged layers at 8 bits, 4-bit embedding tables."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from core.compare.common.onnx_io import load_model_checked, quiet_ort_logging, save_model_fixed, short_error
from core.compare.common.settings import Int4Config
from core.compare.techniques.base import QuantizedModel
from core.compare.techniques.calibration import clip_weights, matmul_activation_samples, rtn_blocks
from core.compare.techniques.graph import (
    consumer_counts,
    embedding_gathers,
    op_counts,
    opset_version,
    rewrite_gemms_noted,
)
from core.errors import QuantLensError


def _plan_int4(model, config: Int4Config, feeds: list[dict] | None) -> tuple[list[str], int]:
    """Clip weights in place (rtn) and pick the layers to keep at 8 bits; returns (8-bit node names, clipped)."""
    import numpy as np
    from onnx import numpy_helper

    samples = matmul_activation_samples(model, feeds or [])
    inits = {t.name: t for t in model.graph.initializer}
    uses = consumer_counts(model.graph)
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
        delta = (rtn_blocks(blocks, lo, hi) - blocks).reshape(-1, n)[:k]
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
    quiet_ort_logging()
    started = time.perf_counter()
    model = load_model_checked(src)
    notes: list[str] = []
    rewrite_gemms_noted(model, notes)
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
        raise QuantLensError("quantize_failed", f"INT4 quantization failed: {short_error(exc)}") from None
    counts = op_counts(model)
    if not counts.get("MatMulNBits"):
        notes.append("No MatMul with a constant weight was found: nothing was quantized to INT4.")
    if config.quantize_embeddings and not embedded and not any("small embedding" in n for n in notes):
        notes.append("No embedding table (Gather on a constant) was found to quantize.")
    if not config.quantize_embeddings:
        notes.append("Embedding tables kept in FP32 (quantize_embeddings off): the file stays much larger.")
    from core.compare.prepare.bit_census import census

    bits = census(model)
    if eight_bit and not bits.layers_4bit:  # the 8-bit rule took every layer: nothing is at 4 bits
        notes = [n for n in notes if not n.startswith("Mixed 4/8-bit")]
        notes.append(f"No layer is stored at 4 bits: the {len(eight_bit)} quantized layer(s) are all at 8 bits (the "
                     "layers most damaged by 4 bits), so this file is INT8 weight-only, not INT4.")
    notes.append(bits.sentence())
    size = save_model_fixed(model, dst)
    settings = asdict(config) | {"quantized_matmuls": counts.get("MatMulNBits", 0), "eight_bit_layers": eight_bit,
                                 "quantized_embeddings": embedded, "bits": bits.to_dict()}
    return QuantizedModel("int4", Path(dst), size, time.perf_counter() - started, settings, tuple(notes))


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
    uses = consumer_counts(model.graph)
    old_style_unsqueeze = opset_version(model) < 13
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
