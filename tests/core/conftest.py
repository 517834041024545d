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

from bench._shared.onnx_models import build_gemm_relu_onnx

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


@pytest.fixture(scope="session")
def tiny_onnx_gemm(tmp_path_factory) -> Path:
    return build_gemm_relu_onnx(tmp_path_factory.mktemp("gemm") / "model.onnx")


def _copy_tokenizer(dest: Path) -> None:
    from core.compare.inputs.demo import demo_model_dir

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
    from bench._shared.causal_lm_models import build_causal_lm_folder

    return build_causal_lm_folder(tmp_path_factory.mktemp("tiny_llama"), "llama")


@pytest.fixture(scope="session")
def tiny_qwen2_dir(tmp_path_factory) -> Path:
    from bench._shared.causal_lm_models import build_causal_lm_folder

    return build_causal_lm_folder(tmp_path_factory.mktemp("tiny_qwen2"), "qwen2", tie=True)
