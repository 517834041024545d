"""The quality numbers on hand-made outputs, where the right answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from core.compare.common.settings import CompareOptions
from core.compare.measure.evaluate import (
    causal_lm_quality,
    classification_quality,
    embedding_quality,
    pooled_embeddings,
    spearman,
    tensor_error_quality,
)
from core.compare.report import ComparisonReport, VariantResult
from core.errors import QuantLensError


def test_identical_embeddings_score_perfectly():
    x = np.random.default_rng(0).standard_normal((5, 8))
    metrics, samples = embedding_quality(x, x.copy(), [f"t{i}" for i in range(5)])
    assert metrics["cosine_similarity_mean"] == pytest.approx(1.0)
    assert metrics["neighbour_top1_agreement"] == 1.0 and metrics["similarity_rank_spearman"] == pytest.approx(1.0)
    assert all(s["neighbour_kept"] for s in samples)


def test_a_swapped_neighbour_is_reported_worst_first():
    ref = np.array([[1, 0.0], [0.9, 0.1], [0, 1.0], [0.1, 0.9]])
    var = ref.copy()
    var[1] = [0.1, 0.9]  # text 1 moves next to texts 2/3
    metrics, samples = embedding_quality(ref, var, ["a", "b", "c", "d"])
    assert metrics["neighbour_top1_agreement"] < 1.0
    assert samples[0]["neighbour_kept"] is False


def test_mean_pooling_ignores_padding():
    tokens = np.array([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    pooled = pooled_embeddings([[tokens]], ["last_hidden_state"], [np.array([[1, 1, 0]])])
    np.testing.assert_allclose(pooled[0], [2.0, 2.0])


def test_classifier_label_flip_and_probability_shift():
    ref = [np.array([[2.0, 0.0]]), np.array([[0.0, 3.0]])]
    var = [np.array([[2.0, 0.0]]), np.array([[3.0, 0.0]])]
    metrics, samples = classification_quality(ref, var, ["x", "y"], {0: "neg", 1: "pos"})
    assert metrics["top1_agreement"] == 0.5 and metrics["probability_shift_max"] > 0.9
    assert samples[0]["input"] == "y" and samples[0]["reference"].startswith("pos")


def test_causal_lm_agreement_and_kl_are_zero_cost_for_identical_logits():
    logits = [np.random.default_rng(1).standard_normal((1, 4, 10))]
    metrics, _ = causal_lm_quality(logits, [logits[0].copy()], [np.ones((1, 4))], ["p"])
    assert metrics["top1_agreement"] == 1.0 and metrics["kl_divergence_mean"] == pytest.approx(0.0, abs=1e-12)


def test_tensor_errors_are_absolute_and_relative_to_the_reference_scale():
    ref = [[np.array([[1.0, -2.0, 4.0]], np.float32)]]
    var = [[np.array([[1.0, -2.0, 3.0]], np.float32)]]
    metrics, _ = tensor_error_quality(ref, var, ["y"], ["sample 1"])
    assert metrics["max_abs_error"] == pytest.approx(1.0) and metrics["max_rel_error"] == pytest.approx(0.25)
    assert metrics["per_output"]["y"]["mean_abs_error"] == pytest.approx(1 / 3)


def test_spearman_of_reversed_order_is_minus_one():
    assert spearman(np.arange(5.0), -np.arange(5.0)) == pytest.approx(-1.0)


def test_options_always_include_fp32_and_the_reference_and_round_trip():
    options = CompareOptions(precisions=("int4",), reference="fp16")
    assert options.precisions == ("fp32", "fp16", "int4")
    assert CompareOptions.from_dict(options.to_dict()) == options
    assert CompareOptions.from_dict({"precisions": "int8", "int4": {"block_size": 32}}).int4.block_size == 32


@pytest.mark.parametrize("data, code", [
    ({"precisions": ["int3"]}, "unknown_precision"),
    ({"reference": "int8"}, "bad_option"),
    ({"runs": 0}, "bad_option"),
    ({"int4": {"block_size": "big"}}, "bad_option"),
    ({"int4": {"nope": 1}}, "bad_option"),
    ({"surprise": True}, "bad_option"),
])
def test_bad_options_are_refused_with_a_code(data, code):
    with pytest.raises(QuantLensError) as err:
        CompareOptions.from_dict(data)
    assert err.value.code == code


def test_report_round_trips_through_a_dict():
    result = VariantResult("int8", "INT8", "model_int8.onnx", 10, 4.0, 9, 1.0, 100, "peak_rss_delta", 2.0, 3.0, 2.0,
                           0.5, False, quality={"cosine_similarity_mean": 0.99})
    report = ComparisonReport({"task": "other"}, "fp32", {"count": 1}, [result], {}, {}, {})
    again = ComparisonReport.from_dict(report.to_dict())
    assert again == report and again.result("int8").quality["cosine_similarity_mean"] == 0.99
