"""Fine-tuning memory: 16 bytes/param for full Adam, frozen base + adapters for LoRA, NF4 base for QLoRA."""

import pytest

from core import sizing
from core.errors import QuantLensError
from core.sizing.training import lora_parameters, training_estimate
from tests.core.sizing_reference import CONFIGS

GB = 10**9
LLAMA_70B = {"model_type": "llama", "hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80,
             "num_attention_heads": 64, "num_key_value_heads": 8, "vocab_size": 128256}


def test_full_fine_tune_with_mixed_precision_adam_is_16_bytes_per_parameter_before_activations():
    t = training_estimate(7 * 10**9, None, "full", 2048, 1)
    assert t.weights_bytes + t.gradients_bytes + t.optimizer_bytes == 16 * 7 * 10**9
    assert t.activations_bytes == 0 and any("Activations need the architecture" in n for n in t.notes)


def test_lora_adapter_count_on_llama_8b_all_linear_rank_16():
    arch = sizing.model_from_config(CONFIGS["llama-3.1-8b"]).architecture
    per_layer = 16 * ((4096 + 4096) * 2 + (4096 + 1024) * 2 + (4096 + 14336) * 3)
    assert lora_parameters(arch, 16) == 32 * per_layer  # 41,943,040


def test_qlora_fits_70b_fine_tuning_on_one_80gb_card_and_full_fine_tune_does_not():
    model = sizing.model_from_config(LLAMA_70B)
    qlora = training_estimate(model.parameters, model.architecture, "qlora", 2048, 1)
    full = training_estimate(model.parameters, model.architecture, "full", 2048, 1)
    lora = training_estimate(model.parameters, model.architecture, "lora", 2048, 1)
    assert qlora.total_bytes < 80 * 2**30 < lora.total_bytes < full.total_bytes
    assert full.total_bytes > 16 * model.parameters


def test_activation_range_orders_min_typical_max():
    model = sizing.model_from_config(CONFIGS["llama-3.1-8b"])
    no_ckpt = training_estimate(model.parameters, model.architecture, "full", 4096, 2, gradient_checkpointing=False)
    ckpt = training_estimate(model.parameters, model.architecture, "full", 4096, 2)
    assert ckpt.activations_min_bytes <= ckpt.activations_bytes < no_ckpt.activations_bytes <= no_ckpt.activations_max_bytes
    assert no_ckpt.total_min_bytes <= no_ckpt.total_bytes <= no_ckpt.total_max_bytes


def test_lora_without_architecture_is_a_clear_error():
    with pytest.raises(QuantLensError) as err:
        training_estimate(7 * 10**9, None, "lora")
    assert err.value.code == "architecture_required"


@pytest.mark.parametrize(("mode", "rank"), [("sgd", 16), ("lora", 0), ("lora", 10**6)])
def test_bad_training_settings_are_clear_errors(mode, rank):
    model = sizing.model_from_config(CONFIGS["gpt2"])
    with pytest.raises(QuantLensError):
        training_estimate(model.parameters, model.architecture, mode, 1024, 1, lora_rank=rank)
