"""INT8 with the method chosen per model: by its ops, and by measuring the candidates on the task's own metric.

Transformer encoders (weights in MatMul) do best with dynamic INT8 (DistilBERT 1.69x faster, cosine 0.9999);
convolutional models do worst with it (ConvInteger: 0.18-0.28x FP32's speed). So:

- a model is convolutional by its ops (at least 3 Conv nodes, and at least half as many Conv as MatMul/Gemm), not
  only by its weight share: a CRNN text recognizer whose convs hold 9.7% of the weights is still a CNN, while a
  ViT's single patch-embedding Conv does not make it one (a few convs with >= 10% of the weights count too). Transformers get dynamic INT8, as before (no measuring);
- convolutional models get candidates (static QDQ on the weighted layers; the same with depthwise convolutions
  kept float; static QDQ on every op with the output head kept float; int8 weights with float compute; dynamic
  INT8 on the MatMuls only), each built and measured against FP32 on the user's inputs: the task's own metric
  (matched-box F1 for a detector, text kept for OCR, labels kept for a classifier; core.compare.judge.judgment) and
  the paired p50 speed-up, measured by the probe the comparison hands in (core.compare.judge.candidates). The
  kept one is the fastest of those at least 1.5x smaller that keep the metric's floor within 0.9x FP32's speed,
  then by looser rules (see `pick`); the notes give every candidate's numbers. With no probe (a caller that only
  builds), a convolutional model gets static QDQ on its weighted layers and no search.
- a recipe that fails (any onnxruntime error, e.g. basic-pitch's `Fail` in static QDQ) is skipped for the next;
  when all fail, dynamic weight INT8 (`quantize_dynamic`) is the fallback. The search has a time budget and stops
  early when a candidate is clearly best; what was skipped is reported.

The chosen file may still be slower or worse than FP32 (nothing could be done better); the report's verdict
says so and recommends FP32 (core.compare.judge.verdict).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.compare.common.onnx_io import load_model_checked
from core.compare.techniques.base import ProbeFactory, QuantizedModel
from core.errors import QuantLensError

if TYPE_CHECKING:
    from core.compare.common.settings import CompareOptions
    from core.compare.inputs.feeds import Feeds

MIN_SPEEDUP = 0.9
MIN_COSINE = 0.98
USABLE_COSINE = 0.95
MEASURE_ROUNDS = 7
MEASURE_FEEDS = 8
MIN_SIZE_RATIO = 1.5
MIN_CONV_SHARE = 0.1  # or this share of the weights in Conv (a ViT's patch embedding: <1%)
MIN_CONV_NODES = 3  # fewer Conv nodes than this (a ViT's patch embedding, Whisper's 2 stem convs): a transformer
SEARCH_BUDGET_S = 45.0  # candidates not started by then are skipped (and reported)
CALIBRATION_FEEDS = 16  # a static candidate calibrates on at most this many inputs
CLEARLY_BEST = (0.995, 1.2, 3.0)  # metric value, speed-up, size ratio at or above which the search stops


@dataclass(frozen=True)
class WeightProfile:
    """How many weight values sit in each kind of layer (decides which INT8 method fits the model)."""

    conv: int
    depthwise_conv: int
    matmul: int
    conv_nodes: int = 0
    matmul_nodes: int = 0

    @property
    def convolutional(self) -> bool:
        """A CNN by its ops (many Conv nodes, not outnumbered by MatMuls), whatever share of the weights its
        convolutions hold; or a few convolutions holding a real share of the weights (magika: 1 Conv, 2 MatMul)."""
        by_ops = self.conv_nodes >= MIN_CONV_NODES and 2 * self.conv_nodes >= self.matmul_nodes
        return by_ops or self.conv_share >= MIN_CONV_SHARE

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
    conv = depthwise = matmul = conv_nodes = matmul_nodes = 0
    for node in model.graph.node:
        conv_nodes += node.op_type == "Conv"
        matmul_nodes += node.op_type in ("MatMul", "Gemm")
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
    return WeightProfile(conv, depthwise, matmul, conv_nodes, matmul_nodes)


@dataclass(frozen=True)
class Candidate:
    name: str
    speedup: float
    cosine: float
    size_ratio: float = 1.0  # FP32 bytes / candidate bytes
    quality: float | None = None  # the task metric (core.compare.judge.judgment); None: cosine decides
    metric: str = "cosine_similarity_mean"
    floor: float = MIN_COSINE

    @property
    def score(self) -> float:
        return self.cosine if self.quality is None else self.quality


def pick(candidates: list[Candidate]) -> Candidate:
    """Among the candidates at least MIN_SIZE_RATIO smaller (an "INT8" no smaller than FP32 is not one), in order:
    the fastest within the speed floor that keeps the task metric's floor; the most accurate within the speed floor
    and 0.03 below it; the most accurate of all (slower than FP32, but its outputs can be trusted more; the
    verdict says it is slower), speed breaking ties; else the best product of speed (capped at 1) and score."""
    pool = [c for c in candidates if c.size_ratio >= MIN_SIZE_RATIO] or candidates
    tiers = (
        ([c for c in pool if c.speedup >= MIN_SPEEDUP and c.score >= c.floor], lambda c: (c.speedup, c.score)),
        ([c for c in pool if c.speedup >= MIN_SPEEDUP and c.score >= c.floor - 0.03], lambda c: (c.score, c.speedup)),
        ([c for c in pool if c.score >= c.floor], lambda c: (c.speedup, c.score)),
        (pool, lambda c: min(c.speedup, 1.0) * c.score),
    )
    for tier, key in tiers:
        if tier:
            return max(tier, key=key)
    raise ValueError("no candidates")


def quantize_int8(src: Path, dst: Path, options: CompareOptions, feeds: Feeds,
                  probe: ProbeFactory | None = None) -> QuantizedModel:
    """The `int8` precision: dynamic, static (conv) or the measured best of both (options.int8.method).

    `probe` measures each built candidate against FP32 (core.compare.judge.candidates.CandidateProbe); the caller
    hands it in because judging is a later stage than building. Without one, a convolutional model cannot be
    searched and gets static QDQ on its weighted layers (the first candidate)."""
    from core.compare.techniques.int8_conv import quantize_int8_conv
    from core.compare.techniques.int8_dynamic import quantize_int8_dynamic
    from core.compare.techniques.int8_weights import quantize_int8_weights

    config = options.int8
    if config.method == "dynamic":  # needs no inputs
        return _tag(quantize_int8_dynamic(src, dst, config), "dynamic")
    calibration = (feeds.calibration or feeds.per_input)[:CALIBRATION_FEEDS]
    if config.method == "static":
        return quantize_int8_conv(src, dst, calibration, per_channel=config.per_channel)
    profile = weight_profile(load_model_checked(src))
    if not profile.convolutional:
        return _tag(quantize_int8_dynamic(src, dst, config), "dynamic")
    if probe is None:  # nothing to measure candidates with: the first candidate, static QDQ on the weighted layers
        return quantize_int8_conv(src, dst, calibration, per_channel=config.per_channel)

    builders = {"static QDQ": lambda d: quantize_int8_conv(src, d, calibration, per_channel=config.per_channel)}
    if profile.depthwise_conv and profile.conv:
        builders["static QDQ, depthwise in float"] = lambda d: quantize_int8_conv(
            src, d, calibration, per_channel=config.per_channel, keep_depthwise=True)
    builders["static QDQ, every op, head in float"] = lambda d: quantize_int8_conv(
        src, d, calibration, per_channel=config.per_channel, all_ops=True)
    builders["weight-only int8, float compute"] = lambda d: quantize_int8_weights(src, d)
    if profile.matmul:
        ops = ["MatMul", "Attention"] + (["Gather"] if config.quantize_embeddings else [])
        builders["dynamic on MatMul, Conv in float"] = lambda d: _tag(
            quantize_int8_dynamic(src, d, config, op_types=ops), "dynamic-matmul")
    with tempfile.TemporaryDirectory(prefix="quantlens-int8-", dir=Path(dst).parent) as tmp:
        search = search_candidates(src, builders, Path(tmp), feeds, options, probe)
        if not search.measured:  # every recipe failed: weight INT8 through quantize_dynamic still works on most
            try:
                fallback = _tag(quantize_int8_dynamic(src, dst, config), "dynamic")
            except QuantLensError as exc:
                raise QuantLensError("quantize_failed", "INT8 failed for every method: "
                                     + "; ".join(search.failures + [f"dynamic: {exc.message}"])) from None
            notes = list(fallback.notes) + [f"Not built: {f}" for f in search.failures] + [
                "Every static/convolution recipe failed, so INT8 fell back to dynamic INT8 (quantize_dynamic)."]
            return QuantizedModel("int8", Path(dst), fallback.size_bytes, fallback.seconds,
                                  fallback.settings | {"method": "auto", "chosen": "dynamic (fallback)"}, tuple(notes))
        best = pick(search.measured)
        chosen = search.built[best.name]
        shutil.copyfile(chosen.path, dst)
    measured = search.measured
    table = "; ".join(f"{c.name}: {c.size_ratio:.1f}x smaller, {c.speedup:.2f}x speed, "
                      + (f"{c.metric} {c.quality:.3f}, " if c.quality is not None else "") + f"cosine {c.cosine:.4f}"
                      for c in measured)
    notes = list(chosen.notes) + [
        f"Convolutional model: INT8 method chosen by measuring against FP32 on your inputs, ranked by "
        f"{measured[0].metric} ({table}); kept: {best.name}."]
    notes += [f"Not built: {f}" for f in search.failures]
    if search.skipped:
        notes.append(f"Skipped ({search.why_skipped}): {', '.join(search.skipped)}.")
    settings = chosen.settings | {"method": "auto", "candidates": [asdict(c) for c in measured], "chosen": best.name,
                                  "skipped": list(search.skipped), "search_seconds": round(search.seconds, 2)}
    return QuantizedModel("int8", Path(dst), chosen.size_bytes, sum(q.seconds for q in search.built.values()), settings,
                          tuple(notes))


@dataclass
class Search:
    built: dict[str, QuantizedModel]
    measured: list[Candidate]
    failures: list[str]
    skipped: list[str]
    why_skipped: str
    seconds: float


def search_candidates(src: Path, builders: dict, tmp: Path, feeds: Feeds, options: CompareOptions,
                      probe_factory: ProbeFactory, budget_s: float = SEARCH_BUDGET_S) -> Search:
    """Build and measure each recipe in turn: a failing one is skipped; past `budget_s`, or once one is clearly
    best (CLEARLY_BEST), the rest are not started and are reported as skipped."""
    import time

    started = time.perf_counter()
    probe = probe_factory(src, feeds.per_input[:MEASURE_FEEDS], feeds.latency, options)
    built: dict[str, QuantizedModel] = {}
    measured: list[Candidate] = []
    failures: list[str] = []
    names = list(builders)
    for i, name in enumerate(names):
        if time.perf_counter() - started > budget_s and measured:
            return Search(built, measured, failures, names[i:], f"time budget of {budget_s:.0f} s spent",
                          time.perf_counter() - started)
        try:
            q = builders[name](tmp / f"candidate{i}.onnx")
            candidate = probe.measure(name, q)
        except Exception as exc:  # noqa: BLE001 - any failure (ORT Fail, InvalidGraph, our errors): next recipe
            failures.append(f"{name}: {getattr(exc, 'message', None) or _short(exc)}")
            continue
        built[name] = q
        measured.append(candidate)
        value, speed, size = CLEARLY_BEST
        if candidate.score >= max(value, candidate.floor) and candidate.speedup >= speed and candidate.size_ratio >= size:
            return Search(built, measured, failures, names[i + 1:], f"{name} was clearly best",
                          time.perf_counter() - started)
    return Search(built, measured, failures, [], "", time.perf_counter() - started)


def _short(exc: Exception) -> str:
    from core.compare.common.onnx_io import short_error

    return short_error(exc)


def _tag(q: QuantizedModel, method: str) -> QuantizedModel:
    return QuantizedModel(q.precision, q.path, q.size_bytes, q.seconds, q.settings | {"method_used": method}, q.notes)
