"""Offload plans for llama.cpp: what most people with one card do when a model does not fit it.

Two ways to keep part of a model in system RAM, both llama.cpp options:

- `-ngl N` (--n-gpu-layers): the first N repeating layers (weights and their KV cache) on the card, the rest in RAM;
  the token embedding table stays in RAM whatever N (llama.cpp keeps it on the CPU: it is a row lookup);
- `--n-cpu-moe N`: for mixture-of-experts models, every layer on the card except the routed expert tensors
  (ffn_*_exps) of the first N MoE layers, which stay in RAM. Attention, shared experts and the KV cache stay on the
  card, and only the `experts_per_token` chosen experts of those layers are read per token.

The plan is the largest N on the card (or the fewest expert layers in RAM) whose bytes fit the card's budget at
the user's context, the RAM it needs, and a decode speed estimate from both bandwidths: one token reads the card's
share of active bytes at the card's bandwidth and the RAM share at the RAM's, one after the other, so
`tokens/s <= 1 / (gpu_bytes / gpu_bandwidth + ram_bytes / ram_bandwidth)`. Mixed cards get a per-device budget and
llama.cpp's `--tensor-split` proportions.

Estimates: per-layer bytes are the model's repeating weights divided evenly over layers (real GGUF mixes give
some layers a larger type, e.g. Q4_K_M's Q6_K attn_v on half the layers), so a plan is off by about a layer.
Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import QuantLensError
from core.sizing.engine import MemoryEstimate, ModelSpec, embedding_parameter_count
from core.sizing.hardware import Hardware
from core.sizing.runtimes import card_budget_bytes

DEFAULT_RAM_BANDWIDTH_GB_S = 89.6  # dual-channel DDR5-5600, the catalog's desktop default (cpu-ddr5-*)


@dataclass(frozen=True)
class OffloadPlan:
    """One way to run a model that does not fit the card(s): what goes where, what it needs, how fast it can be."""

    kind: str  # "layers" (-ngl) or "experts" (--n-cpu-moe)
    n_gpu_layers: int  # -ngl value (all layers + output when kind == "experts")
    n_cpu_moe: int  # --n-cpu-moe value: layers counted from the first, dense ones included (0 for kind == "layers")
    total_layers: int
    gpu_bytes: int  # on the card(s), all cards together, overhead included
    ram_bytes: int  # in system RAM (weights + KV there)
    gpu_budget_bytes: int  # all cards together
    tokens_per_s: float  # decode ceiling from both bandwidths
    gpu_bandwidth_gb_s: float
    ram_bandwidth_gb_s: float
    tensor_split: tuple[float, ...]  # per card proportions for --tensor-split (mixed cards); () for one card
    flags: str  # the llama.cpp flags that realise it
    sentence: str


def _layer_bytes(model: ModelSpec, est: MemoryEstimate) -> tuple[int, int, int]:
    """(embedding bytes kept in RAM, weight bytes per repeating layer (output layer spread in), KV bytes per layer)."""
    a = model.architecture
    if a is None:
        raise QuantLensError("offload_needs_architecture",
                             "An offload plan needs the model's layers: pick a catalog model, a Hub id or a config.json.")
    embed = est.weights_bytes * embedding_parameter_count(a) // max(1, model.parameters)
    per_layer = (est.weights_bytes - embed) // a.num_layers
    return embed, per_layer, est.kv_cache_bytes // a.num_layers


def _expert_bytes_per_layer(model: ModelSpec, est: MemoryEstimate) -> int:
    """Routed expert weights of one MoE layer (gate, up, down of every expert), at the estimate's bytes/parameter."""
    a = model.architecture
    if a is None or a.moe is None:
        return 0
    params = a.moe.num_experts * 3 * a.hidden_size * a.moe.expert_intermediate_size
    return est.weights_bytes * params // max(1, model.parameters)


def _moe_layer_count(model: ModelSpec) -> int:
    a = model.architecture
    if a is None or a.moe is None:
        return 0
    return sum(1 for i in range(a.num_layers) if a.is_moe_layer(i)) if a.moe_layers else a.num_layers


def _cpu_moe_flag(model: ModelSpec, n_moe_layers: int) -> int:
    """--n-cpu-moe counts layers from the first one, dense layers included (DeepSeek's first 3 have no experts):
    the flag value that puts the experts of `n_moe_layers` MoE layers in RAM."""
    a = model.architecture
    if not n_moe_layers or a is None or not a.moe_layers:
        return n_moe_layers
    seen = 0
    for i in range(a.num_layers):
        seen += a.is_moe_layer(i)
        if seen == n_moe_layers:
            return i + 1
    return a.num_layers


