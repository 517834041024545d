"""The answer people came for, one line per model x hardware: does it fit, on how many cards, and at what precision.

Tables of gigabytes answer "how much"; a visitor asks "can I run Llama 3.1 70B on my RTX 4090?". This module turns
the engine's estimates and fits into that answer, for every selected model (never only the first one), on the
number of cards the user says they have:

- a fit cell per (hardware, precision) under the chosen runtime (core.sizing.runtimes) with a status the page colours
  (fits / fits when split over the cards the
  user has / does not fit), so "needs 8 (TP)" is not a cross for someone who owns 8 cards;
- the best chosen precision that fits, or else the fewest cards a chosen precision needs, plus the highest-quality
  precision from a ladder of real formats that fits the cards the user has at the asked context;
- the training fit (full, LoRA, QLoRA) on the same cards.

Standard library only, like the rest of core.sizing.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.sizing.engine import MemoryEstimate, ModelSpec, estimate
from core.sizing.hardware import MAX_GPUS, Fit, Hardware, decode_speed_ceiling
from core.sizing.offload import DEFAULT_RAM_BANDWIDTH_GB_S, OffloadPlan, plan_offload
from core.sizing.precisions import get_precision
from core.sizing.runtimes import (
    TENSOR_PARALLEL,
    card_budget_bytes,
    hardware_refusal,
    load_refusal,
    per_card_bytes,
    rules,
    runtime_fit,
    usable_cards,
)
from core.units import GB

MAX_CARDS = MAX_GPUS
# One view answers at most this many models x devices: a link with 49 models and 39 devices froze the browser tab
# (7,600 cells, each with a binary search). 8 models, like the Hub field's 8 ids.
MAX_MODELS_PER_VIEW = 8
MAX_HARDWARE_PER_VIEW = 12
# Real formats from most to least faithful, for llama.cpp (each runtime has its own: core.sizing.runtimes).
FALLBACK_LADDER = rules("llama.cpp").fallback_ladder
FITS, FITS_SPLIT, NO_FIT, UNSUPPORTED = "fits", "fits_split", "no_fit", "unsupported"


@dataclass(frozen=True)
class FitCell:
    """One (hardware, precision) cell: the one computed answer the verdict, the matrix and the detail table draw.

    Every number is for the cards it runs on (`cards_used`), never silently for one card when the user has more."""

    hardware_id: str
    precision: str
    precision_label: str
    status: str  # FITS (one card), FITS_SPLIT (over <= cards), NO_FIT, UNSUPPORTED (the runtime cannot load it)
    cards_needed: int | None  # fewest cards that hold it (as the runtime splits); None: impossible/too many/unsupported
    text: str
    fit: Fit
    cards_used: int = 1  # cards the numbers below are for: the cards needed when it fits, else all usable cards
    per_card_bytes: int = 0  # what each of those cards holds (its share of weights + KV, plus the full overhead)
    budget_bytes: int = 0  # what the runtime may use on one card (vLLM: 90% of it)
    free_bytes: int = 0  # budget - per card; negative when short
    max_context: int | None = None  # longest context that fits those cards; None without an architecture
    decode_tokens_per_s: float | None = None  # bandwidth ceiling per sequence on those cards
    reason: str = ""  # for UNSUPPORTED: why the runtime cannot load it
    overhead_bytes: int = 0  # the runtime's overhead every card pays in full (what no number of cards divides)

    @property
    def overhead_alone_too_big(self) -> bool:
        """The runtime's overhead by itself exceeds one card's budget: more cards cannot help."""
        return self.status == NO_FIT and self.overhead_bytes >= self.budget_bytes > 0

    @property
    def usable(self) -> bool:
        return self.status in (FITS, FITS_SPLIT)


@dataclass(frozen=True)
class Verdict:
    """The one-line answer for one model on one device (times `cards`)."""

    model_name: str
    hardware_id: str
    hardware_name: str
    cards: int
    fits: bool
    best_precision: str | None  # best chosen precision that fits on `cards`
    cards_needed: int | None  # fewest cards any chosen precision needs (when none fits)
    cards_needed_precision: str | None
    fallback_precision: str | None  # best precision of the runtime's ladder that fits on `cards` (when none chosen fits)
    sentence: str
    runtime: str = "llama.cpp"
    context: int = 0
    batch: int = 1
    offload: OffloadPlan | None = None  # llama.cpp: part of the model in system RAM, when nothing fits the cards
    offload_precision: str | None = None


@dataclass(frozen=True)
class ModelAnswer:
    """Every verdict and fit cell for one model; pages draw one of these per selected model."""

    model_name: str
    verdicts: tuple[Verdict, ...]
    cells: dict[tuple[str, str], FitCell]


def format_tokens(n: int) -> str:
    """4096 -> '4k', 131072 -> '128k', 1000 -> '1,000': context the way people say it."""
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024:,}k"
    return f"{n:,}"


def workload_words(context: int, batch: int) -> str:
    """' with 4k context', ' with 16 requests × 8k context', ' (weights only)': what was asked, named in every verdict."""
    if not context:
        return " (weights only)"
    if batch > 1:
        return f" with {batch} concurrent requests × {format_tokens(context)} context"
    return f" with {format_tokens(context)} context"


def cards_needed(f: Fit) -> int | None:
    """Fewest cards that hold it: one if it fits, else the smaller of tensor-parallel and pooled counts."""
    if f.fits:
        return 1
    options = [n for n in (f.gpus_tensor_parallel, f.gpus_pooled) if n]
    return min(options) if options else None


def _max_context_on(model: ModelSpec, precision: str, hw: Hardware, cards: int, batch: int, kv_precision: str,
                    runtime: str, imatrix: bool | None) -> int | None:
    """Longest context (up to the trained one) whose per-card share fits the runtime's budget on `cards` cards.
    Memory grows with context, so a binary search is exact; 0 = not even one token fits."""
    if model.architecture is None:
        return None
    budget = card_budget_bytes(hw, runtime)

    def fits(c: int) -> bool:
        e = estimate(model, precision, c, batch, kv_precision, runtime, imatrix)
        return per_card_bytes(e.weights_bytes, e.kv_cache_bytes, e.overhead_bytes, cards) <= budget

    limit = model.max_context
    if not fits(1):
        return 0
    if fits(limit):
        return limit
    lo, hi = 1, limit
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def runtime_cell(model: ModelSpec, e: MemoryEstimate, hw: Hardware, cards: int = 1, runtime: str = "llama.cpp",
                 imatrix: bool | None = None, with_context: bool = True) -> FitCell:
    """The cell for one estimate on `cards` of `hw` under `runtime`: loadable or not, fits on how many of the cards,
    what each card holds, the longest context and the decode ceiling on those cards."""
    label = get_precision(e.precision).label
    heads = model.architecture.num_heads if model.architecture is not None else None
    f = runtime_fit(hw, e.weights_bytes, e.kv_cache_bytes, e.overhead_bytes, runtime, heads)
    budget = f.usable_bytes
    refusal = load_refusal(runtime, e.precision) or hardware_refusal(runtime, hw)
    if refusal:
        short = f"⛔ {rules(runtime).label} cannot load it" if load_refusal(runtime, e.precision) else \
            f"⛔ {rules(runtime).label} does not run here"
        return FitCell(hw.id, e.precision, label, UNSUPPORTED, None, short, f, 1, f.total_bytes, budget,
                       f.headroom_bytes, None, None, refusal)
    n = cards if hw.kind == "gpu" else 1
    usable = usable_cards(n, runtime, heads)
    needed = cards_needed(f)
    suffix = "" if (e.kv_cache_known or e.context == 0) else " (KV not counted)"
    if f.fits:
        status, used = FITS, 1
    elif needed is not None and needed <= usable:
        status, used = FITS_SPLIT, needed
    else:
        status, used = NO_FIT, usable
    share = per_card_bytes(e.weights_bytes, e.kv_cache_bytes, e.overhead_bytes, used)
    free = budget - share
    if status == FITS:
        text = f"✅ {free / GB:.1f} GB free{suffix}"
    elif status == FITS_SPLIT:
        text = f"✅ on {used} cards, {free / GB:.1f} GB free each{suffix}"
    elif needed is not None:
        text = f"❌ needs {needed} cards{suffix}"
    elif hw.kind == "gpu" and e.overhead_bytes >= budget:
        text = f"❌ overhead alone {e.overhead_bytes / GB:.1f} GB > {budget / GB:.1f} GB card{suffix}"
    elif hw.kind == "gpu":
        text = f"❌ needs more than {MAX_GPUS} cards{suffix}"
    else:
        text = f"❌ {-f.headroom_bytes / GB:.1f} GB short{suffix}"
    ctx = (_max_context_on(model, e.precision, hw, used, e.batch, e.kv_precision, runtime, imatrix)
           if with_context else None)
    bandwidth = hw.bandwidth_gb_s * (used if rules(runtime).split == TENSOR_PARALLEL else 1)
    speed = decode_speed_ceiling(e.active_weights_bytes, e.kv_cache_bytes, e.batch, bandwidth)
    return FitCell(hw.id, e.precision, label, status, needed, text, f, used, share, budget, free, ctx,
                   speed.tokens_per_s_per_sequence, overhead_bytes=e.overhead_bytes)


def fit_cell(f: Fit, hw: Hardware, precision: str, cards: int = 1, kv_counted: bool = True) -> FitCell:
    """A cell from a Fit alone (no runtime rules): kept for callers that hold only a Fit."""
    label = get_precision(precision).label
    needed = cards_needed(f)
    suffix = "" if kv_counted else " (KV not counted)"
    if f.fits:
        return FitCell(hw.id, precision, label, FITS, 1, f"✅ {f.headroom_bytes / GB:.1f} GB free{suffix}", f)
    if needed is not None and needed <= cards:
        return FitCell(hw.id, precision, label, FITS_SPLIT, needed, f"✅ on {needed} cards{suffix}", f, needed)
    if needed is not None:
        return FitCell(hw.id, precision, label, NO_FIT, needed, f"❌ needs {needed} cards{suffix}", f)
    if hw.kind == "gpu":
        return FitCell(hw.id, precision, label, NO_FIT, None, f"❌ needs more than {MAX_GPUS} cards{suffix}", f)
    return FitCell(hw.id, precision, label, NO_FIT, None, f"❌ {-f.headroom_bytes / GB:.1f} GB short{suffix}", f)


def _device(hw: Hardware, cards: int) -> str:
    return f"{cards}× {hw.name}" if cards > 1 and hw.kind == "gpu" else hw.name


def _offload(model: ModelSpec, ests: tuple[MemoryEstimate, ...], cells: list[FitCell], hw: Hardware, cards: int,
             runtime: str, ram_bandwidth_gb_s: float) -> tuple[OffloadPlan | None, str | None]:
    """llama.cpp only: the offload plan of the smallest chosen format it loads, when none fits the cards."""
    if runtime != "llama.cpp" or hw.kind != "gpu" or model.architecture is None or any(c.usable for c in cells):
        return None, None
    loadable = [e for e, c in zip(ests, cells, strict=True) if c.status != UNSUPPORTED]
    if not loadable:
        return None, None
    smallest = min(loadable, key=lambda e: e.total_bytes)
    return plan_offload(model, smallest, [hw] * cards, ram_bandwidth_gb_s), smallest.precision


def kv_unknown_words(context: int) -> str:
    """Said wherever a bare parameter count meets a context: its KV cache is not in any number shown."""
    return (f"KV cache for {format_tokens(context)} context not counted: give a model id or config.json for it"
            if context else "")


def _verdict(model: ModelSpec, hw: Hardware, cells: list[FitCell], fallback: FitCell | None, cards: int,
             context: int, batch: int, runtime: str, offload: tuple[OffloadPlan | None, str | None] = (None, None),
             kv_known: bool = True) -> Verdict:
    r = rules(runtime)
    who = f"{model.name} on {_device(hw, cards)}"
    # Without an architecture there is no KV cache in the numbers: never claim "fits with 128k context".
    ctx = workload_words(context, batch) if kv_known else ""
    unknown = "" if kv_known else f"; {kv_unknown_words(context)}"
    where = f" in {r.label}"
    fitting = [c for c in cells if c.usable]
    if fitting:
        best = max(fitting, key=lambda c: c.fit.total_bytes)  # the most bytes that fit = the most faithful format
        how = (f"{best.free_bytes / GB:.1f} GB free" if best.status == FITS
               else f"split over {best.cards_used} cards, {best.free_bytes / GB:.1f} GB free each")
        if r.memory_fraction is not None and hw.kind == "gpu":
            how += f" of {r.label}'s {r.memory_fraction:.0%} of the card"
        said = (f"yes — {best.precision_label} fits{ctx}{where} ({how})" if kv_known else
                f"weights + overhead fit at {best.precision_label}{where} ({how}){unknown}")
        return Verdict(model.name, hw.id, hw.name, cards, True, best.precision, None, None, None,
                       f"{who}: {said}.", runtime, context, batch)
    refused_hw = hardware_refusal(runtime, hw)
    if refused_hw:
        return Verdict(model.name, hw.id, hw.name, cards, False, None, None, None, None,
                       f"{who}: no — {refused_hw}", runtime, context, batch)
    loadable = [c for c in cells if c.status != UNSUPPORTED]
    needing = [c for c in loadable if c.cards_needed is not None]
    nearest = min(needing, key=lambda c: (c.cards_needed, -c.fit.total_bytes)) if needing else None
    parts: list[str] = []
    if not loadable:
        parts.append(f"{r.label} cannot load any chosen format")
    elif nearest is not None:
        parts.append(f"needs {nearest.cards_needed} cards at {nearest.precision_label}")
    elif hw.kind == "gpu" and all(c.overhead_alone_too_big for c in loadable):
        least = min(loadable, key=lambda c: c.overhead_bytes)
        at = f" at {format_tokens(context)} context" if context else ""
        parts.append(f"the {r.label} runtime's overhead alone ({least.overhead_bytes / GB:.1f} GB{at}) is more "
                     f"than the {least.budget_bytes / GB:.1f} GB one card can use, so no number of cards helps")
    elif hw.kind == "gpu":
        parts.append(f"needs more than {MAX_GPUS} cards at every chosen precision")
    else:
        smallest = min(loadable, key=lambda c: c.fit.total_bytes)
        parts.append(f"{-smallest.fit.headroom_bytes / GB:.1f} GB short even at {smallest.precision_label}")
    if fallback is not None:
        tail = f", or fits at {fallback.precision_label}{ctx}{where}"
    else:
        tail = f"; no {r.label} format down to {get_precision(r.fallback_ladder[-1]).label} fits{ctx}"
    plan, plan_precision = offload
    if plan is not None and plan_precision is not None:
        tail += (f"; or offload at {get_precision(plan_precision).label}: {plan.flags} puts "
                 f"{plan.ram_bytes / GB:.1f} GB in system RAM, about {plan.tokens_per_s:.1f} tokens/s at most")
    return Verdict(model.name, hw.id, hw.name, cards, False, None,
                   nearest.cards_needed if nearest else None, nearest.precision if nearest else None,
                   fallback.precision if fallback else None, f"{who}: no — {parts[0]}{tail}{unknown}.", runtime,
                   context, batch,
                   plan, plan_precision)


def answer(
    models: tuple[ModelSpec, ...] | list[ModelSpec],
    estimates: tuple[tuple[MemoryEstimate, ...], ...],
    hardware: tuple[Hardware, ...],
    cards: int = 1,
    kv_precision: str = "fp16",
    runtime: str = "llama.cpp",
    imatrix: bool | None = None,
    with_context: bool = True,
    ram_bandwidth_gb_s: float = DEFAULT_RAM_BANDWIDTH_GB_S,
) -> tuple[ModelAnswer, ...]:
    """Verdicts and fit cells for every model x hardware under `runtime`, from the estimates `calculate` made.

    One computed answer: the verdict sentence, the fit matrix and the per-device table all read these cells."""
    cards = max(1, min(int(cards), MAX_CARDS))
    out = []
    for model, ests in zip(models, estimates, strict=True):
        cells: dict[tuple[str, str], FitCell] = {}
        verdicts = []
        if not ests:
            out.append(ModelAnswer(model.name, (), cells))
            continue
        context, batch = ests[0].context, ests[0].batch
        ladder: list[MemoryEstimate] | None = None
        for hw in hardware:
            n = cards if hw.kind == "gpu" else 1
            row = []
            for e in ests:
                cell = runtime_cell(model, e, hw, n, runtime, imatrix, with_context)
                cells[(hw.id, e.precision)] = cell
                row.append(cell)
            fallback = None
            if not any(c.usable for c in row) and not hardware_refusal(runtime, hw):
                if ladder is None:
                    ladder = [estimate(model, p, context, batch, kv_precision, runtime, imatrix)
                              for p in rules(runtime).fallback_ladder]
                for e in ladder:
                    c = runtime_cell(model, e, hw, n, runtime, imatrix, with_context=False)
                    if c.usable:
                        fallback = c
                        break
            plan = _offload(model, ests, row, hw, n, runtime, ram_bandwidth_gb_s)
            kv_known = context == 0 or all(e.kv_cache_known for e in ests)
            verdicts.append(_verdict(model, hw, row, fallback, n, context, batch, runtime, plan, kv_known))
        out.append(ModelAnswer(model.name, tuple(verdicts), cells))
    return tuple(out)


def cheapest_fitting(model_answer: ModelAnswer, hardware_id: str) -> str | None:
    """The chosen precision that fits this device with the least quality given up (the largest that fits)."""
    fitting = [c for (hw, _), c in model_answer.cells.items() if hw == hardware_id and c.usable]
    return max(fitting, key=lambda c: c.fit.total_bytes).precision if fitting else None


def training_fit_text(total_bytes: int, hw: Hardware, cards: int = 1) -> str:
    """A training estimate against one device: 'fits', 'fits on 2 cards' or 'needs 3.1x'."""
    usable = hw.usable_memory_bytes * (max(1, cards) if hw.kind == "gpu" else 1)
    if total_bytes <= hw.usable_memory_bytes:
        return "✅ fits"
    if total_bytes <= usable:
        needed = -(-total_bytes // hw.usable_memory_bytes)
        return f"✅ on {needed} cards (sharded)"
    return f"❌ needs {total_bytes / usable:.1f}x the memory"


def cap_view(models: list, hardware: list, model_name=str, hardware_name=str) -> tuple[list, list, list[str]]:
    """The first MAX_MODELS_PER_VIEW models and MAX_HARDWARE_PER_VIEW devices, and one line per list that was cut
    naming what was dropped (the rest are left out of the view, never silently)."""
    warnings = []
    for items, limit, what, name in ((models, MAX_MODELS_PER_VIEW, "models", model_name),
                                     (hardware, MAX_HARDWARE_PER_VIEW, "devices", hardware_name)):
        if len(items) > limit:
            dropped = [name(x) for x in items[limit:]]
            shown = ", ".join(dropped[:6]) + (f" and {len(dropped) - 6} more" if len(dropped) > 6 else "")
            warnings.append(f"At most {limit} {what} per view: left out {len(dropped)} ({shown}).")
    return list(models[:MAX_MODELS_PER_VIEW]), list(hardware[:MAX_HARDWARE_PER_VIEW]), warnings
