"""Speed-ups from paired rounds, with their spread and the noise floor of the machine they ran on.

Why: two p50s taken from separate runs disagree with paired timing on a busy machine (ViT FP16 reported 1.65x
from p50s vs 0.97x paired). Here every round times each variant once (interleaved), so the ratio
FP32 time / variant time within one round shares that round's machine load; the median of those ratios is the
speed-up, and its 10th-90th percentile range is its spread. The FP32 file is also timed a second time in every
round: FP32 against itself should be 1.00x, and how far its ratios stray is the noise floor. A speed-up whose
distance from 1.00x is inside the noise floor is marked as such — the machine cannot tell it from no change.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

SELF_KEY = "fp32 (timed again)"
MIN_NOISE_FLOOR = 0.02  # below 2% nobody should act on a difference, whatever a quiet machine says


@dataclass(frozen=True)
class PairedRatio:
    """FP32 time / variant time per round: the median and its 10th-90th percentile spread."""

    median: float
    p10: float
    p90: float
    rounds: int
    within_noise: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def _percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), without needing numpy here."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def paired_ratio(base_ms: list[float], variant_ms: list[float]) -> PairedRatio:
    """Per-round ratios base/variant of two equally long, round-aligned timing lists."""
    if len(base_ms) != len(variant_ms):
        raise ValueError("paired timings need one time per round for both variants")
    ratios = [b / v for b, v in zip(base_ms, variant_ms, strict=True) if v > 0]
    if not ratios:
        return PairedRatio(0.0, 0.0, 0.0, 0)
    return PairedRatio(_percentile(ratios, 50), _percentile(ratios, 10), _percentile(ratios, 90), len(ratios))


def noise_floor(self_ratio: PairedRatio) -> float:
    """How far from 1.00x the same file timed against itself strays (the larger side of its spread)."""
    return max(MIN_NOISE_FLOOR, abs(self_ratio.median - 1.0), abs(self_ratio.p90 - 1.0), abs(1.0 - self_ratio.p10))


def mark_noise(ratio: PairedRatio, floor: float) -> PairedRatio:
    """The same ratio, marked when its distance from 1.00x is no larger than the noise floor."""
    return PairedRatio(ratio.median, ratio.p10, ratio.p90, ratio.rounds, abs(ratio.median - 1.0) <= floor)


def describe(ratio: PairedRatio) -> str:
    """'1.42x (1.31-1.55)', or 'same speed (within noise)' when the machine cannot tell the difference."""
    if ratio.rounds == 0:
        return "-"
    spread = f"{ratio.median:.2f}x ({ratio.p10:.2f}-{ratio.p90:.2f})"
    return f"{spread}, within noise" if ratio.within_noise else spread
