"""The engine against published reference numbers: exact parameters, exact KV bytes, GGUF sizes within 1%."""

import json

import pytest

from core import sizing
from core.sizing import gguf
from core.sizing.architecture import active_parameter_count, architecture_from_config, parameter_count
from core.sizing.kv_cache import kv_bytes_per_token
from core.sizing.precisions import get_precision
from tests.core.sizing_reference import (
    CONFIGS,
    GGML_BPW,
    KV_BYTES_PER_TOKEN_FP16,
    LLAMA3_8B_GGUF_GIB,
    LLAMA3_8B_PPL_DELTA,
    MIXTRAL_ACTIVE,
    PARAMETERS,
    SHARED_REFERENCE,
)

GIB = 2**30


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_parameter_count_is_exact_for_reference_config(name):
    assert parameter_count(architecture_from_config(CONFIGS[name])) == PARAMETERS[name]


def test_mixtral_reports_total_and_active_parameters():
    arch = architecture_from_config(CONFIGS["mixtral-8x7b"])
    assert parameter_count(arch) == 46_702_792_704
    assert active_parameter_count(arch) == MIXTRAL_ACTIVE


@pytest.mark.parametrize("name", sorted(KV_BYTES_PER_TOKEN_FP16))
def test_kv_bytes_per_token_at_fp16_is_exact(name):
    assert kv_bytes_per_token(architecture_from_config(CONFIGS[name]), "fp16") == KV_BYTES_PER_TOKEN_FP16[name]


@pytest.mark.parametrize("ftype", sorted(LLAMA3_8B_GGUF_GIB))
def test_llama3_8b_gguf_file_size_is_within_1_percent_of_llama_cpp(ftype):
    arch = architecture_from_config(CONFIGS["llama-3.1-8b"])
    gib = gguf.file_bytes(arch, ftype) / GIB
    assert gib == pytest.approx(LLAMA3_8B_GGUF_GIB[ftype], rel=0.01)


@pytest.mark.parametrize("ftype", sorted(LLAMA3_8B_PPL_DELTA))
def test_quality_cost_is_llama_cpp_published_perplexity_delta_with_source(ftype):
    p = get_precision(ftype)
    assert p.ppl_delta == LLAMA3_8B_PPL_DELTA[ftype]
    assert "llama.cpp" in p.ppl_source and "Llama-3-8B" in p.ppl_source


@pytest.mark.parametrize("name", sorted(GGML_BPW))
def test_ggml_block_types_have_reference_bits_per_weight(name):
    assert gguf.GGML_TYPES[name].bits_per_weight == GGML_BPW[name]


def test_q4_k_m_keeps_output_at_q6_k_and_half_of_attn_v_and_ffn_down_at_q6_k():
    arch = architecture_from_config(CONFIGS["llama-3.1-8b"])
    plan = {p.name: p.ggml_type for p in gguf.plan(arch, "Q4_K_M")}
    assert plan["output.weight"] == "Q6_K"
    assert plan["token_embd.weight"] == "Q4_K"
    assert plan["blk.0.attn_norm.weight"] == "F32"
    v_q6 = sum(plan[f"blk.{i}.attn_v.weight"] == "Q6_K" for i in range(32))
    down_q6 = sum(plan[f"blk.{i}.ffn_down.weight"] == "Q6_K" for i in range(32))
    assert v_q6 == down_q6 == 16
    assert all(plan[f"blk.{i}.attn_q.weight"] == "Q4_K" for i in range(32))


def test_a_row_length_not_divisible_by_256_falls_back_like_llama_cpp():
    # Qwen2.5-0.5B: hidden 896 is not a multiple of 256, so Q4_K tensors fall back to Q5_0 and the tied
    # embedding/output goes to Q8_0.
    arch = architecture_from_config(CONFIGS["qwen2.5-0.5b"])
    plan = {p.name: p.ggml_type for p in gguf.plan(arch, "Q4_K_M")}
    assert plan["token_embd.weight"] == "Q8_0"
    assert plan["blk.5.attn_q.weight"] == "Q5_0"
    assert plan["blk.5.ffn_gate.weight"] == "Q5_0"
    assert plan["blk.1.ffn_down.weight"] in ("Q4_K", "Q6_K")  # row length 4864 = 19 x 256


