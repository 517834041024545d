"""Offload plans for llama.cpp: what most people with one card do when a model does not fit it.

Two ways to keep part of a model in system RAM, both llama.cpp options:

- `-ngl N` (--n-gpu-layers): the output layer and the last N-1 repeating layers (weights and their KV cache) on the
  card, the rest in RAM; the token embedding table stays in RAM whatever N (it is a row lookup);
- `--n-cpu-moe N`: for mixture-of-experts models, every layer on the card except the routed expert tensors
  (ffn_*_exps) of the first N MoE layers, which stay in RAM. Attention, shared experts and the KV cache stay on the
  card, and only the `experts_per_token` chosen experts of those layers are read per token.

The plan is the largest N on the card (or the fewest expert layers in RAM) whose bytes fit the card's budget at
the user's context, the RAM it needs, and a decode speed estimate from both bandwidths: one token reads the card's
share of active bytes at the card's bandwidth and the RAM share at the RAM's, one after the other, so
`tokens/s <= 1 / (gpu_bytes / gpu_bandwidth + ram_bytes / ram_bandwidth)`. Mixed cards get a per-device budget each and
llama.cpp's `--tensor-split` (layers per card).

How llama.cpp lays a model out, and what this module copies of it (llama.cpp b11434, src/llama-model.cpp and
common/fit.cpp, the fit that llama-server runs by default and `llama-fit-params` prints):
- `-ngl N` counts the output layer (lm_head + final norm) as one: N puts the output layer and the LAST N-1
  repeating layers on the GPU(s); `-ngl 0` is CPU only. The token embedding table stays in RAM. A model with tied
  embeddings gets a duplicate of the embedding table on the GPU as its output layer.
- Each card keeps `--fit-target` (1024 MiB by default) free beyond its weights, KV cache and compute buffer.
- Several cards: the fit fills the LAST card first (it holds the output layer), back to front, whole layers,
  and prints the layer count of each card as `-ts` (--tensor-split); the per-device budgets are each card's own.
- MoE: when attention, shared weights and KV of every layer fit, all layers go on the card and the routed
  experts of as many layers as needed stay in RAM (the fit writes them as -ot overrides; `--n-cpu-moe N` is the
  same memory with the first N layers' experts).
Per-layer bytes come from the GGUF tensor plan (core.sizing.gguf: llama-quantize's type for every tensor), so a
Q4_K_M layer with a Q6_K attn_v weighs what it weighs. The compute buffer is llama.cpp's graph for one 512-token
micro-batch with flash attention (its default on CUDA), as measured by llama-fit-params on 11 models: the larger of
the logits (micro-batch x vocabulary x 4, on the card holding the output layer) and the FFN activations
(3 x micro-batch x intermediate x 4; MoE: the chosen experts'), four hidden-size F32 buffers, and the F16 KQ mask
(micro-batch x context x 2 bytes) on the card running layer 0 when every layer is on the cards; with layers in
RAM, the card also holds a copy of their largest weight matrix during prompt processing (op offload), beside the
FFN activations. Measured by llama-fit-params: Llama 3.1 8B 290/314/410 MiB at 8k/32k/128k with every layer on
the card, 282 with layers in RAM; Mistral 7B Q4_K_M 148 with layers in RAM (116 + a 31.5 MiB Q4_K ffn matrix). The CUDA context itself is already outside the card's usable memory.
tests/core/test_offload_truth.py checks the plans against llama-fit-params itself (bench/truth/fit_params.py).
Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import QuantLensError
from core.sizing.architecture import Architecture
from core.sizing.engine import MemoryEstimate, ModelSpec, embedding_parameter_count
from core.sizing.gguf import plan as gguf_plan
from core.sizing.hardware import Hardware
from core.sizing.kv_cache import get_kv_precision, kv_cache_plan, layer_token_bytes
from core.sizing.overhead import LLAMA_CPP_UBATCH
from core.sizing.precisions import get_precision
from core.sizing.runtimes import card_budget_bytes

DEFAULT_RAM_BANDWIDTH_GB_S = 89.6  # dual-channel DDR5-5600, the catalog's desktop default (cpu-ddr5-*)


@dataclass(frozen=True)
class OffloadPlan:
    """One way to run a model that does not fit the card(s): what goes where, what it needs, how fast it can be."""

    kind: str  # "layers" (-ngl) or "experts" (--n-cpu-moe)
    n_gpu_layers: int  # -ngl value as llama.cpp counts it: the output layer + the last n_gpu_layers-1 layers
    n_cpu_moe: int  # --n-cpu-moe value: layers counted from the first, dense ones included (0 for kind == "layers")
    total_layers: int
    gpu_bytes: int  # on the card(s), all cards together, overhead included
    ram_bytes: int  # in system RAM (weights + KV there)
    gpu_budget_bytes: int  # all cards together
    tokens_per_s: float  # decode ceiling from both bandwidths
    gpu_bandwidth_gb_s: float
    ram_bandwidth_gb_s: float
    tensor_split: tuple[float, ...]  # layers per card for --tensor-split, as llama.cpp's fit prints it; () for one card
    flags: str  # the llama.cpp flags that realise it
    sentence: str


MIB = 1 << 20
LLAMA_CPP_FIT_TARGET_BYTES = 1024 * MIB  # llama.cpp --fit-target default (common/arg.cpp): left free on every GPU


@dataclass(frozen=True)
class _Layout:
    """Where llama.cpp's bytes are: the embedding table (always in RAM), the output layer, and per repeating layer its
    weights, the routed experts among them, and its KV cache (+ recurrent state); the compute buffer of each card."""

    embed: int
    output: int
    layers: tuple[int, ...]
    experts: tuple[int, ...]
    kv: tuple[int, ...]
    expert_share: float  # experts_per_token / num_experts: the part of a layer's experts one token reads
    # llama.cpp's compute buffer, in parts (flash attention, n_ubatch 512; see the module docstring):
    logits: int  # micro-batch x vocabulary F32, on the card holding the output layer
    ffn: int  # the FFN activations of one micro-batch
    hidden: int  # four hidden-size F32 buffers
    mask: int  # the F16 KQ mask, on the card running layer 0 when every layer is on the cards
    copy: int  # with layers in RAM: the largest of their weight matrices, copied to the card for prompt processing

    def compute_on(self, card: int, cards: int, partial: bool = False) -> int:
        """The compute buffer of card `card` of `cards` (the last one holds the output layer); `partial`: some
        layers stay in RAM, and the first card holds a copy of one of their weight matrices while it runs them.
        With several cards the last one keeps little beside the logits (llama-fit-params: Llama 3.1 8B and 70B,
        logits + 8 / 16 MiB), the first one the FFN activations, the copy and the hidden buffers (70B: 415 MiB)."""
        if cards == 1:
            return max(self.logits, self.ffn + (self.copy if partial else 0)) + self.hidden
        if card == cards - 1:
            return max(self.logits, self.ffn) + self.hidden // 4
        return self.ffn + (self.copy if partial and card == 0 else 0) + self.hidden


def _gguf_tensor_bytes(model: ModelSpec, est: MemoryEstimate) -> list[tuple[str, int]] | None:
    """(GGUF name, bytes) of every tensor when the estimate is a GGUF type; None for other formats."""
    p = get_precision(est.precision)
    if p.family != "gguf" or not p.gguf_ftype or model.architecture is None:
        return None
    try:
        return [(t.name, t.bytes) for t in gguf_plan(model.architecture, p.gguf_ftype, est.gguf_imatrix)]
    except QuantLensError:
        return None


def _layout(model: ModelSpec, est: MemoryEstimate) -> _Layout:
    a = model.architecture
    if a is None:
        raise QuantLensError("offload_needs_architecture",
                             "An offload plan needs the model's layers: pick a catalog model, a Hub id or a config.json.")
    n = a.num_layers
    layers, experts = [0] * n, [0] * n
    embed = output = token_embd = 0
    largest = 0
    has_output = False
    tensors = _gguf_tensor_bytes(model, est)
    if tensors is not None:
        for name, nbytes in tensors:
            if name.startswith("blk.") and int(name.split(".")[1]) < n:
                i = int(name.split(".")[1])
                layers[i] += nbytes
                experts[i] += nbytes if "_exps." in name else 0
                largest = max(largest, 0 if "_exps." in name else nbytes)
            elif name.startswith("output"):
                output += nbytes
                has_output |= name == "output.weight"
            else:  # token_embd, position tables, MTP layers llama.cpp does not load by default: RAM side
                embed += nbytes
                token_embd += nbytes if name == "token_embd.weight" else 0
        if not has_output:  # tied embeddings: llama.cpp puts a duplicate of token_embd in the output layer
            output += token_embd
    else:  # no per-tensor plan (not a GGUF type): the weights spread evenly, the output layer inside them
        embed = est.weights_bytes * embedding_parameter_count(a) // max(1, model.parameters)
        per_layer = (est.weights_bytes - embed) // n
        layers = [per_layer] * n
        largest = est.weights_bytes * a.intermediate_size * a.hidden_size // max(1, model.parameters)
        if a.moe is not None:
            e = est.weights_bytes * a.moe.num_experts * 3 * a.hidden_size * a.moe.expert_intermediate_size \
                // max(1, model.parameters)
            experts = [e if (a.is_moe_layer(i) if a.moe_layers else True) else 0 for i in range(n)]
    kv = _kv_per_layer(a, est)
    share = a.moe.experts_per_token / a.moe.num_experts if a.moe is not None else 1.0
    tokens = est.context * est.batch
    ub = min(LLAMA_CPP_UBATCH, tokens)
    inter = a.intermediate_size
    if a.moe is not None:
        inter = max(a.moe.expert_intermediate_size * a.moe.experts_per_token, a.intermediate_size)
    on = 1 if est.context else 0  # weights only: no compute buffer
    return _Layout(embed, output, tuple(layers), tuple(experts), kv, share, on * ub * a.vocab_size * 4,
                   on * 3 * ub * inter * 4, on * 4 * ub * a.hidden_size * 4, on * ub * tokens * 2, on * largest)


def _kv_per_layer(a: Architecture, est: MemoryEstimate) -> tuple[int, ...]:
    """Each layer's KV cache as llama.cpp allocates it (sliding-window layers keep only their window, so the last
    layers of Gemma 3 weigh less than an even share), plus an even share of any recurrent state."""
    n = a.num_layers
    state = est.state_bytes // n
    if not est.kv_cache_bytes:
        return (state,) * n
    cells = kv_cache_plan(a, est.context, est.batch, est.kv_precision, "llama.cpp").cells_per_layer
    per_token = layer_token_bytes(a, get_kv_precision(est.kv_precision))
    if len(cells) != n or len(per_token) != n:
        return ((est.kv_cache_bytes + est.state_bytes) // n,) * n
    return tuple(c * t * est.batch + state for c, t in zip(cells, per_token, strict=True))


def _fill(lay: _Layout, targets: list[int], layer_bytes, partial: bool = False) -> list[int]:
    """llama.cpp's fit (common/fit.cpp, step 3): cards filled back to front with whole units, unit 0 the output
    layer, unit j the repeating layer n-j; each card pays its compute buffer. Returns the units per card."""
    n = len(lay.layers)
    units = [lay.output] + [layer_bytes(i) for i in range(n - 1, -1, -1)]
    counts = [0] * len(targets)
    k = 0
    for d in reversed(range(len(targets))):
        used = lay.compute_on(d, len(targets), partial)
        while k < len(units) and used + units[k] + (lay.mask if k == len(units) - 1 else 0) <= targets[d]:
            used += units[k]
            k += 1
            counts[d] += 1
    return counts


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


def layer_split(model: ModelSpec, est: MemoryEstimate, cards: tuple[Hardware, ...] | list[Hardware]
                ) -> tuple[int, ...] | None:
    """Layers per card (llama.cpp's -ts, output layer counted on the last card) when the whole model fits `cards`
    with every card within its own budget, as llama.cpp's fit places it; None when it does not fit them all."""
    cards = tuple(cards)
    if not cards or any(c.kind != "gpu" for c in cards):
        return None
    lay = _layout(model, est)
    targets = [card_budget_bytes(c, "llama.cpp") - LLAMA_CPP_FIT_TARGET_BYTES for c in cards]
    counts = _fill(lay, targets, lambda i: lay.layers[i] + lay.kv[i])
    return tuple(counts) if sum(counts) == len(lay.layers) + 1 else None


def plan_offload(model: ModelSpec, est: MemoryEstimate, cards: tuple[Hardware, ...] | list[Hardware],
                 ram_bandwidth_gb_s: float = DEFAULT_RAM_BANDWIDTH_GB_S) -> OffloadPlan | None:
    """The llama.cpp offload plan for `est` on `cards` (one entry per physical card, in --device order; mixed models
    allowed, each with its own budget), or None when it fits the cards without offloading or not even the output
    layer fits. MoE models get --n-cpu-moe when it keeps more on the card than -ngl would."""
    cards = tuple(cards)
    if not cards or any(c.kind != "gpu" for c in cards):
        return None
    lay = _layout(model, est)
    n = len(lay.layers)
    targets = [card_budget_bytes(c, "llama.cpp") - LLAMA_CPP_FIT_TARGET_BYTES for c in cards]
    budget = sum(card_budget_bytes(c, "llama.cpp") for c in cards)
    if sum(_fill(lay, targets, lambda i: lay.layers[i] + lay.kv[i])) == n + 1:
        return None
    full = _fill(lay, targets, lambda i: lay.layers[i] + lay.kv[i], partial=True)
    gpu_bw = _effective_bandwidth(cards)
    multi = len(cards) > 1

    def active(i: int) -> int:  # bytes one token reads in layer i: dense weights, the chosen experts, its KV
        return lay.layers[i] - lay.experts[i] + int(lay.experts[i] * lay.expert_share) + lay.kv[i]

    plans: list[OffloadPlan] = []
    ngl = sum(full)
    if ngl >= 1:
        on_gpu = range(n - (ngl - 1), n)  # the last ngl-1 repeating layers
        on_cpu = range(0, n - (ngl - 1))
        gpu_bytes = lay.output + sum(lay.layers[i] + lay.kv[i] for i in on_gpu) + sum(
            lay.compute_on(d, len(full), partial=True) for d, k in enumerate(full) if k)
        ram = lay.embed + sum(lay.layers[i] + lay.kv[i] for i in on_cpu)
        speed = _speed(lay.output + sum(active(i) for i in on_gpu), sum(active(i) for i in on_cpu), gpu_bw,
                       ram_bandwidth_gb_s)
        split = tuple(float(k) for k in full) if multi else ()
        split_flag = f" --tensor-split {','.join(str(k) for k in full)}" if multi else ""
        plans.append(OffloadPlan(
            "layers", ngl, 0, n, gpu_bytes, ram, budget, speed, gpu_bw, ram_bandwidth_gb_s, split,
            f"-ngl {ngl}{split_flag}",
            f"Keep the output layer and {ngl - 1} of {n} layers on the card{'s' if multi else ''} (-ngl {ngl}) and "
            f"{len(on_cpu)} in RAM: {ram / 1e9:.1f} GB of RAM, about {speed:.1f} tokens/s at most."))
    n_moe = _moe_layer_count(model)
    if any(lay.experts) and n_moe:
        dense = _fill(lay, targets, lambda i: lay.layers[i] - lay.experts[i] + lay.kv[i])
        if sum(dense) == n + 1:
            # every card's room after its dense layers; llama.cpp then moves whole expert layers onto the cards
            # front to back (step 4 of its fit); whole layers here, where it may also place part of one more
            room = 0
            k = 0
            units = [lay.output] + [lay.layers[i] - lay.experts[i] + lay.kv[i] for i in range(n - 1, -1, -1)]
            for d in reversed(range(len(cards))):
                room += targets[d] - lay.compute_on(d, len(cards)) - sum(units[k:k + dense[d]]) \
                    - (lay.mask if k + dense[d] == len(units) else 0)
                k += dense[d]
            moe_layers = [i for i in range(n) if lay.experts[i]]
            on_card = 0
            for i in moe_layers:
                if lay.experts[i] > room:
                    break
                room -= lay.experts[i]
                on_card += 1
            n_cpu = len(moe_layers) - on_card
            in_ram = moe_layers[:n_cpu]
            flag = _cpu_moe_flag(model, n_cpu)
            ram_experts = sum(lay.experts[i] for i in in_ram)
            gpu_bytes = lay.output + sum(lay.layers[i] + lay.kv[i] for i in range(n)) - ram_experts + lay.mask \
                + sum(lay.compute_on(d, len(dense)) for d, k in enumerate(dense) if k)
            ram = lay.embed + ram_experts
            ram_active = int(ram_experts * lay.expert_share)
            gpu_active = lay.output + sum(active(i) for i in range(n)) - ram_active
            speed = _speed(max(0, gpu_active), ram_active, gpu_bw, ram_bandwidth_gb_s)
            split = tuple(float(k) for k in dense) if multi else ()
            split_flag = f" --tensor-split {','.join(str(k) for k in dense)}" if multi else ""
            plans.append(OffloadPlan(
                "experts", n + 1, flag, n, gpu_bytes, ram, budget, speed, gpu_bw,
                ram_bandwidth_gb_s, split, f"-ngl 999 --n-cpu-moe {flag}{split_flag}",
                f"Keep attention and the KV cache on the card{'s' if multi else ''} and the routed experts of {n_cpu} "
                f"of {n_moe} MoE layers in RAM (--n-cpu-moe {flag}): {ram / 1e9:.1f} GB of RAM, about {speed:.1f} "
                "tokens/s at most."))
    if not plans:
        return None
    return max(plans, key=lambda p: p.tokens_per_s)
