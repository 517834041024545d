"""One verdict per variant: should a user deploy it instead of FP32?

Why: a table of ratios lets an "INT8" that is 0.2x FP32's speed and visibly worse pass for a quantized model
worth having. The verdict reads the variant's measured numbers (size, p50 speed-up, quality against the
reference) and says in one sentence whether it beats FP32, and when it does not, recommends FP32. Quality is the
variant's Judgment (core.compare.judge.judgment): the task's own metric, the same one the recommendation and the page use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.compare.judge.judgment import Judgment, judge

if TYPE_CHECKING:  # the report is written after the judgment: its types are named here, never imported
    from core.compare.report import VariantResult

MIN_SPEEDUP = 0.9  # below this, "slower than FP32" (p50, paired and interleaved)
MIN_COSINE = 0.98  # below this output cosine, "less accurate"
MIN_SIZE_RATIO = 1.1  # below this, "no smaller"
TIE_PROBABILITY = 0.02  # a label flip while no probability moved this much is a tie between labels, not damage

RECOMMENDED = "recommended"
USE_FP32 = "use_fp32"
SMALLER_BUT_SLOWER = "smaller_but_slower"
NO_SMALLER = "no_smaller"
QUALITY_DROP = "quality_drop"
BASELINE = "baseline"


def quality_loss(quality: dict, kind: str | None = None) -> str | None:
    """The reason this variant counts as less accurate on `kind`'s own metric, or None (kind None: labels where the
    quality has a top-1, else tensors)."""
    if kind is None:
        kind = "class-logits" if "top1_agreement" in quality else "tensors"
    return judge(quality, kind).reason or None


def judgment_of(result: VariantResult, kind: str) -> Judgment:
    return judge(result.quality, kind)


def verdict_for(result: VariantResult, kind: str = "tensors") -> tuple[str, str]:
    """(code, sentence) for one variant, from its own measured numbers and its Judgment on `kind`."""
    if result.precision == "fp32":
        return BASELINE, "The baseline every ratio is measured against."
    worse = quality_loss(result.quality, kind)
    # A slowdown the machine cannot tell from no change (paired rounds, core.compare.measure.paired_timing) is not
    # called "slower": FP16 at 0.89x with a spread of 0.30-1.51 was, next to a table saying "within noise".
    within_noise = bool((result.speedup_paired or {}).get("within_noise"))
    slower = bool(result.speedup_vs_fp32) and result.speedup_vs_fp32 < MIN_SPEEDUP and not within_noise
    if result.size_ratio_vs_fp32 < MIN_SIZE_RATIO:
        return NO_SMALLER, (f"No smaller than FP32 ({result.size_ratio_vs_fp32:.2f}x): this precision found nothing "
                            "in the model to store in fewer bits; keep FP32." + (f" Its quality drops too ({worse})."
                                                                                   if worse else " Quality kept."))
    if slower and worse:
        return USE_FP32, (f"Slower ({result.speedup_vs_fp32:.2f}x FP32's speed) and less accurate ({worse}) than "
                          "FP32: keep FP32 for this model.")
    if slower:
        kept = judge(result.quality, kind)
        return SMALLER_BUT_SLOWER, (f"{result.size_ratio_vs_fp32:.1f}x smaller but slower ({result.speedup_vs_fp32:.2f}x "
                                    "FP32's speed): worth it only where memory or disk is what you lack; quality kept "
                                    f"({kept.words} {_shown(kept)}).")
    if worse:
        return QUALITY_DROP, (f"{result.size_ratio_vs_fp32:.1f}x smaller and no slower, but quality drops ({worse}): "
                              "check the samples on your own data before using it.")
    kept = judge(result.quality, kind)
    speed = ("the same speed within this machine's noise" if within_noise
             else f"{result.speedup_vs_fp32:.2f}x FP32's speed")
    return RECOMMENDED, (f"{result.size_ratio_vs_fp32:.1f}x smaller, {speed}, "
                         f"quality kept ({kept.words} {_shown(kept)}).")


def _shown(j: Judgment) -> str:
    return "n/a" if j.value is None else (f"{j.value:.4f}" if "cosine" in j.metric else f"{j.value:.0%}")


def apply_verdicts(results: list[VariantResult], kind: str = "tensors") -> list[str]:
    """Set each result's judgment and verdict; return warnings for the variants a user should not take."""
    warnings = []
    for result in results:
        result.judgment = judge(result.quality, kind).to_dict()
        result.verdict, result.verdict_note = verdict_for(result, kind)
        if result.verdict == USE_FP32:
            warnings.append(f"{result.label} is slower and less accurate than FP32 on this model: FP32 is recommended.")
    return warnings
