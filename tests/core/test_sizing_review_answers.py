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
