"""The sizing facade the calculator page, the home page and `python -m core size` call.

One verb, `estimate(model, precision, context, batch, kv_precision, runtime) -> MemoryEstimate`, over
plain data: a ModelSpec (from a parameter count, a catalog entry or a config.json) and a precision
name. Everything else (tables, context sweeps, fit matrix, max context, decode ceilings) is built
from it. All byte figures are integers; GB means 10^9 bytes, GiB 2^30.

A bare parameter count has no shape, so its KV cache cannot be computed honestly: it is reported as
0 with `kv_cache_known=False` and a note, rather than guessed from an assumed shape.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from core.errors import QuantLensError
from core.sizing import catalog as _catalog
from core.sizing.architecture import (
    Architecture,
    active_parameter_count,
    architecture_from_config,
    card_active_parameter_count,
    embedding_parameter_count,
    parameter_count,
    parse_config_json,
    parse_param_count,
)
from core.sizing.gguf import uses_imatrix
from core.sizing.hardware import DecodeSpeed, Fit, Hardware, check_fit, decode_speed_ceiling
from core.sizing.kv_cache import check_context_batch, get_kv_precision, kv_cache_plan, state_bytes
from core.sizing.overhead import get_runtime, runtime_overhead
from core.sizing.precisions import Precision, get_precision
from core.sizing.weights import weights_bytes as _weights_bytes
from core.sizing.weights import weights_note
from core.units import GB, GIB

DEFAULT_MAX_CONTEXT = 131_072


@dataclass(frozen=True)
class ModelSpec:
    """A model to size. `architecture` is None for a bare parameter count."""

    name: str
    parameters: int
    active_parameters: int
    architecture: Architecture | None = None
    # Without the input embedding table (a lookup, not a matmul): how OpenAI quotes gpt-oss-20b's 3.6B active.
    parameters_without_embeddings: int | None = None
    active_parameters_without_embeddings: int | None = None
    source: str = "params"  # "params" | "catalog" | "config"
    catalog_id: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def max_context(self) -> int:
        """The model's trained context (max_position_embeddings), or 128k when unknown."""
        a = self.architecture
        return a.max_position_embeddings if a is not None and a.max_position_embeddings else DEFAULT_MAX_CONTEXT


def format_params(n: int) -> str:
    """8030261248 -> '8.03B'."""
    for div, suffix in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K")):
        if n >= div:
            return f"{n / div:.3g}{suffix}" if n < 100 * div else f"{n / div:.0f}{suffix}"
    return str(n)


def model_from_params(value: Any, name: str | None = None) -> ModelSpec:
    """A model known only by its parameter count ("7B", "1.5e9", 350_000_000)."""
    n = parse_param_count(value)
    return ModelSpec(name=name or f"{format_params(n)} parameters", parameters=n, active_parameters=n)


def model_from_architecture(arch: Architecture, name: str, source: str, catalog_id: str | None = None) -> ModelSpec:
    embeddings = embedding_parameter_count(arch)
    return ModelSpec(
        name=name,
        parameters=parameter_count(arch),
        active_parameters=card_active_parameter_count(arch),
        architecture=arch,
        parameters_without_embeddings=parameter_count(arch) - embeddings,
        active_parameters_without_embeddings=min(active_parameter_count(arch) - embeddings,
                                                 card_active_parameter_count(arch)),
        source=source,
        catalog_id=catalog_id,
        warnings=arch.warnings,
    )


def model_from_config(config: dict[str, Any] | str | bytes, name: str = "Uploaded config.json") -> ModelSpec:
    """A model from a config.json (dict, or its JSON text/bytes), counted exactly from its architecture."""
    if isinstance(config, (str, bytes)):
        config = parse_config_json(config)
    return model_from_architecture(architecture_from_config(config), name, "config")


@lru_cache(maxsize=256)
def _catalog_spec(model_id: str) -> ModelSpec:
    entry = _catalog.find_model(model_id)
    return model_from_architecture(architecture_from_config(entry.config), entry.name, "catalog", entry.id)


