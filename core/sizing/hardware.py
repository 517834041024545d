"""Does it fit, on how many cards, and how fast can it possibly decode?

- Fit compares the total (weights + KV cache + runtime overhead) with the card's *usable* memory:
  on Apple Silicon the GPU may use only ~75% of unified memory by default, so a 64 GB Mac is not a
  64 GB GPU.
- GPUs needed, two ways: tensor parallel (weights and KV split evenly over a power-of-two number of
  cards that divides the attention heads, as vLLM requires; every card pays the full runtime overhead)
  and pooled (layers spread over as many cards as the bytes need, like llama.cpp's layer split).
- Decode speed ceiling: generating one token reads every active weight once plus the KV cache of the
  sequences being decoded, so tokens/s <= bandwidth / bytes read. Real runtimes reach 50-80% of it.

"70B at INT4 fits a 24 GB card" is false; the engine words it with its own numbers (engine.MYTH_70B_INT4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.errors import QuantLensError

MAX_GPUS = 64



@dataclass(frozen=True)
class Hardware:
    """One device from the catalog. kind: "gpu", "apple" (unified memory) or "cpu" (system RAM)."""

    id: str
    name: str
    vendor: str
    kind: str
    memory_bytes: int
    usable_memory_bytes: int
    bandwidth_gb_s: float
    notes: str = ""


def hardware_from_dict(d: object) -> Hardware:
    """Validate one catalog entry; usable memory defaults to the full memory."""
    if not isinstance(d, dict):
        raise QuantLensError("catalog_invalid", f"A hardware catalog entry must be an object: {str(d)[:80]}")
    try:
        memory = int(d["memory_bytes"])
        usable = int(d.get("usable_memory_bytes") or memory)
        bandwidth = float(d["bandwidth_gb_s"])
        hw = Hardware(
            id=str(d["id"]),
            name=str(d.get("name") or d["id"]),
            vendor=str(d.get("vendor") or ""),
            kind=str(d.get("kind") or "gpu"),
            memory_bytes=memory,
            usable_memory_bytes=usable,
            bandwidth_gb_s=bandwidth,
            notes=str(d.get("notes") or ""),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise QuantLensError("catalog_invalid", f"Hardware entry {str(d.get('id'))[:40]!r} is incomplete ({exc}).") from None
    if memory <= 0 or not 0 < usable <= memory or not bandwidth > 0 or not math.isfinite(bandwidth):
        raise QuantLensError("catalog_invalid", f"Hardware entry {hw.id!r} has impossible memory or bandwidth values.")
    return hw


@dataclass(frozen=True)
class Fit:
    """How one memory estimate sits on one device."""

    hardware_id: str
    hardware_name: str
    total_bytes: int
    usable_bytes: int
    fits: bool
    headroom_bytes: int  # negative when it does not fit
    gpus_tensor_parallel: int | None  # None: more than MAX_GPUS, impossible, or not a GPU (Mac, CPU RAM)
    gpus_pooled: int | None


def gpus_needed_pooled(weights_bytes: int, kv_bytes: int, overhead_bytes: int, usable_bytes: int) -> int | None:
    """Cards needed if layers (and their KV) are spread over cards; each card pays the overhead."""
    room = usable_bytes - overhead_bytes
    if room <= 0:
        return None
    n = max(1, -(-(weights_bytes + kv_bytes) // room))
    return n if n <= MAX_GPUS else None


def gpus_needed_tensor_parallel(
    weights_bytes: int, kv_bytes: int, overhead_bytes: int, usable_bytes: int, num_heads: int | None = None
) -> int | None:
    """Smallest power-of-two tensor-parallel size whose per-card share fits (and divides the heads)."""
    tp = 1
    while tp <= MAX_GPUS:
        if num_heads is None or num_heads % tp == 0:
            per_card = -(-(weights_bytes + kv_bytes) // tp) + overhead_bytes
            if per_card <= usable_bytes:
                return tp
        tp *= 2
    return None


def check_fit(
    hw: Hardware, weights_bytes: int, kv_bytes: int, overhead_bytes: int, num_heads: int | None = None
) -> Fit:
    """Fit of weights + KV + overhead on one device, and the cards needed otherwise."""
    total = weights_bytes + kv_bytes + overhead_bytes
    usable = hw.usable_memory_bytes
    multi = hw.kind == "gpu"  # cards can be combined; a Mac's unified memory or a PC's RAM cannot
    return Fit(
        hardware_id=hw.id,
        hardware_name=hw.name,
        total_bytes=total,
        usable_bytes=usable,
        fits=total <= usable,
        headroom_bytes=usable - total,
        gpus_tensor_parallel=gpus_needed_tensor_parallel(weights_bytes, kv_bytes, overhead_bytes, usable, num_heads)
        if multi else None,
        gpus_pooled=gpus_needed_pooled(weights_bytes, kv_bytes, overhead_bytes, usable) if multi else None,
    )


@dataclass(frozen=True)
class DecodeSpeed:
    """Upper bounds from memory bandwidth (not a benchmark)."""

    bytes_per_step: int
    tokens_per_s_per_sequence: float
    tokens_per_s_total: float


def decode_speed_ceiling(active_weights_bytes: int, kv_bytes: int, batch: int, bandwidth_gb_s: float) -> DecodeSpeed:
    """One decode step reads the active weights once and every sequence's KV cache, and yields `batch` tokens."""
    if batch < 1 or bandwidth_gb_s <= 0:
        raise QuantLensError("invalid_number", "Batch must be at least 1 and bandwidth positive.")
    step = max(1, active_weights_bytes + kv_bytes)
    per_seq = bandwidth_gb_s * 1e9 / step
    return DecodeSpeed(step, per_seq, per_seq * batch)
