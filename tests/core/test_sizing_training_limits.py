"""The largest batch and longest sequence a fine-tune fits (core.sizing.training_limits)."""

from core import sizing
from core.sizing import catalog
from core.sizing.training import training_estimate
from core.sizing.training_limits import training_limits


def test_qlora_of_70b_on_one_h100_names_the_edge_exactly():
    m = sizing.model_from_catalog("meta-llama/Llama-3.1-70B")
    h100 = catalog.find_hardware("h100-sxm-80gb")
    lim = training_limits(m.parameters, m.architecture, "qlora", h100, 1, 4096, 1)
    assert lim.largest_batch >= 1 and lim.longest_sequence >= 4096
    budget = h100.usable_memory_bytes
    fits = training_estimate(m.parameters, m.architecture, "qlora", 4096, lim.largest_batch).total_bytes
    over = training_estimate(m.parameters, m.architecture, "qlora", 4096, lim.largest_batch + 1).total_bytes
    assert fits <= budget < over  # one more sequence in the batch would not fit
    assert training_estimate(m.parameters, m.architecture, "qlora", lim.longest_sequence + 1, 1).total_bytes > budget


def test_more_cards_hold_a_larger_batch_and_a_card_too_small_holds_none():
    m = sizing.model_from_catalog("meta-llama/Llama-3.1-8B")
    rtx = catalog.find_hardware("rtx-4090")
    one = training_limits(m.parameters, m.architecture, "full", rtx, 1, 2048, 1)
    eight = training_limits(m.parameters, m.architecture, "full", rtx, 8, 2048, 1)
    assert one.largest_batch == 0 and one.longest_sequence == 0  # 16 bytes/param: 128 GB for 8B
    assert eight.largest_batch >= 1
