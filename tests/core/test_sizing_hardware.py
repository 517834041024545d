"""Fit, GPUs needed, longest context and decode ceilings, on a small fixed hardware list and on the catalog."""

import pytest

from core import sizing
from core.errors import QuantLensError
from core.sizing import MYTH_70B_INT4, catalog
from core.sizing.hardware import Hardware, decode_speed_ceiling, gpus_needed_tensor_parallel
from tests.core.sizing_reference import CONFIGS

GIB = 2**30
CARD_24 = Hardware("card-24", "24 GiB card", "x", "gpu", 24 * GIB, 23 * GIB, 1000.0)
CARD_80 = Hardware("card-80", "80 GiB card", "x", "gpu", 80 * GIB, 79 * GIB, 3350.0)
MAC_64 = Hardware("mac-64", "Mac 64 GB", "apple", "apple", 64 * GIB, 48 * GIB, 400.0)
LLAMA_70B = {"model_type": "llama", "hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80,
             "num_attention_heads": 64, "num_key_value_heads": 8, "vocab_size": 128256,
             "max_position_embeddings": 131072}


def test_70b_at_int4_does_not_fit_a_24gb_card():
    model = sizing.model_from_params("70B")
    weights_only = sizing.estimate(model, "int4", context=0)
    assert weights_only.weights_bytes == 35 * 10**9
    assert not sizing.fit(model, weights_only, CARD_24).fits
    real = sizing.estimate(sizing.model_from_config(LLAMA_70B), "Q4_K_M", context=4096)
    assert not sizing.fit(sizing.model_from_config(LLAMA_70B), real, CARD_24).fits
    assert sizing.fit(sizing.model_from_config(LLAMA_70B), real, CARD_24).gpus_tensor_parallel == 2


def test_the_70b_int4_myth_is_corrected_where_a_user_looks():
    notes = sizing.myth_notes(sizing.model_from_params("70B"), (CARD_24,))
    assert notes and MYTH_70B_INT4 in notes[0] and "35.0 GB" in notes[0]
    assert sizing.myth_notes(sizing.model_from_params("8B"), (CARD_24,)) == []


def test_8b_at_fp16_fits_an_80gb_card_but_not_a_24gb_card_with_long_context():
    model = sizing.model_from_config(CONFIGS["llama-3.1-8b"])
    est = sizing.estimate(model, "fp16", context=65536)
    assert sizing.fit(model, est, CARD_80).fits
    f24 = sizing.fit(model, est, CARD_24)
    assert not f24.fits and f24.headroom_bytes < 0


def test_apple_silicon_fit_uses_the_gpu_usable_limit_not_total_ram():
    model = sizing.model_from_params("26B")
    est = sizing.estimate(model, "fp16", context=0)  # 52 GB: under 64 GiB (68.7 GB) of RAM, over 48 GiB (51.5 GB) usable
    assert est.total_bytes < MAC_64.memory_bytes
    assert not sizing.fit(model, est, MAC_64).fits


def test_gpus_needed_tensor_parallel_is_a_power_of_two_dividing_the_heads():
    assert gpus_needed_tensor_parallel(100 * GIB, 0, GIB, 23 * GIB, num_heads=64) == 8
    assert gpus_needed_tensor_parallel(100 * GIB, 0, GIB, 23 * GIB, num_heads=None) == 8
    assert gpus_needed_tensor_parallel(30 * GIB, 0, GIB, 23 * GIB, num_heads=3) is None  # only tp=1 divides 3
    model = sizing.model_from_params("70B")
    est = sizing.estimate(model, "fp16", context=0)
    f = sizing.fit(model, est, CARD_24)
    assert f.gpus_pooled == 6  # 140 GB / 23 GiB (24.7 GB) = 5.67 -> 6 cards
    assert f.gpus_tensor_parallel == 8


def test_max_context_is_the_longest_that_fits_and_respects_the_model_limit():
    model = sizing.model_from_config(CONFIGS["llama-3.1-8b"])
    longest = sizing.max_context(model, "Q8_0", CARD_24)
    assert 0 < longest < 131072
    assert sizing.fit(model, sizing.estimate(model, "Q8_0", longest), CARD_24).fits
    assert not sizing.fit(model, sizing.estimate(model, "Q8_0", longest + 1), CARD_24).fits
    assert sizing.max_context(model, "Q8_0", CARD_80) == 131072
    assert sizing.max_context(sizing.model_from_params("70B"), "fp16", CARD_24) == 0


