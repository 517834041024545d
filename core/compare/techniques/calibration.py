"""Calibration maths on the user's own inputs: the activations each MatMul sees, their outliers, and the
INT4 clipping search that weights weight error by those activations.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

CANDIDATE_CLIPS = (1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6)


MAX_SAMPLE_ROWS = 256  # activation rows kept per layer for the error estimate


def probe_activations(model, tensor_names, feeds: list[dict]) -> Iterator[dict[str, Any]]:
    """Run `model` on each feed with the named intermediate tensors exposed as outputs; yield {name: array}.

    One probe for every calibration statistic: the model is copied, the wanted tensors appended to its outputs,
    and run once per feed in onnxruntime (2 threads, CPU).
    """
    import onnx
    import onnxruntime as ort

    wanted = set(tensor_names)
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    present = {o.name for o in probe.graph.output}
    for name in dict.fromkeys(tensor_names):
        if name not in present:
            probe.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    for feed in feeds:
        yield {name: value for name, value in zip(names, session.run(None, feed), strict=True) if name in wanted}


def activation_outlier_ratios(model, feeds: list[dict]) -> dict[str, float]:
    """For each MatMul with a constant weight: max|x| / p99(|x|) of its activation input over `feeds`."""
    import numpy as np

    inits = {t.name for t in model.graph.initializer}
    targets: dict[str, str] = {}
    for node in model.graph.node:
        if node.op_type == "MatMul" and len(node.input) == 2 and node.input[1] in inits and node.input[0] not in inits:
            targets[node.name] = node.input[0]
    collected: dict[str, list] = {n: [] for n in targets.values()}
    for values in probe_activations(model, targets.values(), feeds):
        for name, value in values.items():
            collected[name].append(np.abs(np.asarray(value, dtype=np.float32)).ravel())
    ratios = {}
    for node_name, tensor in targets.items():
        values = np.concatenate(collected[tensor]) if collected[tensor] else np.zeros(1, np.float32)
        p99 = float(np.percentile(values, 99))
        ratios[node_name] = float(values.max()) / p99 if p99 > 0 else 1.0
    return ratios


def matmul_activation_samples(model, feeds: list[dict], max_rows: int = MAX_SAMPLE_ROWS) -> dict[str, Any]:
    """Input activations (rows x K, float32, at most `max_rows` rows) of each MatMul with a constant 2-D weight."""
    import numpy as np

    inits = {t.name: t for t in model.graph.initializer}
    targets = {n.name: n.input[0] for n in model.graph.node
               if n.op_type == "MatMul" and len(n.input) == 2 and n.input[1] in inits and len(inits[n.input[1]].dims) == 2}
    if not targets or not feeds:
        return {}
    rows: dict[str, list] = {n: [] for n in targets.values()}
    for values in probe_activations(model, targets.values(), feeds):
        for name, value in values.items():
            value = np.asarray(value, dtype=np.float32)
            rows[name].append(value.reshape(-1, value.shape[-1]))
    rng = np.random.default_rng(0)
    samples = {}
    for tensor, parts in rows.items():
        x = np.concatenate(parts)
        samples[tensor] = x[rng.choice(len(x), max_rows, replace=False)] if len(x) > max_rows else x
    return {node: samples[tensor] for node, tensor in targets.items()}


def rtn_blocks(blocks, lo, hi):
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
        err = (((rtn_blocks(blocks, lo0 * factor, hi0 * factor) - blocks) ** 2) * weight).sum(1, keepdims=True)
        better = err < best_err
        best_err = np.where(better, err, best_err)
        best = np.where(better, factor, best)
    return np.clip(blocks, lo0 * best, hi0 * best).reshape(-1, n)[:k].astype(w.dtype)


def calibration_reader(feeds: list[dict]):
    """ORT's CalibrationDataReader over the user's feeds (rewindable), for the static quantizers."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(feeds)

        def get_next(self):
            return next(self._it, None)

        def rewind(self) -> None:
            self._it = iter(feeds)

    return _Reader()
