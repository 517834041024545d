"""config.json -> architecture -> parameters, KV cache: the families and the traps other calculators fall into."""

import json

import pytest

from core.errors import QuantLensError
from core.sizing.architecture import (
    active_parameter_count,
    architecture_from_config,
    parameter_count,
    parse_config_json,
    parse_param_count,
)
from core.sizing.kv_cache import kv_bytes_per_token, kv_cache_bytes
from tests.core.sizing_reference import CONFIGS

GEMMA2_9B = {"model_type": "gemma2", "vocab_size": 256000, "hidden_size": 3584, "intermediate_size": 14336,
             "num_hidden_layers": 42, "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 256,
             "sliding_window": 4096, "max_position_embeddings": 8192}
DEEPSEEK_V3 = {"model_type": "deepseek_v3", "vocab_size": 129280, "hidden_size": 7168, "intermediate_size": 18432,
               "moe_intermediate_size": 2048, "num_hidden_layers": 61, "num_attention_heads": 128,
               "num_key_value_heads": 128, "n_shared_experts": 1, "n_routed_experts": 256, "num_experts_per_tok": 8,
               "first_k_dense_replace": 3, "moe_layer_freq": 1, "q_lora_rank": 1536, "kv_lora_rank": 512,
               "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128, "tie_word_embeddings": False,
               "topk_method": "noaux_tc", "max_position_embeddings": 163840}
QWEN3_30B_A3B = {"model_type": "qwen3_moe", "vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 6144,
                 "num_hidden_layers": 48, "num_attention_heads": 32, "num_key_value_heads": 4, "head_dim": 128,
                 "num_experts": 128, "num_experts_per_tok": 8, "moe_intermediate_size": 768,
                 "tie_word_embeddings": False}
MINILM = {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": 30522, "hidden_size": 384,
          "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536,
          "max_position_embeddings": 512, "type_vocab_size": 2}


def test_gemma2_head_dim_comes_from_config_not_hidden_over_heads():
    arch = architecture_from_config(GEMMA2_9B)
    assert arch.head_dim == 256  # hidden/heads would be 224
    assert parameter_count(arch) == 9_241_705_984
    assert kv_bytes_per_token(arch) == 42 * 2 * 8 * 256 * 2


def test_gemma2_alternates_sliding_and_global_layers():
    arch = architecture_from_config(GEMMA2_9B)
    assert arch.layer_windows[:4] == (4096, 0, 4096, 0)
    per_layer_token = 2 * 8 * 256 * 2
    assert kv_cache_bytes(arch, 8192) == per_layer_token * (21 * 8192 + 21 * 4096)


def test_mistral_sliding_window_caps_the_cache_at_4096_tokens():
    arch = architecture_from_config(CONFIGS["mistral-7b-v0.1"])
    assert kv_cache_bytes(arch, 4096) == kv_cache_bytes(arch, 32768) == 131_072 * 4096
    assert kv_cache_bytes(arch, 1000) == 131_072 * 1000


def test_qwen2_sliding_window_is_off_unless_use_sliding_window():
    arch = architecture_from_config(CONFIGS["qwen2.5-0.5b"])
    assert not arch.has_sliding_window
    on = architecture_from_config(CONFIGS["qwen2.5-0.5b"] | {"use_sliding_window": True, "sliding_window": 1024})
    assert on.layer_windows.count(1024) == 24 - 21


def test_deepseek_v3_counts_671b_total_and_37b_active():
    arch = architecture_from_config(DEEPSEEK_V3)
    assert parameter_count(arch) == 671_026_404_352
    assert active_parameter_count(arch) == 37_552_282_624


def test_mla_caches_the_latent_not_per_head_keys_and_values():
    arch = architecture_from_config(DEEPSEEK_V3)
    assert kv_bytes_per_token(arch) == 61 * (512 + 64) * 2  # 70,272 bytes, not 61 x 2 x 128 x 192 x 2
    assert kv_cache_bytes(arch, 1000, batch=2) == 2 * 1000 * 70_272


def test_qwen3_moe_active_parameters_are_a_tenth_of_total():
    arch = architecture_from_config(QWEN3_30B_A3B)
    assert parameter_count(arch) == 30_532_122_624
    assert active_parameter_count(arch) == 3_353_032_704


def test_minilm_encoder_counts_with_pooler_and_has_no_kv_cache():
    arch = architecture_from_config(MINILM)
    assert parameter_count(arch) == 22_713_216
    assert kv_cache_bytes(arch, 512, batch=8) == 0


def test_kv_cache_in_q8_0_costs_8_5_bits_and_q4_0_4_5_bits_per_value():
    arch = architecture_from_config(CONFIGS["llama-3.1-8b"])
    values_per_token = 32 * 2 * 8 * 128
    assert kv_bytes_per_token(arch, "q8_0") * 8 == values_per_token * 8.5
    assert kv_bytes_per_token(arch, "q4_0") * 8 == values_per_token * 4.5
    assert kv_bytes_per_token(arch, "fp8") == values_per_token


def test_kv_cache_scales_with_batch_and_context():
    arch = architecture_from_config(CONFIGS["llama-3.1-8b"])
    assert kv_cache_bytes(arch, 8192, batch=4) == 4 * 8192 * 131_072


@pytest.mark.parametrize(
    ("text", "expected"),
    [("7B", 7 * 10**9), ("1.5e9", 1_500_000_000), ("350M", 350_000_000), ("70b", 70 * 10**9),
     ("1,000,000", 1_000_000), (" 0.5B ", 500_000_000), (124_439_808, 124_439_808), ("1.5T", 1_500_000_000_000),
     ("8B params", 8 * 10**9)],
)
def test_parameter_count_text_is_parsed_exactly(text, expected):
    assert parse_param_count(text) == expected


