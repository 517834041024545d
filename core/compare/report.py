"""The comparison's result as typed data: what the CLI prints, the page draws and report.json holds."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.compare.common.settings import LABELS
from core.compare.measure.generation_stats import GenerationStats

REPORT_NAME = "report.json"


SCHEMA_VERSION = 1


# The three numbers that summarise quality for each task: (column title, quality key, format).
QUALITY_HEADLINES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "feature-extraction": (("cosine", "cosine_similarity_mean", "{:.4f}"), ("worst cos", "cosine_similarity_min", "{:.4f}"),
                           ("NN kept", "neighbour_top1_agreement", "{:.0%}")),
    "text-classification": (("labels kept", "top1_agreement", "{:.0%}"), ("max p shift", "probability_shift_max", "{:.3f}"),
                            ("cosine", "cosine_similarity_mean", "{:.4f}")),
    "text-generation": (("top-1 kept", "top1_agreement", "{:.0%}"), ("KL mean", "kl_divergence_mean", "{:.4f}"),
                        ("KL p99", "kl_divergence_p99", "{:.4f}"), ("mean Δp top", "delta_p_top_mean", "{:+.4f}")),
    "image-classification": (("labels kept", "top1_agreement", "{:.0%}"), ("top-5 overlap", "top5_overlap", "{:.0%}"),
                             ("max p shift", "probability_shift_max", "{:.3f}")),
    "audio-classification": (("labels kept", "top1_agreement", "{:.0%}"), ("top-5 overlap", "top5_overlap", "{:.0%}"),
                             ("max p shift", "probability_shift_max", "{:.3f}")),
    "token-classification": (("token labels kept", "top1_agreement", "{:.0%}"), ("top-5 overlap", "top5_overlap", "{:.0%}"),
                             ("cosine", "cosine_similarity_mean", "{:.4f}")),
    "other": (("max abs err", "max_abs_error", "{:.3g}"), ("mean rel err", "mean_rel_error", "{:.2%}"),
              ("cosine", "cosine_similarity_mean", "{:.4f}")),
}


def quality_headlines(task: str, output_kind: str | None = None) -> tuple[tuple[str, str, str], ...]:
    if output_kind and output_kind != "auto" and task == "other":
        from core.compare.measure.output_kinds import HEADLINES

        return HEADLINES.get(output_kind, QUALITY_HEADLINES["other"])
    return QUALITY_HEADLINES.get(task, QUALITY_HEADLINES["other"])


@dataclass
class VariantResult:
    precision: str
    label: str
    file_name: str
    size_bytes: int
    size_ratio_vs_fp32: float  # fp32 bytes / this variant's bytes (how many times smaller)
    predicted_size_bytes: int | None  # file size predicted from the FP32 graph and the stored format (see below)
    load_ms: float
    peak_memory_bytes: int
    memory_method: str
    latency_ms_p50: float
    latency_ms_p95: float
    speedup_vs_fp32: float  # fp32 p50 / this p50
    quantize_seconds: float
    is_reference: bool
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    quality: dict[str, Any] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    # parameters x bits (the calculator's ideal figure); predicted_size_bytes models the stored format
    predicted_ideal_bytes: int | None = None
    generation: GenerationStats | None = None  # causal LMs only
    # should a user deploy this instead of FP32 (core.compare.judge.verdict): a stable code and one sentence
    verdict: str = ""
    verdict_note: str = ""
    # "ok", or "unchanged" when the quantizer converted no weight (its size and speed are FP32's, not a gain)
    status: str = "ok"
    # FP32 time / this time per interleaved round: median, p10, p90, rounds, within_noise (see paired_timing)
    speedup_paired: dict[str, Any] | None = None
    # the task's own metric on this variant (core.compare.judge.judgment): kind, metric, words, value, floor, kept,
    # fallback, reason, sentence; the verdict, the recommendation and the page all read it
    judgment: dict[str, Any] | None = None


@dataclass
class ComparisonReport:
    model: dict[str, Any]
    reference: str
    inputs: dict[str, Any]
    results: list[VariantResult]
    options: dict[str, Any]
    environment: dict[str, Any]
    timings: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION
    # precisions that could not be made or run: {precision, label, stage, code, message} (variant_status)
    failed: list[dict[str, Any]] = field(default_factory=list)
    # how far FP32 timed against itself strays from 1.00x; paired speed-ups inside it are marked within noise
    latency_noise_floor: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ComparisonReport:
        results = [VariantResult(**r) for r in data["results"]]
        for r in results:
            if isinstance(r.generation, dict):
                r.generation = GenerationStats(**r.generation)
        return cls(**{**data, "results": results})

    def failure(self, precision: str) -> dict[str, Any] | None:
        return next((f for f in self.failed if f.get("precision") == precision), None)

    def result(self, precision: str) -> VariantResult:
        for r in self.results:
            if r.precision == precision:
                return r
        raise KeyError(precision)


def variant_label(precision: str, settings: dict) -> str:
    """The name a user sees: INT4 with some layers stored at 8 bits says so, rather than passing for pure 4-bit."""
    bits = settings.get("bits") or {}
    if precision == "int4" and bits and not bits.get("layers_4bit") and bits.get("layers_8bit"):
        return "INT8 weight-only (no layer at 4 bits)"  # the file holds no 4-bit weight: never call it INT4
    if precision == "int4" and settings.get("eight_bit_layers"):
        return "INT4 weight-only (mixed 4/8-bit)"
    if precision == "int8" and settings.get("method_used") == "static":
        return "INT8 static (QDQ, per-channel)" if settings.get("per_channel", True) else "INT8 static (QDQ)"
    if precision == "int8" and settings.get("method_used") == "weights":
        return "INT8 weight-only (float compute)"
    if precision == "int8" and settings.get("method_used") == "dynamic-matmul":
        return "INT8 dynamic (MatMul only)"
    return LABELS[precision]


def write_report(report: ComparisonReport, out_dir: Path) -> Path:
    from core.jobs.atomic_files import write_json_atomic

    # Atomic: the CLI's parent (or a user's script watching --out) never reads a half-written report.
    return write_json_atomic(Path(out_dir) / REPORT_NAME, report.to_dict(), indent=2, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_json_dict(report: ComparisonReport) -> dict[str, Any]:
    """report.to_dict() with numpy scalars turned into Python numbers (what json.dumps accepts)."""
    import json

    return json.loads(json.dumps(report.to_dict(), default=_json_default))