def model_from_catalog(query: str) -> ModelSpec:
    """A model from the bundled catalog, by id or name (case-insensitive)."""
    return _catalog_spec(_catalog.find_model(query).id)


def resolve_model(*, params: Any = None, model: str | None = None, config: Any = None) -> ModelSpec:
    """Exactly one of a parameter count, a catalog model, or a config (dict / JSON text)."""
    given = [x is not None for x in (params, model, config)]
    if sum(given) != 1:
        raise QuantLensError("model_choice", "Give exactly one of a parameter count, a catalog model, or a config.json.")
    if params is not None:
        return model_from_params(params)
    if model is not None:
        return model_from_catalog(model)
    return model_from_config(config)


@dataclass(frozen=True)
class MemoryEstimate:
    """Memory for one model at one precision. `*_bytes` are integers; overhead is an estimate range."""

    model_name: str
    precision: str
    precision_label: str
    precision_family: str
    weights_bytes: int
    kv_cache_bytes: int
    overhead_bytes: int
    overhead_min_bytes: int
    overhead_max_bytes: int
    total_bytes: int
    total_min_bytes: int
    total_max_bytes: int
    active_weights_bytes: int
    context: int
    batch: int
    kv_precision: str
    runtime: str
    kv_cache_known: bool
    notes: tuple[str, ...] = ()
    kv_cache_rule: str = ""  # which runtime rule sized the KV cache, in words
    gguf_imatrix: bool | None = None  # GGUF rows: made with an importance matrix or not; None for other formats
    # Constant per-sequence state of SSM / recurrent layers (conv + SSM state), x batch; in the totals, apart from KV.
    state_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["notes"] = list(self.notes)
        return d


def weights_bytes(model: ModelSpec, precision: str | Precision, imatrix: bool | None = None) -> int:
    """Weights at a precision (ideal: exact bits x parameters; real formats: per tensor when known)."""
    p = precision if isinstance(precision, Precision) else get_precision(precision)
    return _weights_bytes(p, model.parameters, model.architecture, imatrix)


def estimate(
    model: ModelSpec,
    precision: str | Precision,
    context: int = 0,
    batch: int = 1,
    kv_precision: str = "fp16",
    runtime: str = "llama.cpp",
    imatrix: bool | None = None,
) -> MemoryEstimate:
    """Weights + KV cache + runtime overhead for `batch` sequences of `context` tokens (0 = weights only).

    `imatrix`: GGUF rows as made with (True) or without (False) an importance matrix; None = only for the
    types llama.cpp cannot make without one. The KV cache follows `runtime`'s own allocation rule."""
    p = precision if isinstance(precision, Precision) else get_precision(precision)
    check_context_batch(context, batch)
    kv_p = get_kv_precision(kv_precision)
    runtime = get_runtime(runtime)
    arch = model.architecture
    weights = _weights_bytes(p, model.parameters, arch, imatrix)
    gguf_imatrix = uses_imatrix(p.gguf_ftype, imatrix) if p.family == "gguf" and p.gguf_ftype else None
    kv_rule = ""
    notes: list[str] = []
    note = weights_note(p, arch)
    if note:
        notes.append(note)
    if arch is None:
        kv = 0
        kv_known = context == 0
        if context:
            notes.append("KV cache not counted: it depends on layers, KV heads and head size, which a bare parameter count lacks.")
    else:
        kv_plan = kv_cache_plan(arch, context, batch, kv_p.name, runtime)
        kv, kv_rule = kv_plan.bytes, kv_plan.rule
        kv_known = True
        if arch.is_encoder and context:
            notes.append("Encoder model: no KV cache (nothing is generated token by token).")
        if arch.max_position_embeddings and context > arch.max_position_embeddings:
            notes.append(f"Context {context:,} is beyond {model.name}'s trained context of "
                         f"{arch.max_position_embeddings:,} tokens; memory is computed anyway.")
    over = runtime_overhead(arch, runtime, context, batch, weights)
    state = state_bytes(arch, runtime, batch) if context else 0
    if state:
        notes.append(f"Recurrent layers keep a constant state per sequence ({state // batch:,} bytes each, any "
                     "context length), shown as its own line.")
    active = weights if model.active_parameters == model.parameters else weights * model.active_parameters // model.parameters
    return MemoryEstimate(
        model_name=model.name,
        precision=p.name,
        precision_label=p.label,
        precision_family=p.family,
        weights_bytes=weights,
        kv_cache_bytes=kv,
        overhead_bytes=over.typical_bytes,
        overhead_min_bytes=over.min_bytes,
        overhead_max_bytes=over.max_bytes,
        total_bytes=weights + kv + state + over.typical_bytes,
        total_min_bytes=weights + kv + state + over.min_bytes,
        total_max_bytes=weights + kv + state + over.max_bytes,
        active_weights_bytes=active,
        context=context,
        batch=batch,
        kv_precision=kv_p.name,
        runtime=runtime,
        kv_cache_known=kv_known,
        notes=tuple(notes) + (over.notes if context else ()),
        kv_cache_rule=kv_rule,
        gguf_imatrix=gguf_imatrix,
        state_bytes=state,
    )


