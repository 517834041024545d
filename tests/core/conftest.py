"""Small models built inside the tests (no downloads): random weights prove plumbing, not quality.

- `tiny_onnx_gemm`: a non-text ONNX model (Gemm + Relu + Gemm) made with onnx.helper.
- `tiny_bert_classifier_dir` / `tiny_gpt2_dir`: Hugging Face folders saved with safetensors from configs with
  random weights; they reuse the demo package's real WordPiece tokenizer files (vocab size 30522).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def build_gemm_relu_onnx(path: Path, in_features: int = 64, hidden: int = 64, out_features: int = 16, seed: int = 0) -> Path:
    """x[batch, in] -> Gemm(transB=1) -> Relu -> Gemm -> y[batch, out]; batch is a symbolic dim."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1 = numpy_helper.from_array(rng.standard_normal((hidden, in_features)).astype(np.float32) * 0.1, "w1")
    b1 = numpy_helper.from_array(rng.standard_normal(hidden).astype(np.float32) * 0.1, "b1")
    w2 = numpy_helper.from_array(rng.standard_normal((hidden, out_features)).astype(np.float32) * 0.1, "w2")
    b2 = numpy_helper.from_array(rng.standard_normal(out_features).astype(np.float32) * 0.1, "b2")
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], name="fc2", alpha=0.5, beta=2.0),
    ]
    graph = helper.make_graph(
        nodes, "gemm_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", in_features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", out_features])],
        initializer=[w1, b1, w2, b2],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save_model(model, str(path))
    return path


@pytest.fixture(scope="session")
def tiny_onnx_gemm(tmp_path_factory) -> Path:
    return build_gemm_relu_onnx(tmp_path_factory.mktemp("gemm") / "model.onnx")


def _copy_tokenizer(dest: Path) -> None:
    from core.compare.demo import demo_model_dir

    src = demo_model_dir()
    for name in TOKENIZER_FILES:
        shutil.copy(src / name, dest / name)


@pytest.fixture(scope="session")
def tiny_bert_classifier_dir(tmp_path_factory) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    dest = tmp_path_factory.mktemp("tiny_bert_classifier")
    config = BertConfig(vocab_size=30522, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=128, max_position_embeddings=128, num_labels=3,
                        id2label={0: "negative", 1: "neutral", 2: "positive"},
                        label2id={"negative": 0, "neutral": 1, "positive": 2})
    BertForSequenceClassification(config).save_pretrained(dest, safe_serialization=True)
    _copy_tokenizer(dest)
    return dest


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory) -> Path:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    dest = tmp_path_factory.mktemp("tiny_gpt2")
    config = GPT2Config(vocab_size=30522, n_embd=64, n_layer=2, n_head=4, n_positions=64)
    GPT2LMHeadModel(config).save_pretrained(dest, safe_serialization=True)
    _copy_tokenizer(dest)
    return dest


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    from tests.core.causal_lm_models import build_causal_lm_folder

    return build_causal_lm_folder(tmp_path_factory.mktemp("tiny_llama"), "llama")


@pytest.fixture(scope="session")
def tiny_qwen2_dir(tmp_path_factory) -> Path:
    from tests.core.causal_lm_models import build_causal_lm_folder

    return build_causal_lm_folder(tmp_path_factory.mktemp("tiny_qwen2"), "qwen2", tie=True)