def test_seed_table_is_exact_for_7b_and_70b():
    rows = {(r["parameters"], r["precision"]): r["weights_bytes"] for r in sizing.seed_table()}
    assert rows == {
        (7 * 10**9, "FP16"): 14 * 10**9, (7 * 10**9, "INT8"): 7 * 10**9, (7 * 10**9, "INT4"): 3_500_000_000,
        (70 * 10**9, "FP16"): 140 * 10**9, (70 * 10**9, "INT8"): 70 * 10**9, (70 * 10**9, "INT4"): 35 * 10**9,
    }


def test_weights_only_estimate_of_7b_at_int4_is_exactly_3_5_gb():
    e = sizing.estimate(sizing.model_from_params("7B"), "int4", context=0)
    assert (e.weights_bytes, e.kv_cache_bytes, e.overhead_bytes, e.total_bytes) == (3_500_000_000, 0, 0, 3_500_000_000)


@pytest.mark.skipif(not SHARED_REFERENCE.is_dir(), reason="../shared/reference not present")
def test_inline_reference_matches_shared():
    for name, config in CONFIGS.items():
        assert json.loads((SHARED_REFERENCE / "configs" / f"{name}.json").read_text()) == config
    readme = (SHARED_REFERENCE / "README.md").read_text()
    for name, n in PARAMETERS.items():
        assert f"{name}.json | {n:,}" in readme
    for ftype, gib in LLAMA3_8B_GGUF_GIB.items():
        assert f"| {ftype} | {gib:.2f} | +{LLAMA3_8B_PPL_DELTA[ftype]:.4f} |" in readme


@pytest.mark.parametrize(("alias", "name"), [("q4_k", "Q4_K_M"), ("GGUF-Q8_0", "Q8_0"), ("gguf-f16", "GGUF-F16"),
                                             ("bf16", "bf16"), ("AWQ", "AWQ-INT4"), ("float16", "fp16")])
def test_precision_names_accept_llama_cpp_aliases_and_any_case(alias, name):
    assert get_precision(alias).name == name


# bartowski/Meta-Llama-3.1-70B-Instruct-GGUF (llama.cpp imatrix quants), file sizes in GB (10^9 bytes).
LLAMA31_70B_IMATRIX_GB = {"Q8_0": 74.98, "Q6_K": 57.89, "Q5_K_M": 49.95, "Q5_K_S": 48.66, "Q4_K_M": 42.52,
                          "Q4_K_S": 40.35, "Q4_0": 40.12, "IQ4_XS": 37.90, "Q3_K_L": 37.14, "Q3_K_M": 34.27,
                          "IQ3_M": 31.94, "Q3_K_S": 30.91}
LLAMA31_70B = {"model_type": "llama", "hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80,
               "num_attention_heads": 64, "num_key_value_heads": 8, "vocab_size": 128256, "tie_word_embeddings": False}


@pytest.mark.parametrize("ftype", sorted(LLAMA31_70B_IMATRIX_GB))
def test_llama31_70b_imatrix_gguf_sizes_match_published_files_within_half_a_percent(ftype):
    arch = architecture_from_config(LLAMA31_70B)
    assert gguf.file_bytes(arch, ftype, imatrix=True) / 1e9 == pytest.approx(LLAMA31_70B_IMATRIX_GB[ftype], rel=0.005)


def test_an_importance_matrix_changes_q4_0_and_iq4_xs_like_llama_cpp():
    arch = architecture_from_config(CONFIGS["llama-3.1-8b"])
    plain = {p.name: p.ggml_type for p in gguf.plan(arch, "Q4_0")}
    with_imatrix = {p.name: p.ggml_type for p in gguf.plan(arch, "Q4_0", imatrix=True)}
    assert plain["blk.0.ffn_down.weight"] == "Q4_0" and with_imatrix["blk.0.ffn_down.weight"] == "Q4_1"
    assert gguf.uses_imatrix("IQ2_XXS") and not gguf.uses_imatrix("Q4_K_M")
