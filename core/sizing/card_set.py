"""Mixed cards in one machine (a 24 GB and a 12 GB card together): does the model fit them, and how it is split.

"Cards I have" counts identical cards; people also own a pair that differs. Each runtime splits differently:
- llama.cpp splits whole layers, each card within its own memory: its fit fills the last card first (that card
  holds the output layer) and prints the layers per card as `-ts` (core.sizing.offload.layer_split, checked
  against llama-fit-params with a 10 GiB + 12 GiB pair in tests/core/test_offload_truth.py); when the model does not
  fit, the offload plan keeps the rest in RAM with the same per-card budgets;
- transformers (device_map="auto") also places whole layers per card up to each card's memory: the cards' budgets
  add up, each paying its own overhead;
- vLLM's tensor parallelism gives every card the same share, so the smallest card of the group sets the budget
  (and the group is a power of two that divides the heads).

The link form is `mixed=rtx-4090+rtx-3060-12gb` (catalog ids, "+" or "," between them). Standard library only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import QuantLensError
from core.sizing.engine import MemoryEstimate, ModelSpec
from core.sizing.hardware import Hardware
from core.sizing.offload import DEFAULT_RAM_BANDWIDTH_GB_S, OffloadPlan, layer_split, plan_offload
from core.sizing.precisions import get_precision
from core.sizing.runtimes import card_budget_bytes, load_refusal, per_card_bytes, rules, usable_cards
from core.units import GB

MAX_MIXED_CARDS = 16


@dataclass(frozen=True)
class CardSetVerdict:
    """One model on a group of (possibly different) cards used together."""

    model_name: str
    hardware_ids: tuple[str, ...]
    fits: bool
    precision: str | None  # the most faithful chosen format that fits the group
    tensor_split: tuple[int, ...]  # llama.cpp: layers per card; vLLM/transformers: ()
    flags: str  # the runtime settings that realise it ("" when nothing does)
    offload: OffloadPlan | None
    offload_precision: str | None
    sentence: str


def parse_card_set(text: str, hardware: dict[str, Hardware]) -> tuple[Hardware, ...]:
    """`rtx-4090+rtx-3060-12gb` (or with commas/spaces) -> the catalog GPUs, in order; repeats allowed."""
    ids = [t for t in re.split(r"[+,\s]+", text or "") if t]
    if len(ids) < 2:
        raise QuantLensError("card_set_invalid", "Mixed cards need at least two catalog GPU ids joined by +, "
                                                 "e.g. rtx-4090+rtx-3060-12gb.")
    if len(ids) > MAX_MIXED_CARDS:
        raise QuantLensError("card_set_invalid", f"At most {MAX_MIXED_CARDS} mixed cards.")
    out = []
    for i in ids:
        hw = hardware.get(i)
        if hw is None or hw.kind != "gpu":
            raise QuantLensError("card_set_invalid", f"{i[:40]!r} is not a GPU of the hardware catalog.")
        out.append(hw)
    return tuple(out)


def card_set_text(cards: tuple[Hardware, ...] | list[Hardware]) -> str:
    return "+".join(c.id for c in cards)


def _names(cards: tuple[Hardware, ...]) -> str:
    return " + ".join(c.name for c in cards)


def _fits_vllm(model: ModelSpec, e: MemoryEstimate, cards: tuple[Hardware, ...]) -> tuple[bool, int, int]:
    """(fits, tensor-parallel size, the smallest budget of the group it uses): every card holds the same share."""
    heads = model.architecture.num_heads if model.architecture is not None else None
    tp = usable_cards(len(cards), "vllm", heads)
    group = sorted(cards, key=lambda c: -card_budget_bytes(c, "vllm"))[:tp]
    smallest = min(card_budget_bytes(c, "vllm") for c in group)
    return per_card_bytes(e.weights_bytes, e.kv_cache_bytes, e.overhead_bytes, tp) <= smallest, tp, smallest


def _fits_layers(e: MemoryEstimate, cards: tuple[Hardware, ...], runtime: str) -> bool:
    """transformers' device_map="auto": whole layers per card, each card paying its own overhead."""
    room = sum(card_budget_bytes(c, runtime) - e.overhead_bytes for c in cards)
    return e.weights_bytes + e.kv_cache_bytes + e.state_bytes <= room


def card_set_verdict(model: ModelSpec, estimates: tuple[MemoryEstimate, ...] | list[MemoryEstimate],
                     cards: tuple[Hardware, ...] | list[Hardware], runtime: str = "llama.cpp",
                     ram_bandwidth_gb_s: float = DEFAULT_RAM_BANDWIDTH_GB_S) -> CardSetVerdict:
    """The answer for `model` at the chosen precisions (`estimates`) on `cards` used together under `runtime`."""
    from core.sizing.verdict import workload_words

    cards = tuple(cards)
    r = rules(runtime)
    ids = tuple(c.id for c in cards)
    who = f"{model.name} on {_names(cards)} together"
    ests = [e for e in estimates if load_refusal(r.name, e.precision) is None]
    if not ests:
        return CardSetVerdict(model.name, ids, False, None, (), "", None, None,
                              f"{who}: no — {r.label} cannot load any chosen format.")
    ctx = workload_words(ests[0].context, ests[0].batch)
    for e in sorted(ests, key=lambda e: -e.weights_bytes):  # the most faithful format that fits
        label = get_precision(e.precision).label
        if r.name == "llama.cpp" and model.architecture is not None:
            split = layer_split(model, e, cards)
            if split is not None:
                ts = ",".join(map(str, split))
                return CardSetVerdict(
                    model.name, ids, True, e.precision, split, f"-ngl {sum(split)} -ts {ts}", None, None,
                    f"{who}: yes — {label} fits{ctx} in llama.cpp, layers split {ts} (-ts {ts}: each card "
                    "within its own memory, the last one holding the output layer).")
        elif r.name == "vllm":
            ok, tp, smallest = _fits_vllm(model, e, cards)
            if ok:
                return CardSetVerdict(
                    model.name, ids, True, e.precision, (), f"-tp {tp}", None, None,
                    f"{who}: yes — {label} fits{ctx} in vLLM with tensor parallel {tp} (equal shares, so the "
                    f"smallest card's {smallest / GB:.1f} GB sets the budget of each).")
        elif _fits_layers(e, cards, r.name):
            return CardSetVerdict(
                model.name, ids, True, e.precision, (), 'device_map="auto"', None, None,
                f"{who}: yes — {label} fits{ctx} in {r.label} (device_map=\"auto\" fills each card to its own "
                "memory).")
    sentence = f"{who}: no — no chosen format fits{ctx} in {r.label}"
    plan, plan_precision = None, None
    if r.name == "llama.cpp" and model.architecture is not None:
        smallest = min(ests, key=lambda e: e.total_bytes)
        plan, plan_precision = plan_offload(model, smallest, cards, ram_bandwidth_gb_s), smallest.precision
        if plan is not None:
            sentence += (f"; offload at {get_precision(plan_precision).label}: {plan.flags} puts "
                         f"{plan.ram_bytes / GB:.1f} GB in system RAM, about {plan.tokens_per_s:.1f} tokens/s at most")
    elif r.name == "vllm":
        sentence += " (tensor parallel gives every card the same share: the smallest card sets the budget)"
    return CardSetVerdict(model.name, ids, False, None, plan.tensor_split and tuple(int(x) for x in plan.tensor_split)
                          if plan else (), plan.flags if plan else "", plan, plan_precision if plan else None,
                          sentence + ".")