def _speed(gpu_active: int, ram_active: int, gpu_bw: float, ram_bw: float) -> float:
    """Seconds per token = each part's bytes over its bandwidth, one after the other; tokens/s is its inverse."""
    seconds = gpu_active / (gpu_bw * 1e9) + ram_active / (ram_bw * 1e9)
    return 1 / seconds if seconds > 0 else 0.0


def _effective_bandwidth(cards: tuple[Hardware, ...]) -> float:
    """A layer split runs the cards one after the other, each over its share (by budget): the harmonic blend."""
    budgets = [card_budget_bytes(c, "llama.cpp") for c in cards]
    total = sum(budgets)
    return 1 / sum(b / total / c.bandwidth_gb_s for b, c in zip(budgets, cards, strict=True))


def _split(cards: tuple[Hardware, ...], runtime: str) -> tuple[float, ...]:
    if len(cards) < 2:
        return ()
    budgets = [card_budget_bytes(c, runtime) for c in cards]
    return tuple(round(b / sum(budgets), 3) for b in budgets)


def plan_offload(model: ModelSpec, est: MemoryEstimate, cards: tuple[Hardware, ...] | list[Hardware],
                 ram_bandwidth_gb_s: float = DEFAULT_RAM_BANDWIDTH_GB_S) -> OffloadPlan | None:
    """The llama.cpp offload plan for `est` on `cards` (one entry per physical card; mixed models allowed), or None
    when it fits the cards without offloading or not even one layer fits. MoE models get --n-cpu-moe when it keeps
    more on the card than -ngl would; every plan keeps the KV cache of the layers on the card there."""
    cards = tuple(cards)
    if not cards or any(c.kind != "gpu" for c in cards):
        return None
    a = model.architecture
    embed, per_layer, kv_layer = _layer_bytes(model, est)
    overhead_all = est.overhead_bytes * len(cards)  # every card pays its compute buffer
    budget = sum(card_budget_bytes(c, "llama.cpp") for c in cards)
    gpu_bw = _effective_bandwidth(cards)
    room = budget - overhead_all
    need = (per_layer + kv_layer) * a.num_layers
    if need <= room:
        return None
    active_ratio = est.active_weights_bytes / max(1, est.weights_bytes)
    split = _split(cards, "llama.cpp")
    split_flag = f" --tensor-split {','.join(f'{s:g}' for s in split)}" if split else ""
    plans: list[OffloadPlan] = []
    ngl = min(a.num_layers, max(0, room // (per_layer + kv_layer))) if room > 0 else 0
    if ngl >= 1:
        cpu_layers = a.num_layers - ngl
        gpu_bytes = ngl * (per_layer + kv_layer) + overhead_all
        ram = cpu_layers * (per_layer + kv_layer) + embed
        kv_read_gpu, kv_read_ram = ngl * kv_layer, cpu_layers * kv_layer
        speed = _speed(int(ngl * per_layer * active_ratio) + kv_read_gpu,
                       int(cpu_layers * per_layer * active_ratio) + kv_read_ram, gpu_bw, ram_bandwidth_gb_s)
        plans.append(OffloadPlan(
            "layers", ngl, 0, a.num_layers, gpu_bytes, ram, budget, speed, gpu_bw, ram_bandwidth_gb_s, split,
            f"-ngl {ngl}{split_flag}",
            f"Keep {ngl} of {a.num_layers} layers on the card (-ngl {ngl}) and {cpu_layers} in RAM: "
            f"{ram / 1e9:.1f} GB of RAM, about {speed:.1f} tokens/s at most."))
    expert_layer = _expert_bytes_per_layer(model, est)
    n_moe = _moe_layer_count(model)
    if expert_layer and n_moe:
        dense_all = need - expert_layer * n_moe
        if dense_all <= room:
            n_cpu = min(n_moe, -(-(need - room) // expert_layer))
            flag = _cpu_moe_flag(model, n_cpu)
            gpu_bytes = need - n_cpu * expert_layer + overhead_all
            ram = n_cpu * expert_layer + embed
            share = a.moe.experts_per_token / a.moe.num_experts
            ram_active = int(n_cpu * expert_layer * share)
            gpu_active = int((per_layer * a.num_layers) * active_ratio) - ram_active + kv_layer * a.num_layers
            speed = _speed(max(0, gpu_active), ram_active, gpu_bw, ram_bandwidth_gb_s)
            plans.append(OffloadPlan(
                "experts", a.num_layers + 1, flag, a.num_layers, gpu_bytes, ram, budget, speed, gpu_bw,
                ram_bandwidth_gb_s, split, f"-ngl 999 --n-cpu-moe {flag}{split_flag}",
                f"Keep attention and the KV cache on the card and the routed experts of {n_cpu} of {n_moe} MoE "
                f"layers in RAM (--n-cpu-moe {flag}): {ram / 1e9:.1f} GB of RAM, about {speed:.1f} tokens/s at most."))
    if not plans:
        return None
    return max(plans, key=lambda p: p.tokens_per_s)
