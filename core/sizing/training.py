"""Memory to fine-tune: full fine-tune (mixed-precision Adam), LoRA, and QLoRA.

- Full fine-tune with mixed-precision Adam: 16 bytes per parameter before activations — BF16 weights
  (2) and gradients (2), an FP32 master copy (4) and two FP32 Adam moments (8).
- LoRA: the base stays frozen in 16-bit (2 bytes/param, no gradients or optimizer state); only the
  adapters train, each at 16 bytes per adapter parameter (FP32 weight, gradient, two moments). A rank-r
  adapter on an (out x in) matrix has r x (in + out) parameters; the default targets every linear layer
  in the blocks ("all-linear"), MoE experts included, never the router, embeddings or output layer.
- QLoRA: like LoRA but the frozen base is bitsandbytes NF4 (4.127 bits on linear layers, embeddings
  and lm_head 16-bit) — how a 70B model is fine-tuned on one 80 GB (or even 48 GB) card.

Activations (per layer per token, 16-bit, after Korthikanti et al. 2022, "Reducing Activation
Recomputation in Large Transformer Models", generalised to gated MLPs): 18*hidden + 8*intermediate
bytes for a gated MLP (18*h + 4*I for a plain one, i.e. the paper's 34*h when I = 4h), plus
5*heads*seq bytes per token for the attention scores when the attention kernel is not fused (eager).
With gradient checkpointing only each layer's input (2*hidden bytes per token) is kept, plus one layer
recomputed at a time. Logits for the loss add 8*vocab bytes per token (16-bit logits, FP32 upcast and
its gradient). These are estimates; the range (min = checkpointing + flash attention, max = eager
attention) says how far real runs can differ.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import QuantLensError
from core.sizing.architecture import Architecture, tensor_inventory
from core.sizing.kv_cache import check_context_batch
from core.sizing.overhead import FIXED_OVERHEAD_BYTES
from core.sizing.precisions import get_precision
from core.sizing.weights import weights_bytes

TRAINING_MODES: dict[str, str] = {
    "full": "Full fine-tune (mixed-precision Adam)",
    "lora": "LoRA (16-bit frozen base)",
    "qlora": "QLoRA (NF4 frozen base)",
}
ADAM_BYTES_PER_TRAINABLE = 16  # 2 weights + 2 grads + 4 FP32 master + 8 Adam moments (full FT)
ADAPTER_BYTES_PER_PARAM = 16  # FP32 adapter weight 4 + FP32 grad 4 + two FP32 moments 8
_LORA_ROLES = ("attention", "mlp", "expert", "shared_expert")


@dataclass(frozen=True)
class TrainingEstimate:
    mode: str
    trainable_parameters: int
    weights_bytes: int  # model weights held in memory (16-bit base, or NF4 for QLoRA; adapters included)
    gradients_bytes: int
    optimizer_bytes: int  # FP32 master copy + Adam moments of what is trained
    activations_bytes: int
    activations_min_bytes: int
    activations_max_bytes: int
    overhead_bytes: int  # CUDA context and workspaces
    total_bytes: int
    total_min_bytes: int
    total_max_bytes: int
    notes: tuple[str, ...] = ()


def lora_parameters(a: Architecture, rank: int = 16) -> int:
    """Adapter parameters for rank-r LoRA on every linear layer in the blocks."""
    if not 1 <= rank <= 4096:
        raise QuantLensError("invalid_number", f"LoRA rank must be between 1 and 4096, got {rank}.")
    total = 0
    for t in tensor_inventory(a):
        if t.role in _LORA_ROLES and len(t.shape) >= 2:
            experts = t.shape[0] if len(t.shape) == 3 else 1
            total += experts * rank * (t.shape[-1] + t.shape[-2])
    return total


def _activations(a: Architecture, seq: int, batch: int, checkpointing: bool, eager: bool) -> int:
    e = a.hidden_size
    if a.moe is not None:
        inter = a.moe.expert_intermediate_size * a.moe.experts_per_token + a.moe.shared_intermediate_size
    else:
        inter = a.intermediate_size
    per_token_layer = 18 * e + (8 if a.gated_mlp else 4) * inter
    tokens = seq * batch
    scores = 5 * a.num_heads * seq * tokens if eager else 0
    one_layer = tokens * per_token_layer + scores
    layers = a.num_layers * (tokens * 2 * e) + one_layer if checkpointing else a.num_layers * one_layer
    logits = tokens * 8 * a.vocab_size
    return layers + logits


def training_estimate(
    parameters: int,
    arch: Architecture | None,
    mode: str,
    seq_len: int = 2048,
    batch: int = 1,
    lora_rank: int = 16,
    gradient_checkpointing: bool = True,
) -> TrainingEstimate:
    """Memory to fine-tune a model of `parameters` with `mode` ("full", "lora", "qlora")."""
    if mode not in TRAINING_MODES:
        raise QuantLensError("unknown_mode", f"Unknown training mode {str(mode)[:30]!r}; use one of: {', '.join(TRAINING_MODES)}.")
    check_context_batch(seq_len, batch)
    notes: list[str] = []
    if mode == "full":
        trainable = parameters
        weights = 2 * parameters
        grads = 2 * parameters
        optim = 12 * parameters
    else:
        if arch is None:
            raise QuantLensError(
                "architecture_required",
                "LoRA and QLoRA sizing needs the architecture (which layers get adapters): pick a catalog model or upload config.json.",
            )
        trainable = lora_parameters(arch, lora_rank)
        base = weights_bytes(get_precision("NF4" if mode == "qlora" else "bf16"), parameters, arch)
        weights = base + 4 * trainable
        grads = 4 * trainable
        optim = 8 * trainable
        notes.append(f"LoRA rank {lora_rank} on every linear layer in the blocks: {trainable:,} trainable parameters.")
    if arch is None:
        act = act_min = act_max = 0
        notes.append("Activations need the architecture and are not counted (pick a catalog model or upload config.json).")
    else:
        act = _activations(arch, seq_len, batch, gradient_checkpointing, eager=False)
        act_min = _activations(arch, seq_len, batch, True, eager=False)
        act_max = _activations(arch, seq_len, batch, gradient_checkpointing, eager=True)
        notes.append(
            "Activations " + ("with" if gradient_checkpointing else "without")
            + " gradient checkpointing; min assumes checkpointing and flash attention, max eager attention."
        )
    fixed_min, fixed, fixed_max = FIXED_OVERHEAD_BYTES["transformers"]
    base_total = weights + grads + optim
    return TrainingEstimate(
        mode=mode,
        trainable_parameters=trainable,
        weights_bytes=weights,
        gradients_bytes=grads,
        optimizer_bytes=optim,
        activations_bytes=act,
        activations_min_bytes=act_min,
        activations_max_bytes=act_max,
        overhead_bytes=fixed,
        total_bytes=base_total + act + fixed,
        total_min_bytes=base_total + act_min + fixed_min,
        total_max_bytes=base_total + act_max + fixed_max,
        notes=tuple(notes),
    )
