"""One judgment per variant, from the task's own metric: the single source of "quality kept" or "quality drops".

Why: the verdict read cosine and top-1 only, the recommendation read a per-task bar, and the page's tab showed the
kind's own headline. On a CRNN text recognizer that let the page say "text kept 20%" beside "Verdict: quality
kept". Now the metric that decides is picked once per task or output kind (`primary_metric`), every variant is
judged on it (`judge`), and the verdict, the recommendation and the tab text all read that Judgment.
Cosine decides only where no task metric fits (a raw tensor output), and says it is a fallback.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Metric:
    key: str  # the quality key the judgment reads (higher is better, 1.0 = identical to the reference)
    words: str  # what it measures, for a user
    floor: float  # below this the variant's quality drops
    fallback: bool = False  # True: no task metric fits, cosine decides


COSINE = Metric("cosine_similarity_mean", "output cosine", 0.98, fallback=True)
LABELS_KEPT = Metric("top1_agreement", "labels kept", 0.9)

# task (HF models) or output kind (ONNX uploads) -> the metric that judges it
METRICS: dict[str, Metric] = {
    "feature-extraction": Metric("cosine_similarity_mean", "mean cosine similarity", 0.98),
    "embedding": Metric("neighbour_top1_agreement", "share of nearest neighbours kept", 0.9),
    "text-classification": LABELS_KEPT,
    "image-classification": LABELS_KEPT,
    "audio-classification": LABELS_KEPT,
    "class-logits": LABELS_KEPT,
    "token-classification": Metric("top1_agreement", "share of token labels kept", 0.9),
    "text-generation": Metric("top1_agreement", "share of next tokens kept", 0.9),
    "detection-boxes": Metric("detection_f1_mean", "matched-box F1 (IoU 0.5)", 0.9),
    "detection-map": Metric("mask_iou_mean", "mask IoU", 0.9),
    "ctc-sequence": Metric("sequence_match", "share of texts kept", 0.9),
    "decision-score": Metric("decision_agreement", "share of decisions kept", 0.9),
    "regression": Metric("shift_kept", "1 - shift / the values' scale", 0.95),
    "tensors": COSINE,
}
TIE_PROBABILITY = 0.02  # a label flip while no probability moved this much is a tie between labels, not damage
MIN_NEIGHBOURS = 0.9  # embeddings: at least this share of nearest neighbours kept too
MAX_KL = 0.1  # causal LMs: a mean next-token KL above this drops quality even when the top-1 survives


@dataclass(frozen=True)
class Judgment:
    kind: str  # the task or output kind judged
    metric: str
    words: str
    value: float | None
    floor: float
    kept: bool  # quality kept on the task's own metric
    fallback: bool
    reason: str  # why quality drops ("" when kept)
    sentence: str  # the one line the verdict, the recommendation and the page's tab all show

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def judged_kind(task: str, output_kind: str | None) -> str:
    """The key of METRICS that judges a model: its output kind for ONNX uploads, else its task."""
    if task == "other":
        return output_kind if output_kind in METRICS else "tensors"
    return task if task in METRICS else "tensors"


def primary_metric(kind: str) -> Metric:
    return METRICS.get(kind, COSINE)


def judge(quality: dict, kind: str) -> Judgment:
    """Whether the variant keeps quality on `kind`'s own metric (secondary checks: ties, neighbours, KL)."""
    metric = primary_metric(kind)
    value = quality.get(metric.key)
    if value is None and metric.key == "neighbour_top1_agreement":  # fewer than 3 inputs: no neighbours to keep
        metric = Metric("cosine_similarity_mean", "mean cosine similarity", 0.98)
        value = quality.get(metric.key)
    if value is None:
        metric, value = COSINE, quality.get(COSINE.key)
    value = None if value is None else float(value)
    reason = ""
    if value is None:
        reason = ""  # nothing to judge (e.g. integer outputs compared exactly): judged by the other numbers
    elif value < metric.floor:
        tie = metric is LABELS_KEPT and float(quality.get("probability_shift_max", 1.0)) < TIE_PROBABILITY
        reason = "" if tie else f"{metric.words} {_fmt(metric, value)}"
    if not reason and kind == "feature-extraction":
        neighbours = quality.get("neighbour_top1_agreement")
        if isinstance(neighbours, float) and neighbours < MIN_NEIGHBOURS:
            reason = f"share of nearest neighbours kept {neighbours:.0%}"
    if not reason and kind == "text-generation":
        kl = quality.get("kl_divergence_mean")
        if isinstance(kl, float) and kl > MAX_KL:
            reason = f"next-token KL {kl:.3f}"
    kept = not reason
    shown = "n/a" if value is None else _fmt(metric, value)
    label = f"{metric.words} {shown}" + (" (cosine fallback: no task metric fits this output)" if metric.fallback else "")
    sentence = f"{label}: " + ("quality kept" if kept else f"quality drops (floor {_fmt(metric, metric.floor)})")
    return Judgment(kind, metric.key, metric.words, value, metric.floor, kept, metric.fallback, reason, sentence)


def _fmt(metric: Metric, value: float) -> str:
    return f"{value:.4f}" if "cosine" in metric.key else f"{value:.0%}"
