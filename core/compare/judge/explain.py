"""What the measured comparison means for the user: a recommendation, metrics in plain words, and why a variant
can be slower than FP32.

A results table leaves the visitor to weigh size, speed and five quality numbers; most want "which one should I
ship?". `recommend` answers it from the measured report and a quality bar the user sets: the smallest variant that
keeps quality at or above the bar (speed breaks ties). Pure Python over the report's dataclasses; no onnx import,
so the page can call it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.compare.common.settings import MINILM_INT8_COSINE  # noqa: F401  (re-exported: the figure's one source)
from core.errors import QuantLensError

if TYPE_CHECKING:  # the report is written after the judgment: its types are named here, never imported
    from core.compare.report import ComparisonReport, VariantResult

OLIVE_RULE = ("How the pick is made (Olive's rule): a variant that misses your goal is dropped (its {words} below "
              "the bar, or its own verdict says quality drops); of the rest only the Pareto front is kept (no other "
              "variant is at once smaller, faster and at least as accurate); the front is ranked by priority: "
              "smallest file first, then speed.")


@dataclass(frozen=True)
class Recommendation:
    precision: str | None  # None: no variant meets the bar
    label: str | None
    metric: str
    metric_words: str
    threshold: float
    sentence: str
    passing: tuple[str, ...]  # labels of every variant at or above the bar
    failing: tuple[str, ...]


def bar_metric(task: str, output_kind: str | None = None) -> tuple[str, str]:
    """The metric the quality bar applies to: the same one every variant's Judgment reads (core.compare.judge.judgment)."""
    from core.compare.judge.judgment import judged_kind, primary_metric

    metric = primary_metric(judged_kind(task, output_kind))
    return metric.key, metric.words


def _score(r: VariantResult, metric: str) -> float | None:
    if r.precision == "fp32":
        return 1.0  # the original: every variant is judged against it (or against FP16, itself judged against FP32)
    judged = r.judgment or {}
    value = judged.get("value") if judged.get("metric") == metric else r.quality.get(metric)
    return None if value is None else float(value)


def _goal_missed(r: VariantResult) -> bool:
    """The variant's own verdict rules it out: its quality drops, or it is FP32's file unchanged."""
    if r.precision == "fp32":
        return False
    return bool(r.judgment and not r.judgment.get("kept", True)) or r.status == "unchanged" \
        or r.verdict in ("quality_drop", "use_fp32")


def pareto_front(rows: list[tuple[VariantResult, float]]) -> list[tuple[VariantResult, float]]:
    """Rows no other row beats at once on size (smaller), speed (faster) and quality (higher)."""
    def dominated(a, b) -> bool:  # b dominates a
        ra, sa = a
        rb, sb = b
        no_worse = rb.size_bytes <= ra.size_bytes and rb.speedup_vs_fp32 >= ra.speedup_vs_fp32 and sb >= sa
        better = rb.size_bytes < ra.size_bytes or rb.speedup_vs_fp32 > ra.speedup_vs_fp32 or sb > sa
        return no_worse and better
    return [a for a in rows if not any(dominated(a, b) for b in rows if b is not a)]


def recommend(report: ComparisonReport, threshold: float) -> Recommendation:
    """Olive's rule (OLIVE_RULE): drop what misses the bar or its verdict, keep the Pareto front, smallest first."""
    if not 0.0 <= threshold <= 1.0:
        raise QuantLensError("invalid_threshold", f"The quality bar must be between 0 and 1, got {threshold}.")
    metric, words = bar_metric(str(report.model.get("task", "other")), report.model.get("output_kind"))
    scored = [(r, _score(r, metric)) for r in report.results]
    passing = [(r, s) for r, s in scored if s is not None and s >= threshold and not _goal_missed(r)]
    failing = tuple(r.label for r, s in scored if s is None or s < threshold or _goal_missed(r))
    if not passing:
        return Recommendation(None, None, metric, words, threshold,
                              f"No variant keeps the {words} at or above {threshold:.3f}: keep the "
                              f"{report.reference.upper()} model, or lower the bar.", (), failing)
    best, score = min(pareto_front(passing), key=lambda rs: (rs[0].size_bytes, -rs[0].speedup_vs_fp32))
    speed = ("the same speed as FP32 within this machine's noise" if _within_noise(best)
             else f"{best.speedup_vs_fp32:.2f}x as fast as FP32" if best.speedup_vs_fp32 >= 1
             else f"{1 / best.speedup_vs_fp32:.2f}x slower than FP32")
    against = "FP32" if best.precision == report.reference else report.reference.upper()
    sentence = (f"Ship {best.label}: {best.size_bytes / 1e6:.1f} MB ({best.size_ratio_vs_fp32:.1f}x smaller than FP32), "
                f"{speed}, {words} {score:.4f} against {against} (bar {threshold:.3f}).")
    if best.precision == "fp32":
        sentence = (f"Keep FP32: no smaller variant keeps the {words} at or above {threshold:.3f} with its own verdict "
                    "saying quality is kept.")
    return Recommendation(best.precision, best.label, metric, words, threshold, sentence,
                          tuple(r.label for r, _ in passing), failing)


