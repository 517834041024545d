"""The one table of bounds on config.json values, read by the upload gate and the architecture reader alike.

Why one table: the gate (core/gate/ingest.py) refuses a config before a library allocates what it asks for,
and the calculator (core/sizing/architecture.py) refuses one before it multiplies its numbers; when the two
kept their own tables they disagreed (hidden size 65,536 in one, 1,000,000 in the other), so a config could
pass one door and be refused at the other. Each bound is generous for every published model (the largest
real values are noted) and small enough that nothing downstream allocates terabytes because a config said so
(threat 13, docs/threats.md). Standard library only: both parts import it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigBound:
    """One quantity a config may set, the largest value accepted, and every key that sets it."""

    name: str  # the quantity, as the architecture reader names it
    maximum: int
    keys: tuple[str, ...]  # config.json keys (any model family) that set this quantity


TABLE: tuple[ConfigBound, ...] = (
    # largest public values in brackets
    ConfigBound("hidden_size", 65_536, ("hidden_size", "d_model", "n_embd", "dim")),  # [16,384]
    ConfigBound("num_layers", 512, ("num_hidden_layers", "n_layer", "num_layers", "n_layers")),  # [126]
    ConfigBound("vocab_size", 2_097_152, ("vocab_size", "padded_vocab_size", "type_vocab_size")),  # [262,208]
    ConfigBound("num_heads", 1_024, ("num_attention_heads", "n_head", "num_heads")),  # [128]
    ConfigBound("num_kv_heads", 1_024, ("num_key_value_heads", "num_kv_heads")),
    ConfigBound("head_dim", 4_096, ("head_dim", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim")),  # [256]
    ConfigBound("intermediate_size", 1_048_576, ("intermediate_size", "ffn_dim", "n_inner", "ffn_hidden_size",
                                                 "moe_intermediate_size", "shared_expert_intermediate_size")),
    ConfigBound("num_experts", 4_096, ("num_experts", "num_local_experts", "n_routed_experts", "n_shared_experts",
                                       "num_experts_per_tok")),  # [256]
    ConfigBound("max_positions", 16_777_216, ("max_position_embeddings", "n_positions", "n_ctx", "seq_length")),
    ConfigBound("window", 16_777_216, ("sliding_window",)),
    ConfigBound("rank", 65_536, ("kv_lora_rank", "q_lora_rank")),  # [1,536]
)

BOUNDS: dict[str, int] = {bound.name: bound.maximum for bound in TABLE}
"""Quantity name -> largest accepted value (the architecture reader's lookup)."""

KEY_BOUNDS: dict[str, int] = {key: bound.maximum for bound in TABLE for key in bound.keys}
"""config.json key -> largest accepted value (the gate's lookup)."""
