"""The one-line answer per model x hardware (core.sizing.verdict), as a visitor would read it."""

from core import sizing
from core.sizing import catalog
from core.sizing.verdict import FITS_SPLIT, NO_FIT, answer, format_tokens, training_fit_text

DEFAULT = ("fp16", "int8", "int4", "Q8_0", "Q4_K_M", "AWQ-INT4", "NF4")


def verdicts(model, hardware_ids, cards=1, precisions=DEFAULT, context=4096):
    hardware = tuple(catalog.find_hardware(h) for h in hardware_ids)
    m = sizing.model_from_catalog(model) if "/" in model else sizing.model_from_params(model)
    result = sizing.calculate([m], precisions, context, 1, "fp16", "llama.cpp", hardware)
    return answer(result.models, result.estimates, hardware, cards)[0]


def test_llama_70b_on_an_rtx_4090_is_a_no_with_the_cards_it_needs_and_a_format_that_fits():
    v = verdicts("meta-llama/Llama-3.1-70B", ["rtx-4090"]).verdicts[0]
    assert not v.fits and v.cards_needed == 2 and v.cards_needed_precision == "Q4_K_M"
    assert v.fallback_precision == "IQ2_XS"
    assert v.sentence == ("Llama 3.1 70B on NVIDIA GeForce RTX 4090: no — needs 2 cards at GGUF Q4_K_M, "
                          "or fits at GGUF IQ2_XS with 4k context in llama.cpp; or offload at GGUF Q4_K_M: -ngl 43 "
                          "puts 20.7 GB in system RAM, about 4.0 tokens/s at most.")
    # -ngl as llama.cpp counts it (the output layer is one), leaving its --fit-target 1 GiB free (test_offload_truth)
    assert v.offload is not None and v.offload.n_gpu_layers == 43 and v.offload_precision == "Q4_K_M"


def test_the_most_faithful_chosen_precision_that_fits_is_named():
    v = verdicts("Qwen/Qwen2.5-32B", ["apple-m3-max-64gb"]).verdicts[0]
    assert v.fits and v.best_precision == "Q8_0" and "yes — GGUF Q8_0 fits with 4k context" in v.sentence


def test_eight_h100_cards_make_deepseek_v3_a_yes_at_a_gguf_and_its_cells_are_not_crosses():
    a = verdicts("deepseek-ai/DeepSeek-V3", ["h100-sxm-80gb"], cards=8)
    v = a.verdicts[0]
    assert v.fits and v.sentence.startswith("DeepSeek V3 on 8× NVIDIA H100 SXM 80GB: yes — GGUF Q4_K_M fits")
    q4 = a.cells[("h100-sxm-80gb", "Q4_K_M")]  # ~404 GB of weights: 5 of the 8 cards hold it
    assert q4.status == FITS_SPLIT and q4.text.startswith("✅ on 5 cards, ") and q4.cards_used == 5
    assert q4.free_bytes > 0 and q4.max_context and q4.max_context >= 4096
    alone = verdicts("deepseek-ai/DeepSeek-V3", ["h100-sxm-80gb"], cards=1).cells[("h100-sxm-80gb", "Q4_K_M")]
    assert alone.status == NO_FIT and alone.text.startswith("❌ needs 5 cards")


def test_a_mac_counts_as_one_whatever_the_cards_and_says_how_short_it_is():
    a = verdicts("deepseek-ai/DeepSeek-V3", ["apple-m3-max-64gb"], cards=8)
    v = a.verdicts[0]
    assert not v.fits and "GB short even at" in v.sentence and "8×" not in v.sentence
    assert "no llama.cpp format down to GGUF IQ1_M fits" in v.sentence


def test_contexts_are_written_the_way_people_say_them():
    assert [format_tokens(n) for n in (4096, 131072, 1000, 0)] == ["4k", "128k", "1,000", "0"]


def test_training_fit_on_one_card_or_sharded_over_the_cards_one_has():
    h100 = catalog.find_hardware("h100-sxm-80gb")
    assert training_fit_text(50 * 10**9, h100) == "✅ fits"
    assert training_fit_text(150 * 10**9, h100, cards=2) == "✅ on 2 cards (sharded)"
    assert training_fit_text(150 * 10**9, h100).startswith("❌ needs 1.")
