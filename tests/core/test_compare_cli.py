"""`python -m core compare` as a user runs it: a subprocess, stdout JSON or a table, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", "compare", *args], cwd=REPO, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def test_json_output_has_the_documented_shape(tiny_onnx_gemm, tmp_path):
    proc = cli(str(tiny_onnx_gemm), "--precisions", "fp32,int8,int4", "--reference", "fp32", "--runs", "2",
               "--format", "json", "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)  # stdout is nothing but the JSON
    assert data["model"]["task"] == "other" and data["reference"] == "fp32"
    assert [r["precision"] for r in data["results"]] == ["fp32", "int8", "int4"]
    for r in data["results"]:
        assert {"precision", "size_bytes", "peak_memory_bytes", "latency_ms_p50", "latency_ms_p95", "quality"} <= set(r)
        assert "cosine_similarity_mean" in r["quality"]
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["model_fp32.onnx", "model_int4.onnx", "model_int8.onnx", "report.json"]
    assert json.loads((tmp_path / "out" / "report.json").read_text())["results"][2]["precision"] == "int4"


def test_table_output_names_the_columns_and_units(tiny_onnx_gemm):
    proc = cli(str(tiny_onnx_gemm), "--precisions", "int8", "--runs", "1")
    assert proc.returncode == 0, proc.stderr
    assert "size MB" in proc.stdout and "p50 ms" in proc.stdout and "labels kept" in proc.stdout
    assert "10^6 bytes" in proc.stdout
    # the metric is guessed from the outputs ([batch, 16] scores out of a Gemm), and the guess says how to change it
    assert "Quality judged as class-logits (guessed" in proc.stdout and "--output-kind" in proc.stdout
    assert "rule: How the pick is made (Olive's rule)" in proc.stdout


def test_missing_model_file_is_one_line_and_exit_1(tmp_path):
    proc = cli(str(tmp_path / "nope.onnx"), timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "does not exist" in proc.stderr and "[file_not_found]" in proc.stderr


def test_unknown_precision_is_one_line_and_exit_1(tiny_onnx_gemm):
    proc = cli(str(tiny_onnx_gemm), "--precisions", "fp32,int3", timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "int3" in proc.stderr and "[unknown_precision]" in proc.stderr


def test_bad_reference_is_a_usage_error_exit_2(tiny_onnx_gemm):
    proc = cli(str(tiny_onnx_gemm), "--reference", "int8", timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0


def test_a_zip_with_a_pickle_is_refused_before_anything_loads(tmp_path):
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("config.json", json.dumps({"architectures": ["BertModel"], "model_type": "bert"}))
        zf.writestr("pytorch_model.bin", b"\x80\x04K\x01.")
    proc = cli(str(archive), timeout=60)
    assert proc.returncode == 1 and "[unsafe_format_pickle]" in proc.stderr


@pytest.mark.slow
def test_plumbing_zip_of_a_tiny_hf_classifier_runs_through_the_gate(tiny_bert_classifier_dir, tmp_path):
    archive = tmp_path / "tiny.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(tiny_bert_classifier_dir.iterdir()):
            zf.write(path, path.name)
    texts = tmp_path / "texts.csv"
    texts.write_text("id,text\n1,good\n2,bad\n3,so-so\n")
    proc = cli(str(archive), "--precisions", "int8", "--runs", "1", "--inputs", str(texts), "--format", "json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(proc.stdout)
    assert data["model"]["task"] == "text-classification" and data["inputs"]["items"] == ["good", "bad", "so-so"]
    assert "top1_agreement" in data["results"][-1]["quality"]


def _one_line_error(proc: subprocess.CompletedProcess, code: str) -> None:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert f"[{code}]" in proc.stderr, proc.stderr


def test_out_that_is_an_existing_file_is_one_line_and_exit_1(tiny_onnx_gemm, tmp_path):
    existing = tmp_path / "somefile.onnx"
    existing.write_bytes(b"keep me")
    proc = cli(str(tiny_onnx_gemm), "--precisions", "int8", "--runs", "1", "--out", str(existing), "--quiet", timeout=60)
    _one_line_error(proc, "bad_output")
    assert existing.read_bytes() == b"keep me"


def test_out_that_cannot_be_created_is_one_line_and_exit_1(tiny_onnx_gemm):
    proc = cli(str(tiny_onnx_gemm), "--precisions", "int8", "--runs", "1", "--out", "/proc/quantlens-nope", "--quiet", timeout=60)
    _one_line_error(proc, "bad_output")


@pytest.mark.parametrize("arrays", [
    {"x": np.zeros((2, 5), np.float32)},  # the model's second axis is fixed at 64
    {"x": np.zeros((2, 64), np.complex64)},  # no numeric conversion the model accepts
    {"x": np.zeros((2, 64, 1), np.float32)},  # wrong rank
], ids=["wrong-fixed-dim", "wrong-dtype", "wrong-rank"])
def test_npz_inputs_that_do_not_fit_the_model_are_one_line_and_exit_1(tiny_onnx_gemm, tmp_path, arrays):
    path = tmp_path / "x.npz"
    np.savez(path, **arrays)
    proc = cli(str(tiny_onnx_gemm), "--precisions", "int8", "--runs", "1", "--inputs", str(path), "--quiet", timeout=120)
    _one_line_error(proc, "bad_inputs")
    assert "Input x" in proc.stderr


def test_npz_inputs_that_fit_run_in_the_worker_and_files_land_in_out(tiny_onnx_gemm, tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, x=np.ones((3, 64), np.float64))
    proc = cli(str(tiny_onnx_gemm), "--precisions", "int8", "--reference", "fp32", "--runs", "1", "--inputs", str(path),
               "--format", "json", "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["inputs"] == {**json.loads(proc.stdout)["inputs"], "source": "npz", "count": 3}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model_fp32.onnx", "model_int8.onnx", "report.json"]


@pytest.mark.slow
def test_a_causal_lm_folder_prints_a_generation_table_with_continuations(tiny_llama_dir):
    proc = cli(str(tiny_llama_dir), "--precisions", "int4", "--reference", "fp32", "--runs", "2",
               "--decode-tokens", "6")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "Generation: prompt of 128 tokens, then 6 tokens decoded one at a time through the KV cache" in out
    for column in ("prefill ms", "decode tok/s", "perplexity", "weights+KV MB"):
        assert column in out
    assert "Greedy continuations of" in out and "  int4: '" in out


def test_a_bad_decode_tokens_value_is_one_line_and_exit_1(tiny_onnx_gemm):
    proc = cli(str(tiny_onnx_gemm), "--decode-tokens", "0")
    assert proc.returncode == 1 and proc.stderr.strip().count("\n") == 0
    assert "decode_tokens" in proc.stderr and "[bad_option]" in proc.stderr


def _npz_with_member(path, name: str, data: bytes):
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(name, data)
    return path


@pytest.mark.parametrize("member, data", [
    ("x.npy", b"\x80\x04\x95" + b"pickled payload"),  # a pickle under an .npy name
    ("x", b"just some bytes"),  # plain bytes, no .npy header
], ids=["pickle-member", "plain-bytes-member"])
def test_an_npz_whose_member_is_not_an_array_is_refused_in_one_line(tiny_onnx_gemm, tmp_path, member, data):
    path = _npz_with_member(tmp_path / "x.npz", member, data)
    proc = cli(str(tiny_onnx_gemm), "--precisions", "int8", "--runs", "1", "--inputs", str(path), "--quiet", timeout=120)
    _one_line_error(proc, "bad_inputs")
    assert "Traceback" not in proc.stderr and "not a numpy array" in proc.stderr
