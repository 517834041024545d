"""Specification: speed-ups are paired per round with their spread, and differences inside the noise say so;
quality metrics fit what the user says an output is."""

from __future__ import annotations

import numpy as np
import pytest

from core.compare.measure.output_kinds import ctc_greedy_decode, edit_distance, mask_quality, score_quality
from core.compare.measure.paired_timing import describe, mark_noise, noise_floor, paired_ratio


def test_the_speed_up_is_the_median_of_per_round_ratios_not_a_ratio_of_medians():
    # a load spike in rounds 3-4 slows both variants alike: per-round ratios stay 2.0
    fp32 = [10.0, 10.0, 40.0, 40.0, 10.0]
    int8 = [5.0, 5.0, 20.0, 20.0, 5.0]
    ratio = paired_ratio(fp32, int8)
    assert ratio.median == pytest.approx(2.0) and ratio.p10 == pytest.approx(2.0) and ratio.rounds == 5


def test_the_same_file_against_itself_sets_the_noise_floor_and_marks_what_is_inside_it():
    self_ratio = paired_ratio([10, 11, 9, 10, 12], [11, 10, 10, 9, 10])
    floor = noise_floor(self_ratio)
    assert floor >= abs(self_ratio.p90 - 1) and floor >= 0.02
    inside = mark_noise(paired_ratio([10, 10, 10], [9.8, 10.1, 9.9]), floor)
    outside = mark_noise(paired_ratio([10, 10, 10], [5, 5, 5]), floor)
    assert inside.within_noise and not outside.within_noise
    assert "within noise" in describe(inside) and describe(outside) == "2.00x (2.00-2.00)"


def test_paired_timings_must_have_one_time_per_round_each():
    with pytest.raises(ValueError):
        paired_ratio([1.0, 2.0], [1.0])


def test_an_empty_detection_map_against_an_empty_one_is_a_perfect_mask_even_where_cosine_says_0():
    from core.compare.measure.evaluate import _cosine

    rng = np.random.default_rng(0)
    ref = rng.uniform(0, 1e-5, (1, 1, 32, 32)).astype(np.float32)  # no text: every pixel near zero
    var = rng.uniform(0, 1e-5, (1, 1, 32, 32)).astype(np.float32)
    metrics, _ = mask_quality([ref], [var], ["empty image"])
    assert metrics["mask_iou_mean"] == 1.0 and metrics["pixel_agreement_mean"] == 1.0
    assert _cosine(ref, var) < 0.9  # what the tensor metric would have said


def test_a_detection_map_that_loses_half_its_box_has_mask_iou_one_half():
    ref = np.zeros((1, 1, 10, 10), np.float32)
    ref[0, 0, 2:6, 2:6] = 0.9
    var = ref.copy()
    var[0, 0, 4:6, 2:6] = 0.1
    metrics, samples = mask_quality([ref], [var], ["box"])
    assert metrics["mask_iou_mean"] == pytest.approx(0.5) and samples[0]["mask_iou"] == pytest.approx(0.5)


def test_ctc_sequences_are_decoded_greedily_and_compared_as_strings():
    def one_hot(path, classes=5):
        return np.eye(classes, dtype=np.float32)[path][None]

    assert ctc_greedy_decode(one_hot([0, 1, 1, 0, 1, 2, 2, 0])[0]) == [1, 1, 2]
    assert edit_distance([1, 2, 3], [1, 3]) == 1
    from core.compare.measure.output_kinds import ctc_quality

    metrics, samples = ctc_quality([one_hot([1, 0, 2]), one_hot([3, 3, 4])], [one_hot([1, 1, 2]), one_hot([3, 0, 3])],
                                   ["a", "b"])
    assert metrics["sequence_match"] == 0.5 and samples[0]["input"] == "b"


def test_a_decision_score_reports_its_shift_and_whether_the_decision_flips():
    metrics, samples = score_quality([np.array([0.9]), np.array([0.52])], [np.array([0.88]), np.array([0.47])],
                                     ["speech", "borderline"])
    assert metrics["decision_agreement"] == 0.5 and metrics["score_shift_max"] == pytest.approx(0.05)
    assert samples[0]["input"] == "borderline"


def test_an_unknown_output_kind_is_refused_where_it_is_typed():
    from core.compare.common.settings import CompareOptions
    from core.errors import QuantLensError

    with pytest.raises(QuantLensError) as caught:
        CompareOptions(output_kind="segmentation")
    assert caught.value.code == "bad_option" and "detection-map" in caught.value.message


def test_an_uploaded_classifier_declared_as_class_logits_reports_labels_kept(tiny_onnx_gemm, tmp_path):
    from core.compare.pipeline import CompareOptions, compare_model
    from core.compare.report import quality_headlines

    report = compare_model(tiny_onnx_gemm, CompareOptions(output_kind="class-logits", runs=3, warmup=1), tmp_path)
    assert report.model["output_kind"] == "class-logits"
    assert 0 <= report.result("int8").quality["top1_agreement"] <= 1
    assert quality_headlines("other", "class-logits")[0][0] == "labels kept"
