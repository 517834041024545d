"""Plumbing on small models built in the tests: random weights prove the pipeline works, not quality.

Each kind of model the compare page accepts goes through export (where it applies), every precision, and the
task's own quality metrics.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.compare import CompareOptions, compare_model
from core.errors import QuantLensError

ALL = ("fp32", "fp16", "int8", "int8-static", "int4")


def test_plumbing_non_text_onnx_gets_generated_inputs_and_is_judged_as_the_logits_its_output_looks_like(
        tiny_onnx_gemm, tmp_path):
    report = compare_model(tiny_onnx_gemm, CompareOptions(precisions=ALL, runs=2, warmup=1), tmp_path)
    assert report.model["task"] == "other" and report.inputs["source"] == "generated"
    assert report.model["inputs"] == [{"name": "x", "shape": [1, 64], "dtype": "float32"}]
    assert any("generated" in w for w in report.warnings)
    assert report.model["output_kind"] == "class-logits", "a [batch, 16] output is judged by the labels it picks"
    for result in report.results:
        quality = result.quality
        assert {"top1_agreement", "top5_overlap", "cosine_similarity_mean"} <= set(quality)
        assert (tmp_path / result.file_name).is_file()
    int4 = report.result("int4")
    assert int4.settings["quantized_matmuls"] == 2, "both Gemm layers are rewritten to MatMul and quantized"
    assert any("Gemm" in note for note in int4.notes)
    assert report.result("int4").quality["cosine_similarity_mean"] > 0.9
    for result in report.results:
        assert result.memory_method in ("peak_rss_delta", "sampled_rss_delta") and result.peak_memory_bytes >= 0
        assert result.load_ms > 0 and 0 < result.latency_ms_p50 <= result.latency_ms_p95


def test_plumbing_npz_inputs_are_split_into_samples(tiny_onnx_gemm, tmp_path):
    npz = tmp_path / "inputs.npz"
    np.savez(npz, x=np.random.default_rng(1).standard_normal((5, 64)).astype(np.float32))
    report = compare_model(tiny_onnx_gemm, CompareOptions(precisions=("int8",), runs=1), tmp_path / "out",
                           inputs={"npz": npz})
    assert report.inputs["source"] == "npz" and report.inputs["count"] == 5


def test_plumbing_texts_for_an_onnx_file_without_tokenizer_are_refused(tiny_onnx_gemm, tmp_path):
    with pytest.raises(QuantLensError) as err:
        compare_model(tiny_onnx_gemm, CompareOptions(precisions=("int8",), runs=1), tmp_path, inputs=["hello"])
    assert err.value.code == "no_tokenizer"


@pytest.mark.slow
def test_plumbing_tiny_bert_classifier_reports_label_agreement(tiny_bert_classifier_dir, tmp_path):
    report = compare_model(tiny_bert_classifier_dir, CompareOptions(precisions=ALL, runs=2, warmup=1), tmp_path,
                           inputs=["great film", "terrible service", "it was fine", "I loved it"])
    assert report.model["task"] == "text-classification"
    assert report.model["architecture"] == "BertForSequenceClassification"
    for result in report.results:
        q = result.quality
        assert 0 <= q["top1_agreement"] <= 1 and 0 <= q["probability_shift_max"] <= 1
        assert result.samples[0]["reference"].split(" ")[0] in {"negative", "neutral", "positive"}
    assert report.result("fp32").quality["probability_shift_max"] < 0.01  # fp32 vs fp16 reference


@pytest.mark.slow
def test_plumbing_tiny_gpt2_reports_next_token_agreement_kl_and_continuations(tiny_gpt2_dir, tmp_path):
    options = CompareOptions(precisions=("fp32", "int8", "int4"), reference="fp32", runs=2, warmup=1, max_new_tokens=4)
    report = compare_model(tiny_gpt2_dir, options, tmp_path, inputs=["the cat sat on", "once upon a time", "hello"])
    assert report.model["task"] == "text-generation"
    assert {i["name"] for i in report.model["inputs"]} >= {"input_ids", "attention_mask"}
    fp32 = report.result("fp32").quality
    assert fp32["top1_agreement"] == 1.0 and fp32["kl_divergence_mean"] < 1e-6
    int4 = report.result("int4")
    assert 0 <= int4.quality["top1_agreement"] <= 1 and int4.quality["kl_divergence_mean"] >= 0
    with_text = [s for s in int4.samples if "reference" in s]
    assert len(with_text) == 3 and all(isinstance(s["variant"], str) for s in with_text)
    assert "greedy_continuation_agreement" in int4.quality


def test_worker_entry_refuses_a_model_or_inputs_outside_its_job_dir(tiny_onnx_gemm, tmp_path):
    from core.compare.pipeline import run_comparison_job

    job = tmp_path / "job"
    job.mkdir()
    with pytest.raises(QuantLensError) as err:
        run_comparison_job({"source": str(tiny_onnx_gemm), "options": {}}, job, lambda m, f: None)
    assert err.value.code == "bad_payload"
    inside = job / "model.onnx"
    inside.write_bytes(tiny_onnx_gemm.read_bytes())
    with pytest.raises(QuantLensError) as err:
        run_comparison_job({"source": str(inside), "inputs": {"npz": str(tmp_path / "x.npz")}}, job, lambda m, f: None)
    assert err.value.code == "bad_payload"
    assert not (job / "out").exists()


def test_plumbing_worker_entry_runs_an_onnx_model_inside_the_job_dir(tiny_onnx_gemm, tmp_path):
    from core.compare.pipeline import run_comparison_job

    (tmp_path / "model.onnx").write_bytes(tiny_onnx_gemm.read_bytes())
    result = run_comparison_job({"source": str(tmp_path / "model.onnx"), "options": {"precisions": ["int4"], "runs": 1}},
                                tmp_path, lambda m, f: None)
    assert [r["precision"] for r in result["results"]] == ["fp32", "fp16", "int4"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "model_fp16.onnx", "model_fp32.onnx", "model_int4.onnx", "report.json"]
