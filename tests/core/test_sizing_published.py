"""Published GGUF files and runtime caches, reproduced from the architecture (the reference set of issue 9).

Every number has its source beside it. File sizes on model cards are rounded to 0.01 GB (10^9 bytes), so
1% is the bar. The rules under test come from llama.cpp's src/llama-quant.cpp (as built for the published
files: b4456 for phi-4, b6096 for gpt-oss), src/llama-kv-cache-iswa.cpp and transformers' modeling_llama4.py.
"""

import json
from pathlib import Path

import pytest

from core import sizing
from core.sizing import catalog, gguf
from core.sizing.architecture import (
    active_parameter_count,
    architecture_from_config,
    parameter_count,
)
from core.sizing.kv_cache import kv_cache_plan
from tests.core.sizing_reference import CONFIGS

DATA = Path(__file__).parent / "data"
GB = 1e9
MIB = 2**20


def catalog_arch(model_id):
    return architecture_from_config(catalog.find_model(model_id).config)


def scout():
    # meta-llama/Llama-4-Scout-17B-16E config.json, text_config as published (tests/core/data, source noted inside)
    return architecture_from_config(json.loads((DATA / "llama-4-scout-17b-16e.json").read_text()))


# https://huggingface.co/bartowski/phi-4-GGUF (llama.cpp b4456, "All quants made using imatrix option"),
# "File Size" column, GB.
PHI4_BARTOWSKI_GB = {"GGUF-F16": 29.32, "Q8_0": 15.58, "Q6_K": 12.03, "Q5_K_M": 10.60, "Q5_K_S": 10.15,
                     "Q4_1": 9.27, "Q4_K_M": 9.05, "Q4_K_S": 8.44, "Q4_0": 8.41, "IQ4_NL": 8.38}


@pytest.mark.parametrize("ftype", sorted(PHI4_BARTOWSKI_GB))
def test_phi4_imatrix_gguf_sizes_match_bartowskis_files_within_1_percent(ftype):
    arch = catalog_arch("microsoft/phi-4")
    precision = sizing.estimate(sizing.model_from_catalog("microsoft/phi-4"), ftype, imatrix=True)
    assert precision.weights_bytes == gguf.file_bytes(arch, ftype.replace("GGUF-", ""), True)
    assert precision.weights_bytes / GB == pytest.approx(PHI4_BARTOWSKI_GB[ftype], rel=0.01)


@pytest.mark.parametrize(("ftype", "qkv_type"), [("Q2_K", "Q2_K"), ("IQ4_XS", "IQ4_XS"), ("Q3_K_L", "Q4_K"),
                                                 ("Q3_K_M", "Q4_K"), ("Q4_K_M", "Q5_K"), ("Q5_K_M", "Q6_K")])
def test_fused_qkv_takes_llama_cpps_own_attn_qkv_branch_not_the_attn_v_bumps(ftype, qkv_type):
    # llama-quant.cpp: `else if (name.find("attn_qkv.weight") ...)`: Q3_K_M/Q3_K_L/IQ3_M -> Q4_K, Q4_K_M -> Q5_K,
    # Q5_K_M -> Q6_K, everything else keeps the file type's default (attn_v would have had Q4_K/Q5_K/Q6_K bumps)
    plan = {p.name: p.ggml_type for p in gguf.plan(catalog_arch("microsoft/phi-4"), ftype, True)}
    assert {plan[f"blk.{i}.attn_qkv.weight"] for i in range(40)} == {qkv_type}


# gpt-oss-20b: unsloth/gpt-oss-20b-GGUF F16 13.8 GB and Q4_K_M 11.6 GB (model card, as quoted in issue 9);
# https://huggingface.co/bartowski/openai_gpt-oss-20b-GGUF (b6096): MXFP4 12.1 GB, Q6_K 12.04 GB.
GPT_OSS_20B_GB = {"GGUF-F16": 13.8, "Q4_K_M": 11.6, "MXFP4_MOE": 12.1, "Q6_K": 12.04}


@pytest.mark.parametrize("ftype", sorted(GPT_OSS_20B_GB))
def test_gpt_oss_keeps_its_experts_in_mxfp4_at_every_gguf_type(ftype):
    model = sizing.model_from_catalog("openai/gpt-oss-20b")
    est = sizing.estimate(model, ftype, imatrix=True)
    assert est.weights_bytes / GB == pytest.approx(GPT_OSS_20B_GB[ftype], rel=0.015)
    plan = gguf.plan(model.architecture, ftype.replace("GGUF-", ""), True)
    assert {p.ggml_type for p in plan if "_exps.weight" in p.name} == {"MXFP4"}