@pytest.mark.parametrize("bad", ["", "seven", "7X", "-7B", "0", "1e200", "nan", "inf", None, True, [], "1..5B", "0.1"])
def test_bad_parameter_count_is_a_clear_error(bad):
    with pytest.raises(QuantLensError) as err:
        parse_param_count(bad)
    assert err.value.code == "invalid_param_count"


@pytest.mark.parametrize(
    ("patch", "code"),
    [({"num_hidden_layers": 100_000}, "config_out_of_bounds"), ({"hidden_size": 10**7}, "config_out_of_bounds"),
     ({"vocab_size": 10**9}, "config_out_of_bounds"), ({"num_hidden_layers": 0}, "config_out_of_bounds"),
     ({"hidden_size": "4096"}, "config_invalid_value"), ({"hidden_size": 4096.5}, "config_invalid_value"),
     ({"num_key_value_heads": 5}, "config_invalid_value"), ({"tie_word_embeddings": "no"}, "config_invalid_value"),
     ({"num_hidden_layers": None}, "config_missing_field")],
)
def test_hostile_or_broken_config_is_refused_with_a_code(patch, code):
    with pytest.raises(QuantLensError) as err:
        architecture_from_config(CONFIGS["llama-3.1-8b"] | patch)
    assert err.value.code == code


def test_auto_map_is_flagged_and_never_run():
    arch = architecture_from_config(CONFIGS["llama-3.1-8b"] | {"auto_map": {"AutoModel": "modeling_evil.Evil"}})
    assert any("auto_map" in w for w in arch.warnings)
    assert parameter_count(arch) == 8_030_261_248


def test_unknown_model_type_is_counted_best_effort_with_a_warning():
    # without `architectures`: a config naming transformers' LlamaForCausalLM is counted as a Llama, not guessed
    cfg = {k: v for k, v in CONFIGS["llama-3.1-8b"].items() if k != "architectures"}
    arch = architecture_from_config(cfg | {"model_type": "my_llama_clone"})
    assert parameter_count(arch) == 8_030_261_248
    assert any("Unknown model family" in w for w in arch.warnings)


def test_unknown_model_type_without_standard_fields_names_the_missing_field():
    with pytest.raises(QuantLensError, match="hidden_size") as err:
        architecture_from_config({"model_type": "mystery", "d_hidden": 12})
    assert err.value.code == "config_missing_field"


@pytest.mark.parametrize("data", [b"\xff\xfe", b"not json", b"[1, 2]", b"[" * 100_000, b"{" + b" " * 1_000_001 + b"}"])
def test_uploaded_config_text_is_parsed_as_json_only(data):
    with pytest.raises(QuantLensError):
        parse_config_json(data)


def test_config_saved_with_a_byte_order_mark_is_read_like_any_other():
    plain = json.dumps(CONFIGS["llama-3.1-8b"]).encode()
    assert parse_config_json(b"\xef\xbb\xbf" + plain) == parse_config_json(plain)
    assert parse_config_json("\ufeff" + plain.decode()) == parse_config_json(plain)


@pytest.mark.parametrize(("patch", "shown"), [({"hidden_size": 1e308}, "= 1e+308 is above"),
                                              ({"hidden_size": 10**300}, "= 1e+300 is above"),
                                              ({"hidden_size": 10**400}, "= 1e+400 is above"),
                                              ({"hidden_size": "x" * 100_000}, "got 'xxxx"),
                                              ({"tie_word_embeddings": ["y"] * 50_000}, "got ['y'")])
def test_an_absurd_config_value_is_quoted_short_in_its_one_line_error(patch, shown):
    with pytest.raises(QuantLensError) as err:
        architecture_from_config(CONFIGS["llama-3.1-8b"] | patch)
    message = err.value.one_line()
    assert shown in message and len(message) < 200 and "\n" not in message


def test_multimodal_config_counts_its_text_model_with_a_warning():
    cfg = {"model_type": "gemma3", "text_config": GEMMA2_9B | {"model_type": "gemma3_text"}}
    arch = architecture_from_config(cfg)
    assert any("text_config" in w for w in arch.warnings)
    assert arch.qk_norm


def test_every_catalog_model_counts_exactly_its_meta_device_parameters():
    from core.sizing.catalog import DATA_DIR, load_models

    raw = {d["id"]: d for d in json.loads((DATA_DIR / "models.json").read_text())}
    for entry in load_models():
        arch = architecture_from_config(entry.config)
        expected = raw[entry.id].get("counted_parameters")
        if expected is not None:
            assert parameter_count(arch) == expected, entry.id
        active = raw[entry.id].get("counted_active_parameters")
        if active is not None:
            assert active_parameter_count(arch) == active, entry.id


def test_gpt_neox_pythia_160m_counts_exactly():
    pythia = {"model_type": "gpt_neox", "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
              "intermediate_size": 3072, "vocab_size": 50304, "max_position_embeddings": 2048,
              "tie_word_embeddings": False, "use_parallel_residual": True}
    assert parameter_count(architecture_from_config(pythia)) == 162_322_944


def test_a_pre_quantized_checkpoint_config_is_counted_from_its_architecture_with_a_note():
    cfg = CONFIGS["llama-3.1-8b"] | {"quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128}}
    arch = architecture_from_config(cfg)
    assert parameter_count(arch) == 8_030_261_248
    assert any("pre-quantized" in w for w in arch.warnings)
