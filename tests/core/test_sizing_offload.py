"""llama.cpp offload plans (core.sizing.offload): layers on the card (-ngl) or MoE experts in RAM (--n-cpu-moe),
the RAM it needs, and a decode ceiling from both bandwidths."""

import pytest

from core import sizing
from core.errors import QuantLensError
from core.sizing import catalog
from core.sizing.offload import plan_offload
from core.sizing.runtimes import card_budget_bytes


def plan(model_id, precision, context, card_ids, ram_bw=89.6):
    m = sizing.model_from_catalog(model_id)
    e = sizing.estimate(m, precision, context, 1, "fp16", "llama.cpp")
    return m, e, plan_offload(m, e, [catalog.find_hardware(c) for c in card_ids], ram_bw)


def test_70b_on_one_4090_keeps_about_half_the_layers_on_the_card_at_a_few_tokens_per_second():
    m, e, p = plan("meta-llama/Llama-3.1-70B", "Q4_K_M", 8192, ["rtx-4090"])
    assert p is not None and p.kind == "layers" and p.flags == f"-ngl {p.n_gpu_layers}"
    assert 35 <= p.n_gpu_layers <= 50 and p.total_layers == 80
    assert p.gpu_bytes <= card_budget_bytes(catalog.find_hardware("rtx-4090"), "llama.cpp")
    assert p.gpu_bytes + p.ram_bytes >= e.weights_bytes + e.kv_cache_bytes  # nothing is lost between the two
    # bounded by the RAM: ~20 GB at 89.6 GB/s is at best ~4.5 reads a second; people report 2-4 tokens/s
    assert 1 < p.tokens_per_s < 89.6e9 / p.ram_bytes


def test_a_moe_model_keeps_experts_in_ram_and_reads_only_the_chosen_ones():
    m, e, p = plan("Qwen/Qwen3-30B-A3B", "Q8_0", 32768, ["rtx-4090"])
    assert p is not None and p.kind == "experts" and p.flags == f"-ngl 999 --n-cpu-moe {p.n_cpu_moe}"
    assert 1 <= p.n_cpu_moe < 48
    dense = plan_offload(m, e, [catalog.find_hardware("rtx-4090")])
    assert dense.tokens_per_s > 20  # 8 of 128 experts read per token: far faster than a dense layer split


def test_deepseek_dense_layers_count_in_the_n_cpu_moe_flag():
    # llama.cpp's --n-cpu-moe N keeps the experts of layers 0..N-1 in RAM; DeepSeek-V3's first 3 layers are dense
    m, e, p = plan("deepseek-ai/DeepSeek-V3", "Q4_K_M", 8192, ["h100-sxm-80gb"])
    assert p.kind == "experts" and p.n_cpu_moe > 3
    assert "of 58 MoE layers" in p.sentence


def test_mixed_cards_get_per_device_budgets_and_a_tensor_split():
    _, _, one = plan("meta-llama/Llama-3.1-70B", "Q4_K_M", 8192, ["rtx-4090"])
    _, _, two = plan("meta-llama/Llama-3.1-70B", "Q4_K_M", 8192, ["rtx-4090", "rtx-3060-12gb"])
    assert two.n_gpu_layers > one.n_gpu_layers and two.ram_bytes < one.ram_bytes
    assert len(two.tensor_split) == 2 and two.tensor_split[0] > two.tensor_split[1]
    assert "--tensor-split" in two.flags


def test_a_model_that_fits_needs_no_plan_and_a_bare_count_is_refused_with_a_code():
    _, _, p = plan("meta-llama/Llama-3.1-8B", "Q4_K_M", 8192, ["rtx-4090"])
    assert p is None
    m = sizing.model_from_params("70B")
    with pytest.raises(QuantLensError) as err:
        plan_offload(m, sizing.estimate(m, "Q4_K_M", 0), [catalog.find_hardware("rtx-4090")])
    assert err.value.code == "offload_needs_architecture"
