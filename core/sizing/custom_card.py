"""A card the catalog lacks, typed by the user as `name, GB, bandwidth GB/s` and carried in the link (`card=`).

Also the picker label of every catalog device, with its memory: "NVIDIA GeForce RTX 4090 (24 GB)", so typing
"24" finds every 24 GB card. Standard library only.
"""

from __future__ import annotations

import math
import re

from core.errors import QuantLensError
from core.sizing.hardware import Hardware

CUSTOM_ID = "custom-card"
MAX_NAME_CHARS = 40
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._+()/-]{0,39}$")


def picker_label(hw: Hardware) -> str:
    """The device name with its memory in GB as sold (GiB for GDDR/HBM cards, as vendors count), unless the name
    already says it."""
    gb = round(hw.memory_bytes / 2**30)
    if re.search(rf"(?<![0-9]){gb}\s?GB", hw.name, re.I):
        return hw.name
    return f"{hw.name} ({gb} GB)"


def parse_custom_card(text: str) -> Hardware:
    """`My A6000, 48, 768` -> a GPU of 48 GiB (usable: minus 1 GiB for the CUDA context) and 768 GB/s."""
    if not isinstance(text, str) or text.count(",") != 2:
        raise QuantLensError("custom_card_invalid", "Give your card as: name, memory in GB, bandwidth in GB/s "
                                                    "(e.g. RTX A6000, 48, 768).")
    name, gb_text, bw_text = (t.strip() for t in text.split(","))
    if not _NAME_RE.match(name):
        raise QuantLensError("custom_card_invalid", f"The card's name must be 1-{MAX_NAME_CHARS} letters, digits, "
                                                    "spaces or . _ + ( ) / -.")
    try:
        gb, bw = float(gb_text), float(bw_text)
    except ValueError:
        raise QuantLensError("custom_card_invalid", "The card's memory and bandwidth must be numbers.") from None
    if not (math.isfinite(gb) and 1 <= gb <= 4096 and math.isfinite(bw) and 1 <= bw <= 100_000):
        raise QuantLensError("custom_card_invalid", "The card's memory must be 1-4096 GB and its bandwidth "
                                                    "1-100,000 GB/s.")
    memory = int(gb * 2**30)
    return Hardware(CUSTOM_ID, f"{name} (yours, {gb:g} GB)", "custom", "gpu", memory, max(1, memory - 2**30), bw,
                    "Entered by the user: usable memory is the card's minus 1 GiB for the CUDA context (estimate).")


def custom_card_text(hw: Hardware) -> str:
    """The link form of a custom card (the inverse of parse_custom_card)."""
    name = hw.name.split(" (yours", 1)[0]
    return f"{name}, {hw.memory_bytes / 2**30:g}, {hw.bandwidth_gb_s:g}"
