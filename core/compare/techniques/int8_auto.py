"""INT8 with the method chosen per model: by its ops, and by measuring the candidates when in doubt.

Transformer encoders (weights in MatMul) do best with dynamic INT8 (DistilBERT 1.69x faster, cosine 0.9999);
convolutional models do worst with it (ConvInteger: 0.18-0.28x FP32's speed). So:

- under 10% of the weights in Conv (transformers; a ViT's patch embedding is <1%): dynamic INT8, as before (no
  measuring; the demo's numbers are unchanged);
- more: static QDQ on every op ORT quantizes (its default) is a candidate too; every candidate that can make sense is built (static QDQ on all weighted layers;
  the same with depthwise convolutions kept float; int8 weights with float compute; dynamic INT8 on the MatMuls only, Conv kept float) and
  measured against FP32 on the user's inputs, paired and interleaved: output cosine and p50 latency. The
  candidate kept is the fastest of those at least 1.5x smaller, within 0.9x FP32's speed and cosine 0.98, then
  by looser floors (see `pick`); the notes give every candidate's numbers.

The chosen file may still be slower or worse than FP32 (nothing could be done better); the report's verdict
says so and recommends FP32 (core.compare.verdict).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.compare.onnx_io import load_model_checked
from core.compare.techniques.base import QuantizedModel
from core.errors import QuantLensError

if TYPE_CHECKING:
    from core.compare.feeds import Feeds
    from core.compare.settings import CompareOptions

MIN_SPEEDUP = 0.9
MIN_COSINE = 0.98
USABLE_COSINE = 0.95
MEASURE_ROUNDS = 7
MEASURE_FEEDS = 8
MIN_SIZE_RATIO = 1.5
MIN_CONV_SHARE = 0.1  # below this share of the weights in Conv (a ViT's patch embedding: <1%), a transformer


@dataclass(frozen=True)
class WeightProfile:
    """How many weight values sit in each kind of layer (decides which INT8 method fits the model)."""

    conv: int
    depthwise_conv: int
    matmul: int

    @property
    def has_conv(self) -> bool:
        return self.conv + self.depthwise_conv > 0

    @property
    def conv_share(self) -> float:
        total = self.conv + self.depthwise_conv + self.matmul
        return (self.conv + self.depthwise_conv) / total if total else 0.0


def weight_profile(model) -> WeightProfile:
    import math

    from core.compare.techniques.int8_conv import is_depthwise

    sizes = {t.name: math.prod(t.dims) for t in model.graph.initializer}
    conv = depthwise = matmul = 0
    for node in model.graph.node:
        if len(node.input) < 2 or node.input[1] not in sizes:
            continue
        n = sizes[node.input[1]]
        if node.op_type == "Conv":
            if is_depthwise(node):
                depthwise += n
            else:
                conv += n
        elif node.op_type in ("MatMul", "Gemm"):
            matmul += n
    return WeightProfile(conv, depthwise, matmul)


@dataclass(frozen=True)
class Candidate:
    name: str
    speedup: float
    cosine: float
    size_ratio: float = 1.0  # FP32 bytes / candidate bytes


def pick(candidates: list[Candidate]) -> Candidate:
    """Among the candidates at least MIN_SIZE_RATIO smaller (an "INT8" no smaller than FP32 is not one), in order:
    the fastest within the speed floor and cosine 0.98; the most accurate within the speed floor and cosine 0.95;
    the fastest with cosine 0.95 (slower than FP32, but its outputs can be trusted; the verdict says it is slower);
    else the best product of speed (capped at 1) and cosine."""
    pool = [c for c in candidates if c.size_ratio >= MIN_SIZE_RATIO] or candidates
    tiers = (
        ([c for c in pool if c.speedup >= MIN_SPEEDUP and c.cosine >= MIN_COSINE], lambda c: c.speedup),
        ([c for c in pool if c.speedup >= MIN_SPEEDUP and c.cosine >= USABLE_COSINE], lambda c: c.cosine),
        ([c for c in pool if c.cosine >= USABLE_COSINE], lambda c: c.speedup),
        (pool, lambda c: min(c.speedup, 1.0) * c.cosine),
    )
    for tier, key in tiers:
        if tier:
            return max(tier, key=key)
    raise ValueError("no candidates")


def quantize_int8(src: Path, dst: Path, options: CompareOptions, feeds: Feeds) -> QuantizedModel:
    """The `int8` precision: dynamic, static (conv) or the measured best of both (options.int8.method)."""
    from core.compare.techniques.int8_conv import quantize_int8_conv
    from core.compare.techniques.int8_dynamic import quantize_int8_dynamic
    from core.compare.techniques.int8_weights import quantize_int8_weights

    config = options.int8
    if config.method == "dynamic":  # needs no inputs
        return _tag(quantize_int8_dynamic(src, dst, config), "dynamic")
    calibration = feeds.calibration or feeds.per_input
    if config.method == "static":
        return quantize_int8_conv(src, dst, calibration, per_channel=config.per_channel)
    profile = weight_profile(load_model_checked(src))
    if profile.conv_share < MIN_CONV_SHARE:
        return _tag(quantize_int8_dynamic(src, dst, config), "dynamic")

    builders = {"static QDQ": lambda d: quantize_int8_conv(src, d, calibration, per_channel=config.per_channel)}
    if profile.depthwise_conv and profile.conv:
        builders["static QDQ, depthwise in float"] = lambda d: quantize_int8_conv(
            src, d, calibration, per_channel=config.per_channel, keep_depthwise=True)
    builders["static QDQ, every op"] = lambda d: quantize_int8_conv(src, d, calibration, per_channel=config.per_channel,
                                                                     all_ops=True)
    builders["weight-only int8, float compute"] = lambda d: quantize_int8_weights(src, d)
    if profile.matmul:
        ops = ["MatMul", "Attention"] + (["Gather"] if config.quantize_embeddings else [])
        builders["dynamic on MatMul, Conv in float"] = lambda d: _tag(
            quantize_int8_dynamic(src, d, config, op_types=ops), "dynamic-matmul")
    with tempfile.TemporaryDirectory(prefix="quantlens-int8-", dir=Path(dst).parent) as tmp:
        built: dict[str, QuantizedModel] = {}
        failures: list[str] = []
        for i, (name, build) in enumerate(builders.items()):
            try:
                built[name] = build(Path(tmp) / f"candidate{i}.onnx")
            except QuantLensError as exc:
                failures.append(f"{name}: {exc.message}")
        if not built:
            raise QuantLensError("quantize_failed", "INT8 failed for every method: " + "; ".join(failures))
        measured = measure_candidates(src, {n: q.path for n, q in built.items()}, feeds.per_input[:MEASURE_FEEDS],
                                      feeds.latency, options.threads)
        fp32_bytes = Path(src).stat().st_size
        measured = [Candidate(c.name, c.speedup, c.cosine, fp32_bytes / max(built[c.name].size_bytes, 1))
                    for c in measured]
        best = pick(measured)
        chosen = built[best.name]
        shutil.copyfile(chosen.path, dst)
    table = "; ".join(f"{c.name}: {c.size_ratio:.1f}x smaller, {c.speedup:.2f}x speed, cosine {c.cosine:.4f}"
                      for c in measured)
    notes = list(chosen.notes) + [
        f"Convolutional model: INT8 method chosen by measuring against FP32 on your inputs ({table}); "
        f"kept: {best.name}."]
    notes += [f"Not built: {f}" for f in failures]
    settings = chosen.settings | {"method": "auto", "candidates": [asdict(c) for c in measured], "chosen": best.name}
    return QuantizedModel("int8", Path(dst), chosen.size_bytes, sum(q.seconds for q in built.values()), settings,
                          tuple(notes))


def _tag(q: QuantizedModel, method: str) -> QuantizedModel:
    return QuantizedModel(q.precision, q.path, q.size_bytes, q.seconds, q.settings | {"method_used": method}, q.notes)


def measure_candidates(fp32: Path, paths: dict[str, Path], feeds: list[dict], latency_feed: dict,
                       threads: int) -> list[Candidate]:
    """Cosine of every output against FP32 over `feeds`, and p50 speed-up on `latency_feed`, timed interleaved."""
    import numpy as np

    from core.compare.evaluate import make_session, time_interleaved

    sessions = {"fp32": make_session(fp32, threads)} | {n: make_session(p, threads) for n, p in paths.items()}
    outputs = {n: [s.run(None, f) for f in feeds] for n, s in sessions.items()}
    times = time_interleaved(sessions, latency_feed, MEASURE_ROUNDS)
    base = float(np.median(times["fp32"]))
    result = []
    for name in paths:
        # per output, over all inputs at once: an input whose output is ~0 everywhere (a detector on a picture
        # with nothing to detect) has no meaningful cosine of its own, and must not swing the choice
        cosines = []
        for k, ref in enumerate(outputs["fp32"][0]):
            if np.asarray(ref).dtype.kind == "f":
                cosines.append(_cosine(np.concatenate([np.ravel(o[k]) for o in outputs["fp32"]]),
                                       np.concatenate([np.ravel(o[k]) for o in outputs[name]])))
        result.append(Candidate(name, base / max(float(np.median(times[name])), 1e-9),
                                float(np.mean(cosines)) if cosines else 1.0))
    return result


def _cosine(a, b) -> float:
    import numpy as np

    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    return float(a @ b / (na * nb))
