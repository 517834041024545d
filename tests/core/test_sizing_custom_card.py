"""A card the catalog lacks (core.sizing.custom_card), and picker labels that carry each device's memory."""

import pytest

from core.errors import QuantLensError
from core.sizing import catalog
from core.sizing.custom_card import custom_card_text, parse_custom_card, picker_label


def test_a_typed_card_is_a_gpu_with_its_memory_and_bandwidth_and_round_trips():
    hw = parse_custom_card("RTX A6000, 48, 768")
    assert hw.kind == "gpu" and hw.memory_bytes == 48 * 2**30 and hw.bandwidth_gb_s == 768
    assert hw.usable_memory_bytes == 47 * 2**30 and hw.name == "RTX A6000 (yours, 48 GB)"
    assert parse_custom_card(custom_card_text(hw)) == hw


@pytest.mark.parametrize("text", ["A6000", "x, 0, 768", "x, 48, inf", "<b>, 48, 768", "a, 48, 7e9", "a,b,c"])
def test_a_bad_card_is_refused_in_one_sentence_with_a_code(text):
    with pytest.raises(QuantLensError) as err:
        parse_custom_card(text)
    assert err.value.code == "custom_card_invalid"


def test_labels_say_the_memory_unless_the_name_does():
    assert picker_label(catalog.find_hardware("rtx-4090")) == "NVIDIA GeForce RTX 4090 (24 GB)"
    assert picker_label(catalog.find_hardware("apple-m3-max-64gb")) == "Apple M3 Max 64GB"
