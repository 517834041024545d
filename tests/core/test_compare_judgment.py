"""Specification: every variant is judged once, by what the model is for, and the verdict, the recommendation and
the page's tab text all say what that one judgment says.

The ONNX models here are built locally with torch and random weights (plumbing, not published accuracy): a
YOLO-style detector whose head concatenates pixel coordinates and [0, 1] class scores, as nudenet's YOLOv8n does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.compare.judge.explain import recommend
from core.compare.judge.judgment import judge, judged_kind
from core.compare.judge.verdict import apply_verdicts
from core.compare.measure.detection import ANCHORS_FIRST, ANCHORS_LAST, decode, detection_quality, yolo_layout
from core.compare.measure.evaluate import _cosine
from core.compare.measure.output_kinds import guess_output_kind
from core.compare.report import ComparisonReport, VariantResult


def yolo_v8_output(anchors: int = 256, classes: int = 3, seed: int = 0) -> np.ndarray:
    """[1, 4+C, A]: cx, cy, w, h in pixels (0-320), then class scores in [0, 1], a few of them confident."""
    rng = np.random.default_rng(seed)
    coords = np.stack([rng.uniform(0, 320, anchors), rng.uniform(0, 320, anchors),
                       rng.uniform(10, 60, anchors), rng.uniform(10, 60, anchors)])
    scores = rng.uniform(0, 0.1, (classes, anchors))
    scores[rng.integers(0, classes, 6), rng.choice(anchors, 6, replace=False)] = rng.uniform(0.4, 0.9, 6)
    return np.concatenate([coords, scores])[None].astype(np.float32)


def one_scale(x: np.ndarray) -> np.ndarray:
    """What one uint8 scale over the whole tensor does (static QDQ on the head's Concat)."""
    scale = float(x.max() - min(0.0, x.min())) / 255
    return (np.round(x / scale) * scale).astype(np.float32)


def test_a_yolo_head_whose_scores_share_one_8bit_scale_with_coordinates_loses_its_boxes_while_cosine_says_999():
    ref = yolo_v8_output()
    var = one_scale(ref)
    assert yolo_layout(ref) == ANCHORS_LAST
    assert len(decode(ref, ANCHORS_LAST).scores) == 6
    metrics, samples = detection_quality([ref], [var], ["street.jpg"])
    assert _cosine(ref, var) > 0.999  # what the cosine verdict used to read
    assert metrics["detection_f1_mean"] <= 0.5 and metrics["boxes_reference"] == 6
    judged = judge(metrics, "detection-boxes")
    assert not judged.kept and "matched-box F1" in judged.sentence and "quality drops" in judged.sentence


def test_both_yolo_layouts_are_read_from_the_shape_and_identical_boxes_score_f1_one():
    v8 = yolo_v8_output()
    v5 = np.concatenate([v8[0, :4], np.ones((1, v8.shape[2]), np.float32), v8[0, 4:]]).T[None]  # [1, A, 5+C]
    assert yolo_layout(v5) == ANCHORS_FIRST
    assert len(decode(v5, ANCHORS_FIRST).scores) == len(decode(v8, ANCHORS_LAST).scores) == 6
    assert detection_quality([v5], [v5.copy()], ["a"])[0]["detection_f1_mean"] == 1.0
    empty = np.zeros_like(v8)
    empty[0, :4] = 50.0
    assert detection_quality([empty], [empty], ["nothing"])[0]["detection_f1_mean"] == 1.0  # no boxes on either


@pytest.mark.parametrize(("output", "kind"), [
    (yolo_v8_output(), "detection-boxes"),
    (np.random.default_rng(0).uniform(0, 1, (1, 1, 64, 64)).astype(np.float32), "detection-map"),
    (np.eye(40, dtype=np.float32)[np.r_[[0] * 20, [5] * 5, [0] * 10, [7] * 5]][None], "ctc-sequence"),
    (np.random.default_rng(1).normal(0, 3, (1, 1000)).astype(np.float32), "class-logits"),
    (np.array([[3.7]], np.float32), "regression"),
    (np.array([[0.93]], np.float32), "decision-score"),
], ids=["yolo", "map", "ctc", "logits", "mos", "score"])
def test_the_output_kind_is_guessed_from_the_outputs_and_the_guess_says_why(output, kind):
    guessed, why = guess_output_kind(None, [[output]])
    assert guessed == kind and why


def _result(precision: str, quality: dict, size_ratio: float = 3.9, speedup: float = 1.5) -> VariantResult:
    return VariantResult(precision=precision, label=precision.upper(), file_name=f"{precision}.onnx",
                         size_bytes=int(4_000_000 / size_ratio), size_ratio_vs_fp32=size_ratio, predicted_size_bytes=None,
                         load_ms=1.0, peak_memory_bytes=1, memory_method="x", latency_ms_p50=1.0, latency_ms_p95=1.0,
                         speedup_vs_fp32=speedup, quantize_seconds=0.0, is_reference=precision == "fp32",
                         quality=quality)


CASES = {  # kind -> (a variant that keeps quality, one that cosine calls fine but the task metric does not)
    "ctc-sequence": ({"sequence_match": 1.0, "cosine_similarity_mean": 0.999},
                     {"sequence_match": 0.2, "edit_distance_mean": 3.1, "cosine_similarity_mean": 0.999}),
    "detection-boxes": ({"detection_f1_mean": 0.95, "cosine_similarity_mean": 0.9993},
                        {"detection_f1_mean": 0.29, "cosine_similarity_mean": 0.9993}),
    "detection-map": ({"mask_iou_mean": 0.97}, {"mask_iou_mean": 0.78, "cosine_similarity_mean": 0.995}),
    "class-logits": ({"top1_agreement": 1.0, "probability_shift_max": 0.01},
                     {"top1_agreement": 0.6, "probability_shift_max": 0.3, "cosine_similarity_mean": 0.99}),
    "regression": ({"shift_kept": 0.99}, {"shift_kept": 0.7, "cosine_similarity_mean": 0.999}),
    "tensors": ({"cosine_similarity_mean": 0.999}, {"cosine_similarity_mean": 0.9}),
}


@pytest.mark.parametrize("kind", list(CASES))
def test_the_verdict_the_recommendation_and_the_tab_text_never_disagree(kind):
    good, bad = CASES[kind]
    results = [_result("fp32", {}, 1.0, 1.0), _result("int8", good, 3.9, 1.5), _result("int4", bad, 6.0, 1.6),
               _result("int8-static", good, 3.9, 0.5), _result("fp16", bad, 1.0, 1.0)]  # slower; no smaller
    apply_verdicts(results, kind)
    report = ComparisonReport({"task": "other", "output_kind": kind}, "fp32", {}, results, {}, {}, {})
    rec = recommend(report, 0.9)
    for r in results[1:]:
        judged = r.judgment
        tab_text = judged["sentence"]  # what the page's tab shows above the numbers
        assert ("quality kept" in r.verdict_note) == judged["kept"] == ("quality kept" in tab_text)
        assert (r.verdict == "recommended") <= judged["kept"]
        if not judged["kept"]:
            assert r.verdict in ("quality_drop", "no_smaller") and r.label in rec.failing
    assert rec.precision == "int8"  # INT4 is smaller and faster, but its task metric drops
    assert results[2].judgment["fallback"] == (kind == "tensors")


def test_an_ocr_variant_with_text_kept_20_percent_is_never_quality_kept():
    int4 = _result("int4", {"sequence_match": 0.2, "cosine_similarity_mean": 0.9995})
    apply_verdicts([int4], judged_kind("other", "ctc-sequence"))
    assert int4.verdict == "quality_drop" and "share of texts kept 20%" in int4.verdict_note


def build_tiny_yolo(path: Path, classes: int = 3, seed: int = 0) -> Path:
    """A real torch-exported detector (random weights): conv backbone, box and class branches, one Concat head."""
    import torch

    torch.manual_seed(seed)

    class TinyYolo(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = torch.nn.Sequential(
                torch.nn.Conv2d(3, 16, 3, 2, 1), torch.nn.ReLU(), torch.nn.Conv2d(16, 32, 3, 2, 1), torch.nn.ReLU(),
                torch.nn.Conv2d(32, 32, 3, 1, 1), torch.nn.ReLU())
            self.box = torch.nn.Conv2d(32, 4, 1)
            self.cls = torch.nn.Conv2d(32, classes, 1)
            torch.nn.init.normal_(self.cls.weight, 0.0, 1.0)  # spread scores: mostly background, a few confident
            torch.nn.init.constant_(self.cls.bias, -2.0)

        def forward(self, x):
            f = self.backbone(x)
            boxes = torch.sigmoid(self.box(f)) * 320.0  # pixels, as in a 320x320 detector
            scores = torch.sigmoid(self.cls(f))
            return torch.cat([boxes, scores], 1).flatten(2)  # [1, 4+C, 256]

    torch.onnx.export(TinyYolo().eval(), torch.rand(1, 3, 64, 64), str(path), input_names=["images"],
                      output_names=["output0"], opset_version=17, dynamo=False)
    return path


@pytest.mark.slow
def test_a_detector_is_judged_by_its_boxes_and_int8_keeps_its_head_in_float(tmp_path):
    import onnxruntime as ort

    from core.compare.common.settings import CompareOptions
    from core.compare.pipeline import compare_model
    from core.compare.techniques.int8_conv import quantize_int8_conv

    model = build_tiny_yolo(tmp_path / "yolo.onnx")
    rng = np.random.default_rng(0)
    feeds = [{"images": rng.uniform(0, 1, (1, 3, 64, 64)).astype(np.float32)} for _ in range(6)]
    ref = [ort.InferenceSession(str(model)).run(None, f)[0] for f in feeds]
    every_op = quantize_int8_conv(model, tmp_path / "every.onnx", feeds, all_ops=True, keep_head_float=False)
    head_float = quantize_int8_conv(model, tmp_path / "head.onnx", feeds, all_ops=True)
    lost = [ort.InferenceSession(str(every_op.path)).run(None, f)[0] for f in feeds]
    kept = [ort.InferenceSession(str(head_float.path)).run(None, f)[0] for f in feeds]
    labels = [str(i) for i in range(6)]
    assert detection_quality(ref, lost, labels)[0]["detection_f1_mean"] < detection_quality(ref, kept, labels)[0][
        "detection_f1_mean"]
    assert any("head kept in float" in n for n in head_float.notes)

    np.savez(tmp_path / "inputs.npz", images=np.concatenate([f["images"] for f in feeds]))
    report = compare_model(model, CompareOptions(precisions=("int8",), reference="fp32", runs=3, warmup=1),
                           tmp_path / "out", inputs={"npz": str(tmp_path / "inputs.npz")})
    assert report.model["output_kind"] == "detection-boxes" and "YOLO" in report.model["output_kind_reason"]
    int8 = report.result("int8")
    assert "detection_f1_mean" in int8.quality and int8.judgment["metric"] == "detection_f1_mean"
    assert ("quality kept" in int8.verdict_note) == int8.judgment["kept"]
    assert "ranked by detection_f1_mean" in " ".join(int8.notes)


def test_a_causal_lm_gets_llama_cpp_depth_kl_percentiles_and_the_top_tokens_delta_p():
    from core.compare.measure.evaluate import causal_lm_quality

    rng = np.random.default_rng(0)
    ref = rng.normal(0, 2, (1, 12, 50)).astype(np.float32)
    var = ref + rng.normal(0, 0.3, ref.shape).astype(np.float32)
    metrics, _ = causal_lm_quality([ref], [var], [None], ["prompt"])
    assert 0 <= metrics["kl_divergence_p50"] <= metrics["kl_divergence_p90"] <= metrics["kl_divergence_p99"]
    assert metrics["kl_divergence_p99"] <= metrics["kl_divergence_max"]
    assert metrics["delta_p_top_rms"] >= abs(metrics["delta_p_top_mean"]) > 0
    same, _ = causal_lm_quality([ref], [ref.copy()], [None], ["prompt"])
    assert same["delta_p_top_mean"] == 0 and same["kl_divergence_p99"] < 1e-9
    assert judge(same, "text-generation").kept


def test_the_recommendation_states_olives_rule_in_words():
    from core.compare.judge.explain import OLIVE_RULE

    words = OLIVE_RULE.format(words="share of texts kept")
    assert "dropped" in words and "Pareto front" in words and "smallest file first" in words


def test_a_detector_that_finds_nothing_on_the_inputs_is_judged_on_its_best_candidates_not_nothing_equals_nothing():
    ref = yolo_v8_output()
    ref[0, 4:] *= 0.2  # every score below 0.25: no detection on this picture
    flat = ref.copy()
    flat[0, 4:] = 0.0  # a variant whose scores all collapsed
    metrics, _ = detection_quality([ref], [flat], ["empty street"])
    assert metrics["score_threshold"] < 0.25 and metrics["boxes_reference"] > 0
    assert metrics["detection_f1_mean"] < 0.5
    assert detection_quality([ref], [ref.copy()], ["same"])[0]["detection_f1_mean"] == 1.0
