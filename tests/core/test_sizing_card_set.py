"""Mixed cards in one machine (core.sizing.card_set): a 24 GB and a 12 GB card together, each runtime's split."""

import pytest

from core import sizing
from core.errors import QuantLensError
from core.sizing import catalog
from core.sizing.card_set import card_set_text, card_set_verdict, parse_card_set
from core.sizing.runtimes import card_budget_bytes

HW = {h.id: h for h in catalog.load_hardware()}
PAIR = parse_card_set("rtx-4090+rtx-3060-12gb", HW)


def verdict(model_id, precisions, runtime, ctx=8192, cards=PAIR):
    m = sizing.model_from_catalog(model_id)
    return card_set_verdict(m, [sizing.estimate(m, p, ctx, 1, "fp16", runtime) for p in precisions], cards, runtime)


def test_the_link_form_names_the_cards_in_order_and_bad_ids_are_refused_with_a_code():
    assert [c.id for c in PAIR] == ["rtx-4090", "rtx-3060-12gb"] and card_set_text(PAIR) == "rtx-4090+rtx-3060-12gb"
    assert [c.id for c in parse_card_set("rtx-4090 rtx-4090,l4", HW)] == ["rtx-4090", "rtx-4090", "l4"]
    for bad in ("rtx-4090", "rtx-4090+nope", "rtx-4090+apple-m3-max-64gb", "+".join(["l4"] * 17)):
        with pytest.raises(QuantLensError) as err:
            parse_card_set(bad, HW)
        assert err.value.code == "card_set_invalid"


def test_32b_at_q4_fits_a_4090_and_a_3060_together_in_llama_cpp_with_layers_per_card():
    v = verdict("Qwen/Qwen2.5-32B", ["Q8_0", "Q4_K_M"], "llama.cpp")
    assert v.fits and v.precision == "Q4_K_M"  # Q8_0 (35 GB) does not fit 34 GB of cards; Q4_K_M does
    assert sum(v.tensor_split) == 65  # 64 layers + the output layer
    assert v.tensor_split[0] > v.tensor_split[1]  # the 24 GB card takes more layers than the 12 GB one
    assert v.flags == f"-ngl 65 -ts {v.tensor_split[0]},{v.tensor_split[1]}" and "-ts" in v.sentence
    alone = verdict("Qwen/Qwen2.5-32B", ["Q4_K_M"], "llama.cpp", cards=(HW["rtx-3060-12gb"], HW["rtx-3060-12gb"]))
    assert not alone.fits  # two 12 GB cards are not a 24 + 12


def test_70b_on_the_pair_offloads_the_rest_to_ram_with_each_card_within_its_budget():
    v = verdict("meta-llama/Llama-3.1-70B", ["Q4_K_M"], "llama.cpp")
    assert not v.fits and v.offload is not None and "--tensor-split" in v.offload.flags
    two_4090 = verdict("meta-llama/Llama-3.1-70B", ["Q4_K_M"], "llama.cpp", cards=(HW["rtx-4090"], HW["rtx-4090"]))
    assert two_4090.fits  # 48 GB holds it all; 24 + 12 GB does not
    three = verdict("meta-llama/Llama-3.1-70B", ["Q4_K_M"], "llama.cpp", cards=(HW["rtx-4090"], HW["rtx-4090"],
                                                                                   HW["rtx-3060-12gb"]))
    assert three.fits and len(three.tensor_split) == 3
    assert v.offload.ram_bytes > 5e9 and v.offload.tokens_per_s > 1
    assert v.offload.gpu_bytes <= sum(card_budget_bytes(c, "llama.cpp") for c in PAIR)


def test_vllm_gives_every_card_the_same_share_so_the_smaller_card_sets_the_budget():
    v = verdict("meta-llama/Llama-3.1-8B", ["fp16"], "vllm")
    assert v.fits and v.flags == "-tp 2" and "smallest card" in v.sentence
    # 32B at AWQ (~19 GB + KV) fits 24 + 24 but not 24 + 12 under vLLM: each card holds half
    big = verdict("Qwen/Qwen2.5-32B", ["AWQ-INT4"], "vllm")
    assert not big.fits
    assert verdict("Qwen/Qwen2.5-32B", ["AWQ-INT4"], "vllm", cards=(HW["rtx-4090"], HW["rtx-4090"])).fits


def test_a_runtime_never_gets_a_format_it_cannot_load():
    v = verdict("meta-llama/Llama-3.1-8B", ["AWQ-INT4"], "llama.cpp")
    assert not v.fits and "cannot load" in v.sentence