def estimate_all(
    model: ModelSpec,
    precisions: tuple[str | Precision, ...] | list[str | Precision],
    context: int = 0,
    batch: int = 1,
    kv_precision: str = "fp16",
    runtime: str = "llama.cpp",
    imatrix: bool | None = None,
) -> tuple[MemoryEstimate, ...]:
    return tuple(estimate(model, p, context, batch, kv_precision, runtime, imatrix) for p in precisions)


SEED_MODELS = (7 * 10**9, 70 * 10**9)
SEED_PRECISIONS = ("fp16", "int8", "int4")


def seed_table(
    parameter_counts: tuple[int, ...] = SEED_MODELS, precisions: tuple[str, ...] = SEED_PRECISIONS
) -> list[dict[str, Any]]:
    """The home page's table: weights only, ideal precisions. 7B -> 14/7/3.5 GB, 70B -> 140/70/35 GB.

    Rows: {"model": "7B parameters", "parameters": 7e9 as int, "precision": "fp16", "weights_bytes": int,
    "weights_gb": float (10^9), "weights_gib": float (2^30)}.
    """
    rows = []
    for n in parameter_counts:
        m = model_from_params(n)
        for name in precisions:
            w = weights_bytes(m, name)
            rows.append({"model": m.name, "parameters": n, "precision": get_precision(name).label,
                         "weights_bytes": w, "weights_gb": w / GB, "weights_gib": w / GIB})
    return rows


def context_points(max_context: int, start: int = 512) -> tuple[int, ...]:
    """Context lengths for a memory-vs-context chart: 0, then powers of two up to max_context (inclusive)."""
    points = [0]
    c = start
    while c < max_context:
        points.append(c)
        c *= 2
    points.append(max_context)
    return tuple(points)


def memory_vs_context(
    model: ModelSpec,
    precisions: tuple[str, ...] | list[str],
    contexts: tuple[int, ...],
    batch: int = 1,
    kv_precision: str = "fp16",
    runtime: str = "llama.cpp",
    imatrix: bool | None = None,
) -> list[dict[str, Any]]:
    """Rows {"precision", "context", "weights_bytes", "kv_cache_bytes", "overhead_bytes", "total_bytes"}."""
    rows = []
    for name in precisions:
        for c in contexts:
            e = estimate(model, name, c, batch, kv_precision, runtime, imatrix)
            rows.append({"precision": e.precision, "context": c, "weights_bytes": e.weights_bytes,
                         "kv_cache_bytes": e.kv_cache_bytes, "overhead_bytes": e.overhead_bytes,
                         "total_bytes": e.total_bytes})
    return rows


