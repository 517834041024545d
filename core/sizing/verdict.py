"""The answer people came for, one line per model x hardware: does it fit, on how many cards, and at what precision.

Tables of gigabytes answer "how much"; a visitor asks "can I run Llama 3.1 70B on my RTX 4090?". This module turns
the engine's estimates and fits into that answer, for every selected model (never only the first one), on the
number of cards the user says they have:

- a fit cell per (hardware, precision) with a status the page colours (fits / fits when split over the cards the
  user has / does not fit), so "needs 8 (TP)" is not a cross for someone who owns 8 cards;
- the best chosen precision that fits, or else the fewest cards a chosen precision needs, plus the highest-quality
  precision from a ladder of real formats that fits the cards the user has at the asked context;
- the training fit (full, LoRA, QLoRA) on the same cards.

Standard library only, like the rest of core.sizing.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.sizing.engine import MemoryEstimate, ModelSpec, estimate, fit
from core.sizing.hardware import MAX_GPUS, Fit, Hardware
from core.sizing.precisions import get_precision
from core.units import GB

MAX_CARDS = MAX_GPUS
# Real formats from most to least faithful: where to look when none of the chosen precisions fits.
FALLBACK_LADDER = ("fp16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "IQ4_XS", "Q3_K_M", "IQ3_XXS", "Q2_K", "IQ2_XS",
                   "IQ2_XXS", "IQ1_M")
FITS, FITS_SPLIT, NO_FIT = "fits", "fits_split", "no_fit"


@dataclass(frozen=True)
class FitCell:
    """One (hardware, precision) cell: the engine's Fit, read against the cards the user has."""

    hardware_id: str
    precision: str
    precision_label: str
    status: str  # FITS (one card), FITS_SPLIT (over <= cards), NO_FIT
    cards_needed: int | None  # fewest cards that hold it (tensor parallel or pooled); None: cannot be combined/too many
    text: str
    fit: Fit


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
    fallback_precision: str | None  # best precision of FALLBACK_LADDER that fits on `cards` (when none chosen fits)
    sentence: str


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


def cards_needed(f: Fit) -> int | None:
    """Fewest cards that hold it: one if it fits, else the smaller of tensor-parallel and pooled counts."""
    if f.fits:
        return 1
    options = [n for n in (f.gpus_tensor_parallel, f.gpus_pooled) if n]
    return min(options) if options else None


def fit_cell(f: Fit, hw: Hardware, precision: str, cards: int = 1, kv_counted: bool = True) -> FitCell:
    """The cell text and status for one fit, with an icon so colour is never the only signal."""
    label = get_precision(precision).label
    needed = cards_needed(f)
    suffix = "" if kv_counted else " (KV not counted)"
    if f.fits:
        return FitCell(hw.id, precision, label, FITS, 1, f"✅ {f.headroom_bytes / GB:.1f} GB free{suffix}", f)
    if needed is not None and needed <= cards:
        return FitCell(hw.id, precision, label, FITS_SPLIT, needed, f"✅ on {needed} cards{suffix}", f)
    if needed is not None:
        return FitCell(hw.id, precision, label, NO_FIT, needed, f"❌ needs {needed} cards{suffix}", f)
    if hw.kind == "gpu":
        return FitCell(hw.id, precision, label, NO_FIT, None, f"❌ needs more than {MAX_GPUS} cards{suffix}", f)
    return FitCell(hw.id, precision, label, NO_FIT, None, f"❌ {-f.headroom_bytes / GB:.1f} GB short{suffix}", f)


def _device(hw: Hardware, cards: int) -> str:
    return f"{cards}× {hw.name}" if cards > 1 and hw.kind == "gpu" else hw.name


def _verdict(model: ModelSpec, hw: Hardware, cells: list[FitCell], fallback: FitCell | None, cards: int,
             context: int) -> Verdict:
    who = f"{model.name} on {_device(hw, cards)}"
    ctx = f" with {format_tokens(context)} context" if context else " (weights only)"
    fitting = [c for c in cells if c.status != NO_FIT]
    if fitting:
        best = max(fitting, key=lambda c: c.fit.total_bytes)  # the most bytes that fit = the most faithful format
        how = (f"{best.fit.headroom_bytes / GB:.1f} GB free" if best.status == FITS
               else f"split over {best.cards_needed} cards")
        return Verdict(model.name, hw.id, hw.name, cards, True, best.precision, None, None, None,
                       f"{who}: yes — {best.precision_label} fits{ctx} ({how}).")
    needing = [c for c in cells if c.cards_needed is not None]
    nearest = min(needing, key=lambda c: (c.cards_needed, -c.fit.total_bytes)) if needing else None
    parts: list[str] = []
    if nearest is not None:
        parts.append(f"needs {nearest.cards_needed} cards at {nearest.precision_label}")
    elif hw.kind == "gpu":
        parts.append(f"needs more than {MAX_GPUS} cards at every chosen precision")
    else:
        smallest = min(cells, key=lambda c: c.fit.total_bytes)
        parts.append(f"{-smallest.fit.headroom_bytes / GB:.1f} GB short even at {smallest.precision_label}")
    if fallback is not None:
        tail = f", or fits at {fallback.precision_label}{ctx}"
    else:
        tail = f"; no format down to {FALLBACK_LADDER[-1]} fits{ctx}"
    return Verdict(model.name, hw.id, hw.name, cards, False, None,
                   nearest.cards_needed if nearest else None, nearest.precision if nearest else None,
                   fallback.precision if fallback else None, f"{who}: no — {parts[0]}{tail}.")


def answer(
    models: tuple[ModelSpec, ...] | list[ModelSpec],
    estimates: tuple[tuple[MemoryEstimate, ...], ...],
    hardware: tuple[Hardware, ...],
    cards: int = 1,
    kv_precision: str = "fp16",
    runtime: str = "llama.cpp",
) -> tuple[ModelAnswer, ...]:
    """Verdicts and fit cells for every model x hardware, from the estimates `calculate` already made."""
    cards = max(1, min(int(cards), MAX_CARDS))
    out = []
    for model, ests in zip(models, estimates, strict=True):
        cells: dict[tuple[str, str], FitCell] = {}
        verdicts = []
        if not ests:
            out.append(ModelAnswer(model.name, (), cells))
            continue
        context, batch = ests[0].context, ests[0].batch
        ladder = [estimate(model, p, context, batch, kv_precision, runtime) for p in FALLBACK_LADDER]
        for hw in hardware:
            n = cards if hw.kind == "gpu" else 1
            row = []
            for e in ests:
                cell = fit_cell(fit(model, e, hw), hw, e.precision, n, e.kv_cache_known or context == 0)
                cells[(hw.id, e.precision)] = cell
                row.append(cell)
            fallback = None
            if not any(c.status != NO_FIT for c in row):
                for e in ladder:
                    c = fit_cell(fit(model, e, hw), hw, e.precision, n)
                    if c.status != NO_FIT:
                        fallback = c
                        break
            verdicts.append(_verdict(model, hw, row, fallback, n, context))
        out.append(ModelAnswer(model.name, tuple(verdicts), cells))
    return tuple(out)


def cheapest_fitting(model_answer: ModelAnswer, hardware_id: str) -> str | None:
    """The chosen precision that fits this device with the least quality given up (the largest that fits)."""
    fitting = [c for (hw, _), c in model_answer.cells.items() if hw == hardware_id and c.status != NO_FIT]
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
