"""What a new user reads in the calculator's answers, after the browser review (core.sizing.verdict and friends)."""

from core import sizing
from core.sizing import catalog
from core.sizing.verdict import answer


def _answer(model, hardware_ids, precisions, context, runtime="llama.cpp", kv="fp16", cards=1):
    hardware = tuple(catalog.find_hardware(h) for h in hardware_ids)
    m = sizing.model_from_catalog(model) if "/" in model else sizing.model_from_params(model)
    result = sizing.calculate([m], precisions, context, 1, kv, runtime, hardware)
    return result, answer(result.models, result.estimates, hardware, cards, kv, runtime)[0]


def test_a_bare_parameter_count_never_claims_it_fits_with_a_context_whose_kv_cache_is_not_counted():
    _, a = _answer("70B", ["h100-sxm-80gb"], ("Q8_0", "Q4_K_M"), 131072)
    v = a.verdicts[0]
    assert v.fits
    assert "fits with 128k context" not in v.sentence and "yes" not in v.sentence
    assert "weights + overhead fit at GGUF Q8_0 in llama.cpp" in v.sentence
    assert "KV cache for 128k context not counted: give a model id or config.json for it" in v.sentence


def test_a_bare_parameter_count_that_does_not_fit_also_says_its_kv_cache_is_not_counted():
    _, a = _answer("70B", ["rtx-4090"], ("Q8_0",), 8192)
    v = a.verdicts[0]
    assert not v.fits and "with 8k context" not in v.sentence
    assert v.sentence.endswith("KV cache for 8k context not counted: give a model id or config.json for it.")


def test_a_bare_parameter_count_with_weights_only_keeps_the_plain_yes():
    _, a = _answer("7B", ["h100-sxm-80gb"], ("Q8_0",), 0)
    assert "yes — GGUF Q8_0 fits (weights only)" in a.verdicts[0].sentence


def test_a_real_model_still_says_yes_fits_with_its_context():
    _, a = _answer("meta-llama/Llama-3.1-8B", ["h100-sxm-80gb"], ("Q8_0",), 131072)
    assert "yes — GGUF Q8_0 fits with 128k context in llama.cpp" in a.verdicts[0].sentence


def test_a_view_keeps_the_first_8_models_and_12_devices_and_names_what_it_left_out():
    from core.sizing.verdict import MAX_HARDWARE_PER_VIEW, MAX_MODELS_PER_VIEW, cap_view

    models = [f"m{i}" for i in range(49)]
    hardware = [f"h{i}" for i in range(39)]
    kept_models, kept_hw, warnings = cap_view(models, hardware)
    assert (MAX_MODELS_PER_VIEW, MAX_HARDWARE_PER_VIEW) == (8, 12)
    assert kept_models == models[:8] and kept_hw == hardware[:12]
    assert warnings == ["At most 8 models per view: left out 41 (m8, m9, m10, m11, m12, m13 and 35 more).",
                        "At most 12 devices per view: left out 27 (h12, h13, h14, h15, h16, h17 and 21 more)."]
    assert cap_view(models[:8], hardware[:12]) == (models[:8], hardware[:12], [])


def test_when_the_runtime_overhead_alone_exceeds_the_card_the_answer_says_so_instead_of_asking_for_64_cards():
    # transformers at a 128k prompt: its overhead (prompt activations, core.sizing.overhead) is above 11.8 GB usable
    from core.sizing.precisions import DEFAULT_NAMES

    _, a = _answer("meta-llama/Llama-3.1-8B", ["rtx-3060-12gb"], tuple(DEFAULT_NAMES), 131072, "transformers", "q8_0")
    v = a.verdicts[0]
    assert not v.fits and "64 cards" not in v.sentence
    assert "no — the transformers runtime's overhead alone (" in v.sentence
    assert "GB at 128k context) is more than the 11.8 GB one card can use, so no number of cards helps" in v.sentence
    loadable = [c for c in a.cells.values() if not c.text.startswith("⛔")]
    assert loadable and all(c.text.startswith("❌ overhead alone ") and c.text.endswith("> 11.8 GB card")
                            for c in loadable)


def test_the_70b_int4_myth_note_shows_only_for_a_70b_class_model_at_4_bits_with_a_24_gb_card():
    from core.sizing.precisions import DEFAULT_NAMES

    result, _ = _answer("meta-llama/Llama-3.1-70B", ["rtx-4090"], ("Q4_K_M",), 4096)
    assert len(result.myth_notes) == 1 and "Often quoted, but false" in result.myth_notes[0]
    # gpt-oss-120b at MXFP4 on an H100: neither a 70B model nor a 24 GB card
    result, _ = _answer("openai/gpt-oss-120b", ["h100-sxm-80gb"], ("MXFP4_MOE",), 4096)
    assert result.myth_notes == ()
    # Llama 70B on H100s with vLLM: no 24 GB card on the page
    result, _ = _answer("meta-llama/Llama-3.1-70B", ["h100-sxm-80gb"], tuple(DEFAULT_NAMES), 4096, "vllm", cards=8)
    assert result.myth_notes == ()
    # a 70B model and a 24 GB card, but only 8-bit and 16-bit precisions chosen
    result, _ = _answer("meta-llama/Llama-3.1-70B", ["rtx-4090"], ("fp16", "Q8_0"), 4096)
    assert result.myth_notes == ()


def test_training_limits_say_not_even_batch_1_instead_of_a_largest_batch_of_0():
    from core.sizing.training_limits import TrainingLimits, limits_words

    assert limits_words(TrainingLimits(0, 2048, 8192, 4)) == (
        "not even batch 1 at 8,192 tokens fits; longest sequence at batch 4: 2,048 tokens")
    assert limits_words(TrainingLimits(3, 16384, 8192, 1)) == (
        "largest batch at 8,192 tokens: 3, longest sequence at batch 1: 16,384 tokens")
    assert limits_words(TrainingLimits(0, 0, 8192, 4)) == "not even batch 1 of a short sequence fits"
