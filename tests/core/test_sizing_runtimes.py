"""Each runtime's rules (core.sizing.runtimes): what it loads, how much of a card it takes, how it splits, and a
verdict that never tells a user to load something their runtime cannot."""

import pytest

from core import sizing
from core.sizing import catalog
from core.sizing.precisions import PRECISIONS
from core.sizing.runtimes import card_budget_bytes, load_refusal, loads, rules_summary, usable_cards
from core.sizing.verdict import FITS, FITS_SPLIT, NO_FIT, UNSUPPORTED, answer

DEFAULT = ("fp16", "int8", "int4", "Q8_0", "Q4_K_M", "AWQ-INT4", "NF4")


def one_answer(model, hardware_ids, runtime, precisions=DEFAULT, context=4096, batch=1, cards=1):
    hardware = tuple(catalog.find_hardware(h) for h in hardware_ids)
    m = sizing.model_from_catalog(model)
    result = sizing.calculate([m], precisions, context, batch, "fp16", runtime, hardware)
    return answer(result.models, result.estimates, hardware, cards, "fp16", runtime)[0]


def test_llama_cpp_loads_gguf_and_16_bit_only_and_says_what_to_use_instead():
    assert loads("llama.cpp", "Q4_K_M") and loads("llama.cpp", "fp16") and loads("llama.cpp", "IQ2_XS")
    for name in ("AWQ-INT4", "GPTQ-INT4", "NF4", "FP8-SCALED", "fp8", "int8", "int4"):
        assert not loads("llama.cpp", name), name
    assert "GGUF Q8_0" in load_refusal("llama.cpp", "int8")
    assert "GGUF" in load_refusal("llama.cpp", "AWQ-INT4")


def test_vllm_serves_checkpoints_not_gguf_and_transformers_does_not_keep_gguf_small():
    for name in ("fp16", "bf16", "FP8-SCALED", "fp8", "AWQ-INT4", "GPTQ-INT4", "NF4", "int8", "int4"):
        assert loads("vllm", name), name
    assert not loads("vllm", "Q4_K_M") and "experimental" in load_refusal("vllm", "Q4_K_M")
    assert not loads("transformers", "Q4_K_M") and "dequantizes" in load_refusal("transformers", "Q4_K_M")
    assert loads("transformers", "NF4") and loads("transformers", "int8")


def test_vllm_takes_ninety_percent_of_the_card_and_the_others_what_the_driver_leaves():
    rtx4090 = catalog.find_hardware("rtx-4090")
    assert card_budget_bytes(rtx4090, "vllm") == int(24 * 2**30 * 0.9)
    assert card_budget_bytes(rtx4090, "llama.cpp") == rtx4090.usable_memory_bytes
    assert rules_summary("vllm")["memory_fraction"] == 0.9


def test_vllm_tensor_parallel_uses_a_power_of_two_dividing_the_heads_and_layer_split_uses_every_card():
    assert usable_cards(3, "vllm", 64) == 2 and usable_cards(8, "vllm", 64) == 8 and usable_cards(8, "vllm", 12) == 4
    assert usable_cards(3, "llama.cpp", 64) == 3


def test_deepseek_v3_on_8_h100_under_llama_cpp_is_never_answered_with_fp8_or_int8():
    a = one_answer("deepseek-ai/DeepSeek-V3", ["h100-sxm-80gb"], "llama.cpp",
                   ("fp8", "FP8-SCALED", "int8", "Q4_K_M"), cards=8)
    for name in ("fp8", "FP8-SCALED", "int8"):
        cell = a.cells[("h100-sxm-80gb", name)]
        assert cell.status == UNSUPPORTED and cell.text.startswith("⛔ llama.cpp cannot load it") and cell.reason
    v = a.verdicts[0]
    assert v.fits and v.best_precision == "Q4_K_M" and "FP8" not in v.sentence and "INT8" not in v.sentence


def test_an_rtx_3060_under_llama_cpp_is_never_told_to_use_awq():
    a = one_answer("meta-llama/Llama-3.1-8B", ["rtx-3060-12gb"], "llama.cpp", context=32768)
    assert "AWQ" not in a.verdicts[0].sentence and "NF4" not in a.verdicts[0].sentence
    assert a.cells[("rtx-3060-12gb", "AWQ-INT4")].status == UNSUPPORTED


def test_vllm_8b_at_8k_with_16_requests_does_not_fit_a_4090_and_the_verdict_names_the_requests():
    a = one_answer("meta-llama/Llama-3.1-8B", ["rtx-4090"], "vllm", context=8192, batch=16)
    v = a.verdicts[0]
    assert not v.fits and "16 concurrent requests × 8k context" in v.sentence
    assert "GGUF" not in v.sentence
    assert a.cells[("rtx-4090", "Q4_K_M")].status == UNSUPPORTED
    awq = a.cells[("rtx-4090", "AWQ-INT4")]
    # the same total fits the card's usable memory under llama.cpp's budget, but not vLLM's 90%
    assert awq.status == NO_FIT and awq.budget_bytes == int(24 * 2**30 * 0.9)


@pytest.mark.parametrize("runtime", ["llama.cpp", "vllm", "transformers"])
@pytest.mark.parametrize("model", ["meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-70B", "deepseek-ai/DeepSeek-V3"])
def test_no_verdict_ever_proposes_a_format_its_runtime_cannot_load(model, runtime):
    hardware = ("rtx-3060-12gb", "rtx-4090", "h100-sxm-80gb", "apple-m3-max-64gb", "cpu-ddr5-64gb")
    names = tuple(p.name for p in PRECISIONS if p.name not in ("int3", "int2"))
    for cards in (1, 2, 8):
        a = one_answer(model, hardware, runtime, names, context=8192, cards=cards)
        for v in a.verdicts:
            for proposed in (v.best_precision, v.fallback_precision, v.cards_needed_precision):
                assert proposed is None or loads(runtime, proposed), (v.sentence, proposed)


@pytest.mark.parametrize("runtime", ["llama.cpp", "vllm"])
@pytest.mark.parametrize("cards", [1, 2, 3, 8])
def test_the_verdict_the_matrix_and_the_detail_numbers_are_one_answer(runtime, cards):
    """'Cards I have = 2' once said yes while the table under it said Fits no, Free -19.6 GB, Max context 0."""
    context = 4096
    a = one_answer("meta-llama/Llama-3.1-70B", ["rtx-4090", "rtx-3090", "h100-sxm-80gb"], runtime,
                   context=context, cards=cards)
    for v in a.verdicts:
        row = [c for (hw, _), c in a.cells.items() if hw == v.hardware_id]
        fitting = [c for c in row if c.status in (FITS, FITS_SPLIT)]
        assert v.fits == bool(fitting)
        for c in row:
            if c.status in (FITS, FITS_SPLIT):
                assert c.free_bytes >= 0 and c.cards_used <= cards
                assert c.per_card_bytes <= c.budget_bytes
                assert c.max_context is not None and c.max_context >= context
            elif c.status == NO_FIT:
                assert c.free_bytes < 0 and (c.max_context or 0) < context
        if v.fits:
            best = a.cells[(v.hardware_id, v.best_precision)]
            assert best.status in (FITS, FITS_SPLIT)
            assert (f"split over {best.cards_used} cards" in v.sentence) == (best.status == FITS_SPLIT)