def fit(model: ModelSpec, est: MemoryEstimate, hw: Hardware) -> Fit:
    """How `est` sits on `hw`: fits, headroom, GPUs needed (tensor parallel and pooled)."""
    heads = model.architecture.num_heads if model.architecture is not None else None
    return check_fit(hw, est.weights_bytes, est.kv_cache_bytes + est.state_bytes, est.overhead_bytes, heads)


def fit_matrix(model: ModelSpec, estimates: tuple[MemoryEstimate, ...], hardware: tuple[Hardware, ...]) -> list[Fit]:
    """Every (hardware, estimate) pair, hardware-major."""
    return [fit(model, e, hw) for hw in hardware for e in estimates]


def max_context(
    model: ModelSpec,
    precision: str | Precision,
    hw: Hardware,
    batch: int = 1,
    kv_precision: str = "fp16",
    runtime: str = "llama.cpp",
    n_gpus: int = 1,
    limit: int | None = None,
    imatrix: bool | None = None,
) -> int:
    """Longest context (up to the model's trained context) whose typical total fits `n_gpus` cards.

    0 means not even a minimal context fits. Memory grows monotonically with context, so a binary
    search is exact. With several cards the weights and KV split evenly and each card pays the overhead.
    """
    limit = limit or model.max_context
    n_gpus = max(1, n_gpus)

    def fits(c: int) -> bool:
        e = estimate(model, precision, c, batch, kv_precision, runtime, imatrix)
        per_card = -(-(e.weights_bytes + e.kv_cache_bytes + e.state_bytes) // n_gpus) + e.overhead_bytes
        return per_card <= hw.usable_memory_bytes

    if not fits(1):
        return 0
    if fits(limit):
        return limit
    lo, hi = 1, limit  # fits(lo) and not fits(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


def decode_speed(est: MemoryEstimate, hw: Hardware) -> DecodeSpeed:
    """Bandwidth ceiling on decode tokens/s: active weights + KV read per step (MoE reads only active experts)."""
    return decode_speed_ceiling(est.active_weights_bytes, est.kv_cache_bytes, est.batch, hw.bandwidth_gb_s)


def _myth_70b_int4() -> str:
    """The correction, with the engine's own figures for 70B (ideal INT4 and a real GGUF Q4_K_M, per tensor)."""
    m = model_from_params(70 * 10**9)
    ideal, q4 = weights_bytes(m, "int4") / GB, weights_bytes(m, "Q4_K_M") / GB
    return (f"Often quoted, but false: a 70B model at INT4 does not fit a 24 GB card. Its weights alone are {ideal:.0f} GB "
            f"(70e9 x 0.5 byte, ideal) and about {q4:.0f} GB as a real GGUF Q4_K_M, before the KV cache. It needs two "
            "24 GB cards, a 48 GB card, or offloading layers to CPU RAM (much slower).")


MYTH_70B_INT4 = _myth_70b_int4()


def _int4_class(precision: str | Precision) -> bool:
    """4-bit formats, ideal or real (INT4, Q4_K_M, AWQ, GPTQ, NF4, IQ4_XS, MXFP4): what the myth is about."""
    p = precision if isinstance(precision, Precision) else get_precision(precision)
    return 4 <= p.bits_per_weight <= 5


def myth_notes(model: ModelSpec, hardware: tuple[Hardware, ...] = (),
               precisions: tuple[str | Precision, ...] | list[str | Precision] | None = None) -> list[str]:
    """The "70B at INT4 fits a 24 GB card" correction, only where it applies: a ~70B model (50-100B parameters)
    and a ~24 GB card (20 GB to 32 GiB) on the page, at a 4-bit precision (None: precisions not known)."""
    int4 = weights_bytes(model, "int4")
    if int4 <= 24 * GB or not 50 * 10**9 <= model.parameters <= 100 * 10**9:
        return []
    if not any(hw.kind == "gpu" and 20 * GB <= hw.memory_bytes <= 32 * GIB for hw in hardware):
        return []
    if precisions is not None and not any(_int4_class(p) for p in precisions):
        return []
    return [MYTH_70B_INT4 + f" For {model.name}: {int4 / GB:.1f} GB of weights at ideal INT4."]


@dataclass(frozen=True)
class HardwareDetail:
    """One (hardware, precision) pair for the focus model: fit, longest context, decode ceiling."""

    hardware: Hardware
    estimate: MemoryEstimate
    fit: Fit
    max_context: int | None  # None when the model has no architecture (no KV estimate)
    decode: DecodeSpeed


@dataclass(frozen=True)
class CalculatorResult:
    """Everything the calculator page draws for one interaction; the first model is the focus model."""

    models: tuple[ModelSpec, ...]
    estimates: tuple[tuple[MemoryEstimate, ...], ...]  # per model, per precision
    fits: tuple[Fit, ...]  # focus model, hardware-major, per precision
    details: tuple[HardwareDetail, ...]  # focus model, first `detail_hardware` devices, per precision
    sweep: tuple[dict[str, Any], ...]  # focus model, memory against context per precision
    myth_notes: tuple[str, ...]


def calculate(
    models: tuple[ModelSpec, ...] | list[ModelSpec],
    precisions: tuple[str | Precision, ...] | list[str | Precision],
    context: int,
    batch: int = 1,
    kv_precision: str = "fp16",
    runtime: str = "llama.cpp",
    hardware: tuple[Hardware, ...] = (),
    detail_hardware: int = 4,
    imatrix: bool | None = None,
) -> CalculatorResult:
    """One calculator interaction: estimates for every model x precision, and for the focus (first) model the
    fit matrix, per-device details (max context by binary search, decode ceiling) and a context sweep."""
    if not models:
        raise QuantLensError("model_choice", "Choose at least one model.")
    if not precisions:
        raise QuantLensError("unknown_precision", "Choose at least one precision.")
    models = tuple(models)
    focus = models[0]
    estimates = tuple(estimate_all(m, tuple(precisions), context, batch, kv_precision, runtime, imatrix)
                      for m in models)
    fits = tuple(fit(focus, e, hw) for hw in hardware for e in estimates[0])
    details = tuple(
        HardwareDetail(
            hardware=hw,
            estimate=e,
            fit=fit(focus, e, hw),
            max_context=(max_context(focus, e.precision, hw, batch, kv_precision, runtime, imatrix=imatrix)
                         if focus.architecture else None),
            decode=decode_speed(e, hw),
        )
        for hw in hardware[:detail_hardware]
        for e in estimates[0]
    )
    names = [e.precision for e in estimates[0]]
    sweep = tuple(memory_vs_context(focus, names, context_points(min(focus.max_context, 10_000_000)), batch,
                                    kv_precision, runtime, imatrix))
    concerned = [m for m in models if myth_notes(m, hardware, tuple(precisions))]
    notes: tuple[str, ...] = ()
    if concerned:
        sizes = "; ".join(f"{m.name} {weights_bytes(m, 'int4') / GB:.1f} GB" for m in concerned)
        notes = (f"{MYTH_70B_INT4} Weights at ideal INT4: {sizes}.",)
    return CalculatorResult(models, estimates, fits, details, sweep, notes)


def model_summary(model: ModelSpec) -> dict[str, Any]:
    """What the engine read from the architecture, in words and numbers (shown so users can check it).

    Keys: name, parameters, active_parameters, model_type, layers, hidden_size, attention (e.g. "GQA 32/8",
    "MLA latent 576"), head_dim, sliding_window (e.g. "4096 tokens on 21 of 42 layers" or ""),
    kv_bytes_per_token_fp16, max_context, and from the model's own definition: layer_kinds ({"attention": 4,
    "ssm": 36}), state_bytes_per_sequence (llama.cpp, F32), parts ({"language": n, "vision": n, "projector": n} or
    encoder/decoder), tower_parameters, image_tokens, image_resolution, kv_bytes_per_image_fp16,
    cross_attention_tokens, inventory ("transformers 4.57.6 (meta device)" or "hand-written rules").
    Architecture fields are None for a bare parameter count.
    """
    from core.sizing.kv_cache import kv_bytes_per_token, state_bytes

    a = model.architecture
    out: dict[str, Any] = {"name": model.name, "parameters": model.parameters,
                           "active_parameters": model.active_parameters,
                           "parameters_without_embeddings": model.parameters_without_embeddings,
                           "active_parameters_without_embeddings": model.active_parameters_without_embeddings}
    if a is None:
        return out | {k: None for k in ("model_type", "layers", "hidden_size", "attention", "head_dim",
                                        "sliding_window", "kv_bytes_per_token_fp16", "max_context", *_DEFINITION_KEYS)}
    if a.is_encoder:
        attention = f"encoder, {a.num_heads} heads"
    elif a.mla is not None:
        attention = f"MLA latent {a.mla.kv_lora_rank + a.mla.qk_rope_head_dim}"
    elif a.num_kv_heads == a.num_heads:
        attention = f"MHA {a.num_heads} heads"
    elif a.num_kv_heads == 1:
        attention = f"MQA {a.num_heads}/1"
    else:
        attention = f"GQA {a.num_heads}/{a.num_kv_heads}"
    if a.moe is not None:
        attention += f"; MoE {a.moe.experts_per_token} of {a.moe.num_experts} experts"
    windows = [w for w in a.layer_windows if w]
    sliding = f"{max(windows)} tokens on {len(windows)} of {a.num_layers} layers" if windows else ""
    if sliding and a.window_kind == "chunked":
        sliding = "chunks of " + sliding
    return out | {
        "model_type": a.model_type, "layers": a.num_layers, "hidden_size": a.hidden_size, "attention": attention,
        "head_dim": a.head_dim, "sliding_window": sliding, "kv_bytes_per_token_fp16": kv_bytes_per_token(a),
        "max_context": a.max_position_embeddings or None,
    } | _definition_summary(a, kv_bytes_per_token(a), state_bytes(a, "llama.cpp"))


_DEFINITION_KEYS = ("layer_kinds", "state_bytes_per_sequence", "parts", "tower_parameters", "image_tokens",
                    "image_resolution", "kv_bytes_per_image_fp16", "cross_attention_tokens", "inventory")


def _definition_summary(a: Architecture, kv_per_token: int, state: int) -> dict[str, Any]:
    """What the model's own definition adds to the summary (layer kinds, recurrent state, parts, image cost)."""
    parts = dict(a.components)
    tower = sum(n for c, n in a.components if c in ("vision", "audio", "projector"))
    kinds = dict(a.layer_kinds) or ({"encoder": a.num_layers} if a.is_encoder else {"attention": a.num_layers})
    return {
        "layer_kinds": kinds, "state_bytes_per_sequence": state, "parts": parts or None,
        "tower_parameters": tower, "image_tokens": a.image_tokens or None,
        "image_resolution": a.image_resolution or None,
        "kv_bytes_per_image_fp16": a.image_tokens * kv_per_token if a.image_tokens else None,
        "cross_attention_tokens": (a.encoder_tokens or "context") if a.cross_kv_rows else None,
        "inventory": f"{a.source} (meta device)" if a.source else "hand-written rules",
    }


def architecture_known(model: ModelSpec) -> bool:
    """True only when the engine really knows the architecture: a hand-written family or the model's own
    definition, never a Llama-style guess for an unknown family or a bare parameter count."""
    from core.sizing.families import is_known

    a = model.architecture
    return a is not None and (bool(a.inventory_key) or is_known(a.model_type))