def test_decode_ceiling_is_bandwidth_over_bytes_read_and_moe_reads_only_active_experts():
    speed = decode_speed_ceiling(10 * 10**9, 0, 1, 1000.0)
    assert speed.tokens_per_s_per_sequence == pytest.approx(100.0)
    mixtral = sizing.model_from_config(CONFIGS["mixtral-8x7b"])
    est = sizing.estimate(mixtral, "fp16", context=0)
    dense_equivalent = CARD_80.bandwidth_gb_s * 1e9 / est.weights_bytes
    assert sizing.decode_speed(est, CARD_80).tokens_per_s_per_sequence > 3.5 * dense_equivalent
    with pytest.raises(QuantLensError):
        decode_speed_ceiling(1, 0, 0, 1.0)


def test_decode_ceiling_drops_as_the_kv_cache_grows():
    model = sizing.model_from_config(CONFIGS["llama-3.1-8b"])
    short = sizing.decode_speed(sizing.estimate(model, "Q4_K_M", 1024), CARD_80)
    long = sizing.decode_speed(sizing.estimate(model, "Q4_K_M", 131072), CARD_80)
    assert long.tokens_per_s_per_sequence < short.tokens_per_s_per_sequence


def test_catalog_lookup_is_case_insensitive_and_a_typo_lists_close_matches():
    assert catalog.find_model("meta-llama/llama-3.1-8b").name == "Llama 3.1 8B"
    assert catalog.find_model("LLAMA 3.1 8B").id == "meta-llama/Llama-3.1-8B"
    with pytest.raises(QuantLensError, match="Llama 3.1 8B") as err:
        catalog.find_model("llama 3.1 8c")
    assert err.value.code == "unknown_model"


def test_catalog_hardware_includes_a_24gb_card_where_70b_int4_does_not_fit():
    hardware = catalog.load_hardware()
    cards_24 = [hw for hw in hardware if hw.kind == "gpu" and 23 * GIB <= hw.memory_bytes <= 24 * GIB]
    assert cards_24
    model = sizing.model_from_catalog("meta-llama/Llama-3.1-70B")
    est = sizing.estimate(model, "int4", 0)
    assert all(not sizing.fit(model, est, hw).fits for hw in cards_24)


def test_missing_or_broken_catalog_is_a_clear_error(tmp_path):
    with pytest.raises(QuantLensError) as err:
        catalog.load_models(tmp_path / "models.json")
    assert err.value.code == "catalog_missing"
    bad = tmp_path / "hardware.json"
    bad.write_text('[{"id": "x", "memory_bytes": -1, "bandwidth_gb_s": 1}]')
    with pytest.raises(QuantLensError) as err:
        catalog.load_hardware(bad)
    assert err.value.code == "catalog_invalid"


def test_a_mac_or_cpu_ram_is_not_counted_in_cards():
    model = sizing.model_from_params("70B")
    f = sizing.fit(model, sizing.estimate(model, "fp16", 0), MAC_64)
    assert not f.fits and f.gpus_tensor_parallel is None and f.gpus_pooled is None


def test_model_summary_states_the_architecture_the_engine_read():
    s = sizing.model_summary(sizing.model_from_config(CONFIGS["mistral-7b-v0.1"]))
    assert s["attention"] == "GQA 32/8" and s["kv_bytes_per_token_fp16"] == 131_072
    assert s["sliding_window"] == "4096 tokens on 32 of 32 layers"
    bare = sizing.model_summary(sizing.model_from_params("7B"))
    assert bare["parameters"] == 7 * 10**9 and bare["attention"] is None


def test_a_context_beyond_the_trained_one_is_computed_with_a_note():
    e = sizing.estimate(sizing.model_from_config(CONFIGS["gpt2"]), "fp16", 4096)
    assert e.kv_cache_bytes == 4096 * 36_864
    assert any("beyond" in n and "1,024" in n for n in e.notes)


def test_the_myth_note_is_given_once_for_several_large_models():
    models = [sizing.model_from_params("70B"), sizing.model_from_params("72B"), sizing.model_from_params("8B")]
    result = sizing.calculate(models, ["int4"], 0, hardware=(CARD_24,))
    assert len(result.myth_notes) == 1
    assert "70B parameters 35.0 GB; 72B parameters 36.0 GB" in result.myth_notes[0]