def test_gpt_oss_20b_active_parameters_with_and_without_the_embedding_table():
    # OpenAI gpt-oss model card: 20.91B total, 3.61B active (token embedding excluded, unembedding included)
    model = sizing.model_from_catalog("openai/gpt-oss-20b")
    assert model.parameters == 20_914_757_184
    assert round(model.active_parameters_without_embeddings / 1e9, 2) == 3.61
    # active parameters are counted as the card counts them, so here they already leave the embedding out
    assert model.active_parameters == model.active_parameters_without_embeddings


def test_llama4_scout_counts_its_shared_expert_and_interleaved_moe_exactly():
    a = scout()
    assert a.model_type == "llama4_text"
    assert not any("Unknown model family" in w for w in a.warnings)
    # modeling_llama4.py, per layer: q/k/v/o, two RMSNorms, router (16 x 5120), 16 experts of gate_up + down
    # (8192 wide), one shared SwiGLU expert of 8192; plus token embedding, final norm and untied lm_head.
    h, n_layers, experts, ff, vocab = 5120, 48, 16, 8192, 202_048
    attention = 2 * h * 40 * 128 + 2 * h * 8 * 128
    per_layer = attention + 2 * h + experts * h + experts * 3 * h * ff + 3 * h * ff
    total = n_layers * per_layer + 2 * vocab * h + h
    assert parameter_count(a) == total == 107_769_861_120  # "about 107.8B" for the text model
    assert active_parameter_count(a) == total - n_layers * (experts - 1) * 3 * h * ff  # 17.17B: "17B active"
    assert round(active_parameter_count(a) / 1e9, 1) == 17.2


def test_llama4_scout_attends_in_8192_token_chunks_on_three_of_every_four_layers():
    a = scout()
    assert a.window_kind == "chunked"
    assert a.layer_windows[:4] == (8192, 8192, 8192, 0) and sum(1 for w in a.layer_windows if w) == 36


# Per-runtime KV cache. llama.cpp (src/llama-kv-cache-iswa.cpp): SWA cells = GGML_PAD(min(n_ctx, n_swa + n_ubatch),
# 256) with n_ubatch = 512; Mistral v0.1 is converted as LLM_ARCH_LLAMA and runs with no window.


def test_llama_cpp_runs_mistral_7b_v01_without_a_sliding_window():
    a = architecture_from_config(CONFIGS["mistral-7b-v0.1"])
    # llama.cpp logs `llama_kv_cache: size = 4096.00 MiB ( 32768 cells, 32 layers, 1/1 seqs)` for -c 32768
    assert kv_cache_plan(a, 32768, runtime="llama.cpp").bytes == 4096 * MIB
    assert kv_cache_plan(a, 32768, runtime="transformers").bytes == 512 * MIB  # window 4096 of 32 layers


def test_llama_cpp_gives_gpt_oss_window_layers_window_plus_ubatch_cells_rounded_to_256():
    a = catalog_arch("openai/gpt-oss-20b")
    plan = kv_cache_plan(a, 32768, runtime="llama.cpp")
    assert set(plan.cells_per_layer) == {32768, 768}  # 128 + 512 = 640 -> 768 cells on the 12 SWA layers
    # 12 full layers x 32768 cells x 2 KiB (K+V, 8 heads x 64, FP16) = 768 MiB; 12 x 768 cells = 18 MiB
    assert plan.bytes == (768 + 18) * MIB
    assert "window + 512" in plan.rule


def test_vllm_allocates_whole_16_token_blocks_and_keeps_window_layers_at_the_window():
    a = catalog_arch("openai/gpt-oss-20b")
    plan = kv_cache_plan(a, 1000, runtime="vllm")
    assert set(plan.cells_per_layer) == {1008, 128}
    assert kv_cache_plan(a, 1000, runtime="transformers").cells_per_layer[:2] == (128, 1000)


def test_the_runtime_changes_the_kv_figure_in_the_estimate_and_names_its_rule():
    model = sizing.model_from_catalog("mistralai/Mistral-7B-v0.1")
    by_runtime = {rt: sizing.estimate(model, "Q4_K_M", 32768, runtime=rt) for rt in ("llama.cpp", "vllm", "transformers")}
    assert by_runtime["llama.cpp"].kv_cache_bytes == 8 * by_runtime["vllm"].kv_cache_bytes
    assert len({e.kv_cache_rule for e in by_runtime.values()}) == 3


def test_llama4_chunked_layers_follow_the_same_llama_cpp_rule():
    plan = kv_cache_plan(scout(), 65536, runtime="llama.cpp")
    assert set(plan.cells_per_layer) == {65536, 8704}  # 8192 + 512, already a multiple of 256
    assert "chunked-attention" in plan.rule


@pytest.mark.parametrize("model_type", ["starcoder2", "cohere", "internlm2", "llama4_text"])
def test_families_with_their_own_rules_are_not_called_unknown(model_type):
    cfg = {"model_type": model_type, "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 2,
           "num_attention_heads": 4, "vocab_size": 1000}
    assert not any("Unknown model family" in w for w in architecture_from_config(cfg).warnings)
