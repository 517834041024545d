"""The largest batch and the longest sequence that fit a training run on given cards.

"Does QLoRA of 70B fit an 80 GB card?" is half the question; the other half is "with what batch and sequence
length?". Training memory grows monotonically with both (activations scale with batch x sequence), so a
binary search over core.sizing.training.training_estimate is exact. Sharded over `cards` GPUs (ZeRO/FSDP-style),
the total may use every card's usable memory, as core.sizing.verdict.training_fit_text counts it.
Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import QuantLensError
from core.sizing.hardware import Hardware
from core.sizing.kv_cache import MAX_BATCH
from core.sizing.training import training_estimate

MAX_SEQUENCE = 1_048_576


@dataclass(frozen=True)
class TrainingLimits:
    """0 means not even batch 1 (or a 1-token sequence) fits."""

    largest_batch: int  # at the asked sequence length
    longest_sequence: int  # at the asked batch
    sequence: int
    batch: int


def _largest(fits, hi: int) -> int:
    if not fits(1):
        return 0
    if fits(hi):
        return hi
    lo = 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def training_limits(parameters: int, arch, mode: str, hw: Hardware, cards: int = 1, sequence: int = 2048,
                    batch: int = 1, lora_rank: int = 16, max_batch: int = 4096) -> TrainingLimits:
    """Largest batch at `sequence` and longest sequence (up to the model's trained context) at `batch`."""
    budget = hw.usable_memory_bytes * (max(1, cards) if hw.kind == "gpu" else 1)

    def total(seq: int, b: int) -> int:
        try:
            return training_estimate(parameters, arch, mode, seq, b, lora_rank).total_bytes
        except QuantLensError:
            return budget + 1

    seq_cap = min(MAX_SEQUENCE, arch.max_position_embeddings if arch is not None and arch.max_position_embeddings
                  else MAX_SEQUENCE)
    largest_batch = _largest(lambda b: total(sequence, b) <= budget, min(max_batch, MAX_BATCH))
    longest = _largest(lambda s: total(s, batch) <= budget, seq_cap)
    return TrainingLimits(largest_batch, longest, sequence, batch)


def limits_words(lim: TrainingLimits) -> str:
    """The limits in words, never "largest batch: 0": 'largest batch at 8,192 tokens: 4, longest sequence at batch 1:
    32,768 tokens', 'not even batch 1 at 8,192 tokens fits; longest sequence at batch 4: 2,048 tokens', or
    'not even batch 1 of a short sequence fits'."""
    if not lim.longest_sequence and not lim.largest_batch:
        return "not even batch 1 of a short sequence fits"
    batch = (f"largest batch at {lim.sequence:,} tokens: {lim.largest_batch}" if lim.largest_batch
             else f"not even batch 1 at {lim.sequence:,} tokens fits")
    longest = (f"longest sequence at batch {lim.batch}: {lim.longest_sequence:,} tokens" if lim.longest_sequence
               else f"not even a short sequence fits at batch {lim.batch}")
    return f"{batch}{', ' if lim.largest_batch else '; '}{longest}"