def metric_in_words(key: str, value: float) -> str | None:
    """One sentence on what a quality number means for someone using the model's outputs."""
    if key == "cosine_similarity_mean":
        if value >= 0.999:
            verdict = "practically the same vectors: no search or clustering result will notice"
        elif value >= 0.99:
            verdict = "almost the same direction: nearest-neighbour rankings rarely change"
        elif value >= 0.95:
            verdict = "close, but neighbours with similar scores start to swap places"
        else:
            verdict = "noticeably different outputs: check the per-input table before shipping"
        return (f"Cosine {value:.4f}: 1.0 means each output vector points exactly where the reference's does; "
                f"this is {verdict}.")
    if key == "cosine_similarity_min":
        return f"Worst cosine {value:.4f}: the single input whose output moved most."
    if key in ("top1_agreement", "neighbour_top1_agreement"):
        what = "nearest neighbour" if key.startswith("neighbour") else "top answer"
        return f"{value:.0%} of inputs keep the same {what} as the reference."
    if key == "kl_divergence_mean":
        return (f"KL {value:.4f}: how far the next-token probabilities moved (0 = identical; below 0.01 is hard to "
                "notice in generated text).")
    if key == "detection_f1_mean":
        return (f"Boxes F1 {value:.0%}: the variant's detections matched to the reference's (same class, IoU 0.5 or "
                "more); 100% means every box is still found and no new one appears.")
    if key == "sequence_match":
        return f"{value:.0%} of inputs decode to exactly the same text (or sequence) as the reference."
    if key == "mask_iou_mean":
        return f"Mask IoU {value:.3f}: overlap of the thresholded maps (1.0 = the same regions found)."
    if key == "decision_agreement":
        return f"{value:.0%} of inputs keep the same decision (score above or below the threshold)."
    if key == "relative_shift":
        return f"The outputs moved by {value:.2%} of their own scale on average."
    if key == "kl_divergence_p99":
        return (f"KL 99th percentile {value:.4f}: the worst 1% of token positions (llama.cpp's --kl-divergence "
                "report shows the same percentiles); a long tail here means rare but real changes in generated text.")
    if key == "delta_p_top_mean":
        return (f"Mean Δp {value:+.4f}: how much the variant's probability of the reference's top token moved "
                "(negative: less sure of the same answer).")
    if key == "probability_shift_max":
        return f"The largest change in any class probability was {value:.3f}."
    return None


def _within_noise(r: VariantResult) -> bool:
    """The paired rounds could not tell this variant's speed from FP32's (core.compare.measure.paired_timing)."""
    return bool((r.speedup_paired or {}).get("within_noise"))


def slower_than_fp32(r: VariantResult, parameters: int | None) -> str | None:
    """Why a variant measured slower than FP32 on this CPU, when it did; None when it is not slower."""
    if r.is_reference or r.precision == "fp32" or r.speedup_vs_fp32 >= 1 or _within_noise(r):
        return None
    small = parameters is not None and parameters < 500_000_000
    size = f" ({parameters / 1e6:.0f}M parameters)" if parameters else ""
    if r.precision == "fp16":
        return ("FP16 is slower on a CPU: ONNX Runtime's CPU kernels compute in FP32, so the FP16 model converts "
                "back and forth around most operations. FP16 pays off on GPUs; on a CPU it only halves the file.")
    if r.precision.startswith("int4"):
        why = (f"on a model this small{size} the matrices fit in the CPU cache anyway, so unpacking 4-bit blocks "
               "costs more than the memory it saves" if small else "unpacking 4-bit blocks costs time on every call")
        return f"INT4 is slower here: {why}. INT4 gains speed on models of billions of parameters, or on GPUs."
    if r.precision.startswith("int8"):
        return ("INT8 is slower here: dynamic INT8 measures and rounds the activations on every call, which on short "
                f"inputs or a small model{size} costs more than the integer arithmetic saves.")
    return f"{r.label} measured slower than FP32 on this CPU ({r.speedup_vs_fp32:.2f}x)."
