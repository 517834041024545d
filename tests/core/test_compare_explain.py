"""The compare page's advice from measured results (core.compare.judge.explain)."""

import pytest

from core.compare.judge.explain import metric_in_words, recommend, slower_than_fp32
from core.compare.pipeline import ComparisonReport, VariantResult
from core.errors import QuantLensError


def variant(precision, size_mb, speedup, cosine=None, reference=False):
    quality = {} if cosine is None else {"cosine_similarity_mean": cosine}
    return VariantResult(precision, precision.upper(), f"model_{precision}.onnx", int(size_mb * 1e6), 90 / size_mb,
                         None, 1.0, 10, "peak_rss_delta", 5 / speedup, 6 / speedup, speedup, 0.1, reference,
                         quality=quality)


REPORT = ComparisonReport(
    {"task": "feature-extraction", "parameters": 22_700_000}, "fp16", {"count": 8},
    [variant("fp32", 90, 1.0, 1.0), variant("fp16", 45, 0.7, 0.9999, reference=True), variant("int8", 23, 2.0, 0.992),
     variant("int4", 15, 0.8, 0.975)], {}, {}, {})


def test_the_smallest_variant_above_the_bar_is_recommended_with_its_size_and_speed():
    rec = recommend(REPORT, 0.99)
    assert rec.precision == "int8" and rec.failing == ("INT4",)
    assert rec.sentence.startswith("Ship INT8: 23.0 MB") and "2.00x as fast as FP32" in rec.sentence


def test_lowering_the_bar_lets_int4_through_and_says_it_is_slower():
    rec = recommend(REPORT, 0.97)
    assert rec.precision == "int4" and "1.25x slower than FP32" in rec.sentence


def test_a_bar_nothing_meets_keeps_fp32_not_an_fp16_reference_judged_against_itself_and_a_bad_bar_is_an_error():
    rec = recommend(REPORT, 1.0)  # FP16 is judged against FP32 (0.9999), not against itself: it is not perfect
    assert rec.precision == "fp32" and rec.sentence.startswith("Keep FP32")
    with pytest.raises(QuantLensError) as err:
        recommend(REPORT, 1.5)
    assert err.value.code == "invalid_threshold"


def test_a_cosine_is_explained_in_plain_words():
    assert "nearest-neighbour rankings rarely change" in metric_in_words("cosine_similarity_mean", 0.992)
    assert "swap places" in metric_in_words("cosine_similarity_mean", 0.965)


def test_variants_slower_than_fp32_get_a_reason_and_faster_ones_none():
    assert "CPU kernels compute in FP32" in slower_than_fp32(REPORT.results[1].__class__(
        **{**REPORT.results[1].__dict__, "is_reference": False}), 22_700_000)
    assert "on a model this small (23M parameters)" in slower_than_fp32(REPORT.results[3], 22_700_000)
    assert slower_than_fp32(REPORT.results[2], 22_700_000) is None


def test_a_slowdown_inside_the_machines_noise_is_not_called_slower_anywhere():
    """The demo once said "2.0x smaller but slower (0.89x)" for FP16 beside a table marking 0.30-1.51 "within noise"."""
    from dataclasses import replace

    from core.compare.judge.verdict import RECOMMENDED, verdict_for

    noisy = replace(variant("fp16", 45, 0.89, 0.9999), speedup_paired={"median": 0.89, "p10": 0.30, "p90": 1.51,
                                                                         "within_noise": True})
    code, sentence = verdict_for(noisy, "tensors")
    assert code == RECOMMENDED and "slower" not in sentence and "same speed" in sentence
    assert slower_than_fp32(noisy, 22_700_000) is None
    rec = recommend(ComparisonReport(REPORT.model, "fp32", {"count": 8}, [variant("fp32", 90, 1.0, 1.0), noisy],
                                     {}, {}, {}), 0.99)
    assert "slower" not in rec.sentence and "within this machine's noise" in rec.sentence
    measured_slower = replace(noisy, speedup_paired={"median": 0.6, "within_noise": False}, speedup_vs_fp32=0.6)
    assert "slower" in verdict_for(measured_slower, "tensors")[1]
