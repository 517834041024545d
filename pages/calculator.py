"""Memory calculator page: widgets <-> URL, calls core.sizing / core.training, draws tables and charts.

No arithmetic lives here: every number comes from core. Every input is mirrored in the URL
(`st.query_params`), read and validated on first load (a bad value shows a warning and falls back to
the default), and written back after each rerun, so a link reproduces the page. An uploaded
config.json travels in the URL as base64 JSON when it is small enough.
"""

from __future__ import annotations

import base64
import binascii
import json
import time

import altair as alt
import pandas as pd
import streamlit as st

from core import sizing
from core.errors import QuantLensError
from core.sizing import catalog
from core.sizing.architecture import parse_config_json, parse_param_count
from core.sizing.kv_cache import KV_PRECISIONS
from core.sizing.overhead import RUNTIMES
from core.sizing.precisions import DEFAULT_NAMES, PRECISIONS, get_precision
from core.sizing.training import TRAINING_MODES, training_estimate
from pages.routing import ensure_routed
from pages.share import share_link
from pages.text import link_int, plain

ensure_routed()

GB = 10**9
GIB = 2**30
MAX_CONTEXT = 10_000_000
MAX_BATCH = 4096
MAX_URL_CONFIG_CHARS = 6000
MODES = {"inference": "Inference", **TRAINING_MODES}
MODE_LABELS = {"inference": "Inference", "full": "Full fine-tune", "lora": "LoRA", "qlora": "QLoRA"}
SOURCES = {"catalog": "Catalog model(s)", "params": "Parameter count(s)", "config": "Upload config.json"}
DEFAULT_GPUS = ("rtx-4090", "rtx-3060-12gb", "h100-sxm-80gb", "apple-m3-max-64gb")


def _encode_config(cfg: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(cfg, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_config(text: str) -> dict:
    if len(text) > 4 * MAX_URL_CONFIG_CHARS:
        raise QuantLensError("config_too_large", "The config in the link is too long.")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise QuantLensError("config_invalid_json", "The config in the link is not valid base64.") from None
    cfg = parse_config_json(raw)
    sizing.model_from_config(cfg)  # validates it counts
    return cfg


def _ppl(delta: float | None) -> str:
    return "" if delta is None else f"{delta:+.4f}"


def _fit_cell(f, kind: str) -> str:
    if f.fits:
        return f"✓ {f.headroom_bytes / GB:.1f} GB free"
    if f.gpus_tensor_parallel:
        return f"✗ needs {f.gpus_tensor_parallel} (TP)"
    if kind == "gpu":
        return "✗ needs more than 64"
    return f"✗ {-f.headroom_bytes / GB:.1f} GB short"


def _split_params(text: str) -> list[str]:
    return [t for t in text.replace(";", " ").split() if t]


def defaults(model_ids: list[str], gpu_ids: list[str]) -> dict:
    first = "meta-llama/Llama-3.1-8B" if "meta-llama/Llama-3.1-8B" in model_ids else model_ids[:1]
    return {
        "src": "catalog", "model": [first] if isinstance(first, str) else list(first), "params": "7B 70B",
        "prec": list(DEFAULT_NAMES), "ctx": 4096, "batch": 1, "kv": "fp16", "rt": "llama.cpp", "mode": "inference",
        "rank": 16, "gpu": [g for g in DEFAULT_GPUS if g in gpu_ids] or gpu_ids[:3], "cfg": "",
    }


def read_query_params(qp, model_ids: list[str], gpu_ids: list[str]) -> tuple[dict, list[str]]:
    """URL -> validated page state; each bad value becomes a warning and falls back to its default."""
    state = defaults(model_ids, gpu_ids)
    warnings: list[str] = []

    def bad(key: str, value: object, why: str) -> None:
        warnings.append(f"Ignored {plain(key)}={plain(value, 60)} in the link ({plain(why)}); using the default.")

    if "src" in qp:
        v = qp["src"]
        state["src"] = v if v in SOURCES else (bad("src", v, "unknown model source") or state["src"])
    if "model" in qp:
        lower = {m.lower(): m for m in model_ids}
        picked = []
        for v in qp.get_all("model"):
            if v.lower() in lower:
                picked.append(lower[v.lower()])
            else:
                bad("model", v, "not in the catalog")
        state["model"] = picked or state["model"]
    if "params" in qp:
        v = qp["params"]
        try:
            if not _split_params(v):
                raise QuantLensError("invalid_param_count", "empty")
            for t in _split_params(v):
                parse_param_count(t)
            state["params"] = v
        except QuantLensError:
            bad("params", v, "not parameter counts like 7B 70B")
    if "prec" in qp:
        picked = []
        for v in qp.get_all("prec"):
            try:
                name = get_precision(v).name
                if name not in picked:
                    picked.append(name)
            except QuantLensError:
                bad("prec", v, "unknown precision")
        state["prec"] = picked or state["prec"]
    for key, lo, hi in (("ctx", 0, MAX_CONTEXT), ("batch", 1, MAX_BATCH), ("rank", 1, 1024)):
        if key in qp:
            v = qp[key]
            number = link_int(v, lo, hi)
            if number is not None:
                state[key] = number
            else:
                bad(key, v, f"must be a whole number from {lo} to {hi:,}")
    for key, allowed in (("kv", KV_PRECISIONS), ("rt", RUNTIMES), ("mode", MODES)):
        if key in qp:
            v = qp[key]
            if v in allowed:
                state[key] = v
            else:
                bad(key, v, f"use one of {', '.join(allowed)}")
    if "gpu" in qp:
        given = [v for v in qp.get_all("gpu") if v]
        picked = [v for v in given if v in gpu_ids]
        for v in given:
            if v not in gpu_ids:
                bad("gpu", v, "not in the hardware catalog")
        state["gpu"] = picked if picked or not given else state["gpu"]
    if qp.get("cfg"):
        try:
            _decode_config(qp["cfg"])
            state["cfg"] = qp["cfg"]
        except QuantLensError as exc:
            bad("cfg", "...", exc.message)
            if state["src"] == "config":
                state["src"] = "catalog"
    return state, warnings


def write_query_params(state: dict) -> None:
    """Page state -> URL (lists become repeated keys); only touched when something changed."""
    target = {k: ([str(x) for x in v] if isinstance(v, list) else str(v)) for k, v in state.items() if v not in ("", [])}
    if state.get("gpu") == []:
        target["gpu"] = ""  # "no hardware" is a choice too; an absent key would mean the defaults
    current = {k: (st.query_params.get_all(k) if isinstance(target.get(k), list) else st.query_params.get(k))
               for k in st.query_params}
    if current != target:
        st.query_params.from_dict(target)


# ------------------------------------------------------------------------------------------------ state

st.header("Memory calculator")
st.caption("How much memory a model needs at each precision, whether it fits, and what quantizing costs. "
           "GB = 10^9 bytes, GiB = 2^30 bytes.")

try:
    MODELS = catalog.load_models()
    HARDWARE = catalog.load_hardware()
except QuantLensError as exc:
    st.error(exc.one_line())
    st.stop()
MODEL_IDS = [m.id for m in MODELS]
MODEL_NAMES = {m.id: m.name for m in MODELS}
HW_BY_ID = {h.id: h for h in HARDWARE}

# Streamlit drops a widget's value when the widget is not drawn (another page, or a hidden input such as the
# catalog picker while typing a parameter count). So every run restores missing values: from the URL on the
# first visit or when coming back through a link that carries a state, else from the state saved last run.
DEFAULTS = defaults(MODEL_IDS, list(HW_BY_ID))
saved = st.session_state.get("calc_state")
if saved is None or ("w_src" not in st.session_state and any(k in st.query_params for k in DEFAULTS)):
    initial, st.session_state["calc_url_warnings"] = read_query_params(st.query_params, MODEL_IDS, list(HW_BY_ID))
else:
    initial = saved
for k, v in initial.items():
    if f"w_{k}" not in st.session_state:
        st.session_state[f"w_{k}"] = v
for w in st.session_state.get("calc_url_warnings", []):
    st.warning(w)

# ----------------------------------------------------------------------------------------------- inputs

left, right = st.columns([1, 1])
with left:
    src = st.radio("Model", list(SOURCES), format_func=SOURCES.get, key="w_src", horizontal=True)
    if src == "catalog":
        st.multiselect("Catalog models (pick several to compare)", MODEL_IDS,
                       format_func=lambda i: f"{MODEL_NAMES[i]} ({i})", key="w_model")
    elif src == "params":
        st.text_input("Parameter counts, separated by spaces (7B 70B, 1.5e9, 350M)", key="w_params")
    else:
        up = st.file_uploader("config.json (read as JSON only; no code is ever run)", type=["json"],
                              max_upload_size=1, key="w_upload")
        if up is not None:
            try:
                cfg = parse_config_json(up.getvalue())
                sizing.model_from_config(cfg)
                encoded = _encode_config(cfg)
                st.session_state["w_cfg"] = encoded if len(encoded) <= MAX_URL_CONFIG_CHARS else ""
                st.session_state["calc_cfg_inline"] = cfg
                if len(encoded) > MAX_URL_CONFIG_CHARS:
                    st.info("This config is too large to put in the link; the link will not include it.")
            except QuantLensError as exc:
                st.error(exc.one_line())
    mode = st.segmented_control("Mode", list(MODES), format_func=MODE_LABELS.get, key="w_mode") or "inference"
    if mode in ("lora", "qlora"):
        st.number_input("LoRA rank (adapters on every linear layer)", min_value=1, max_value=1024, step=8, key="w_rank")
with right:
    st.multiselect("Precisions (ideal and real formats)", [p.name for p in PRECISIONS],
                   format_func=lambda n: get_precision(n).label, key="w_prec")
    c1, c2, c3 = st.columns(3)
    c1.number_input("Context (tokens; 0 = weights only)", min_value=0, max_value=MAX_CONTEXT, step=1024, key="w_ctx")
    c2.number_input("Batch (sequences)", min_value=1, max_value=MAX_BATCH, step=1, key="w_batch")
    c3.selectbox("KV cache precision", list(KV_PRECISIONS), format_func=lambda k: KV_PRECISIONS[k].label, key="w_kv")
    c4, c5 = st.columns([1, 2])
    c4.selectbox("Runtime", list(RUNTIMES), format_func=RUNTIMES.get, key="w_rt")
    c5.multiselect("Hardware to check", list(HW_BY_ID), format_func=lambda i: HW_BY_ID[i].name, key="w_gpu")

state = {k: st.session_state.get(f"w_{k}", DEFAULTS[k]) for k in DEFAULTS}
state["mode"] = mode
st.session_state["calc_state"] = dict(state)
write_query_params(state)
share_link()

# -------------------------------------------------------------------------------------------- compute

started = time.perf_counter()
models: list[sizing.ModelSpec] = []
try:
    if src == "catalog":
        models = [sizing.model_from_catalog(i) for i in state["model"]]
    elif src == "params":
        models = [sizing.model_from_params(t) for t in _split_params(state["params"] or "")]
    else:
        cfg = st.session_state.get("calc_cfg_inline")
        if cfg is None and state["cfg"]:
            cfg = _decode_config(state["cfg"])
        if cfg is not None:
            models = [sizing.model_from_config(cfg, "Uploaded config.json")]
except QuantLensError as exc:
    st.error(exc.one_line())
models = list({m.name: m for m in models}.values())  # the same model twice adds nothing
if not models:
    st.info("Choose a model: pick from the catalog, type a parameter count, or upload a config.json.")
    st.stop()

precisions = [get_precision(n) for n in state["prec"]] or [get_precision("fp16")]
hardware = tuple(HW_BY_ID[g] for g in state["gpu"])
ctx, batch, kv, rt = int(state["ctx"]), int(state["batch"]), state["kv"], state["rt"]
primary = models[0]

for m in models:
    for w in m.warnings:
        st.info(f"{plain(m.name)}: {plain(w)}")

if mode != "inference":
    st.subheader(f"{MODES[mode]}: sequence length {ctx:,} x batch {batch}")
    rows = []
    for m in models:
        try:
            t = training_estimate(m.parameters, m.architecture, mode, max(ctx, 1), batch, int(state["rank"] or 16))
        except QuantLensError as exc:
            st.warning(f"{plain(m.name)}: {plain(exc.message)}")
            continue
        row = {"Model": m.name, "Trainable parameters": f"{t.trainable_parameters:,}",
               "Weights GB": t.weights_bytes / GB, "Gradients GB": t.gradients_bytes / GB,
               "Optimizer GB": t.optimizer_bytes / GB, "Activations GB": t.activations_bytes / GB,
               "Total GB": t.total_bytes / GB,
               "Range GB": f"{t.total_min_bytes / GB:,.1f} - {t.total_max_bytes / GB:,.1f}"}
        for hw in hardware:
            row[hw.name] = "fits" if t.total_bytes <= hw.usable_memory_bytes else f"needs {t.total_bytes / hw.usable_memory_bytes:.1f}x"
        rows.append(row)
        for n in t.notes:
            st.caption(f"{plain(m.name)}: {plain(n)}")
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, column_config={
            k: st.column_config.NumberColumn(format="%.2f") for k in rows[0] if k.endswith(" GB")})
    st.caption("Full fine-tune: 16 bytes per parameter (BF16 weights and gradients, FP32 master copy, two FP32 Adam "
               "moments) plus activations. LoRA: frozen 16-bit base + adapters. QLoRA: frozen NF4 base + adapters.")
    st.stop()

result = sizing.calculate(models, precisions, ctx, batch, kv, rt, hardware)
compute_ms = (time.perf_counter() - started) * 1000
for note in result.myth_notes:
    st.warning(note)
estimates = {m.name: es for m, es in zip(result.models, result.estimates, strict=True)}
table = pd.DataFrame([
    {"Model": e.model_name, "Precision": e.precision_label, "Weights GB": e.weights_bytes / GB,
     "KV cache GB": e.kv_cache_bytes / GB if e.kv_cache_known else None, "Overhead GB": e.overhead_bytes / GB,
     "Overhead range GB": f"{e.overhead_min_bytes / GB:.2f} - {e.overhead_max_bytes / GB:.2f}",
     "Total GB": e.total_bytes / GB, "Total GiB": e.total_bytes / GIB,
     "ppl Δ (llama.cpp)": _ppl(get_precision(e.precision).ppl_delta)}
    for es in result.estimates for e in es
])
csv_rows = pd.DataFrame([
    {"model": e.model_name, "precision": e.precision, "context": e.context, "batch": e.batch,
     "kv_precision": e.kv_precision, "runtime": e.runtime, "weights_bytes": e.weights_bytes,
     "kv_cache_bytes": e.kv_cache_bytes, "overhead_bytes": e.overhead_bytes, "overhead_min_bytes": e.overhead_min_bytes,
     "overhead_max_bytes": e.overhead_max_bytes, "total_bytes": e.total_bytes}
    for es in result.estimates for e in es
])
primary_estimates = result.estimates[0]
fits = {(f.hardware_id, e.precision): f
        for f, e in zip(result.fits, [e for _ in hardware for e in primary_estimates], strict=True)}
details = [{
    "Hardware": d.hardware.name, "Precision": d.estimate.precision_label, "Fits": "yes" if d.fit.fits else "no",
    "Free GB": d.fit.headroom_bytes / GB, "GPUs (tensor parallel)": d.fit.gpus_tensor_parallel,
    "GPUs (pooled)": d.fit.gpus_pooled, "Max context": d.max_context,
    "Decode tok/s ceiling": d.decode.tokens_per_s_per_sequence,
} for d in result.details]
sweep = result.sweep

# ---------------------------------------------------------------------------------------------- output

st.subheader("Memory per precision")
summary = pd.DataFrame([sizing.model_summary(m) for m in models]).rename(columns={
    "name": "Model", "parameters": "Parameters", "active_parameters": "Active / token", "model_type": "Type",
    "layers": "Layers", "hidden_size": "Hidden", "attention": "Attention", "head_dim": "head_dim",
    "sliding_window": "Sliding window", "kv_bytes_per_token_fp16": "KV bytes/token (FP16)",
    "max_context": "Trained context"})
st.dataframe(summary, hide_index=True, column_config={
    k: st.column_config.NumberColumn(format="localized") for k in ("Parameters", "Active / token", "KV bytes/token (FP16)")})
st.dataframe(table, hide_index=True, column_config={
    k: st.column_config.NumberColumn(format="%.2f") for k in ("Weights GB", "KV cache GB", "Overhead GB", "Total GB", "Total GiB")
})
st.download_button("Download table (CSV, bytes)", csv_rows.to_csv(index=False).encode(), "quantlens-memory.csv",
                   "text/csv", key="w_csv")
notes = sorted({n for es in estimates.values() for e in es for n in e.notes})
for n in notes:
    st.caption(n)
if rt == "vllm":
    st.caption("vLLM reserves gpu_memory_utilization (default 0.9) of the card up front and fills it with KV cache, "
               "so nvidia-smi shows ~90% used whatever the model; the total here is what this context needs.")
st.caption(f"Engine time for this view: {compute_ms:.0f} ms. Overhead is an estimate: typical value, min-max range "
           "in the table.")

long = pd.DataFrame([
    {"Model": e.model_name, "Precision": e.precision_label, "Part": part, "GB": value / GB}
    for es in estimates.values() for e in es
    for part, value in (("Weights", e.weights_bytes), ("KV cache", e.kv_cache_bytes), ("Overhead", e.overhead_bytes))
])
order = [p.label for p in precisions]
bars = alt.Chart(long).mark_bar().encode(
    x=alt.X("Precision:N", sort=order, title=None), y=alt.Y("sum(GB):Q", title="GB (10^9 bytes)"),
    color=alt.Color("Part:N", sort=["Weights", "KV cache", "Overhead"]),
    tooltip=["Model", "Precision", "Part", alt.Tooltip("GB:Q", format=".2f")],
)
if len(models) > 1:
    bars = bars.properties(width=max(160, 60 * len(precisions))).facet(
        column=alt.Column("Model:N", title=None, sort=[m.name for m in models]))
st.altair_chart(bars, alt="Stacked bars of weights, KV cache and overhead per precision; the same numbers are in the table above.")

st.subheader(f"Memory against context: {plain(primary.name)}")
if not primary.architecture:
    st.caption("A bare parameter count has no KV cache estimate: the lines stay flat. Pick a catalog model or upload a config.json.")
sweep_df = pd.DataFrame([{"Context": r["context"], "Precision": get_precision(r["precision"]).label,
                          "Total GB": r["total_bytes"] / GB} for r in sweep])
lines = alt.Chart(sweep_df).mark_line(point=True).encode(
    x=alt.X("Context:Q", title="Context (tokens)"), y=alt.Y("Total GB:Q", title="Total GB (10^9 bytes)"),
    color=alt.Color("Precision:N", sort=order), tooltip=["Precision", "Context", alt.Tooltip("Total GB:Q", format=".2f")])
if hardware:
    rules = pd.DataFrame([{"Hardware": hw.name, "Total GB": hw.usable_memory_bytes / GB, "Context": 0} for hw in hardware])
    rule_chart = alt.Chart(rules)
    lines = (lines + rule_chart.mark_rule(strokeDash=[4, 4], color="gray").encode(y="Total GB:Q", tooltip=["Hardware"])
             + rule_chart.mark_text(align="left", dx=4, dy=-6, color="gray", fontSize=10).encode(
                 x="Context:Q", y="Total GB:Q", text="Hardware:N"))
st.altair_chart(lines, alt="Total memory against context length for each precision, with dashed lines at each card's usable memory.")

if hardware:
    st.subheader(f"Does it fit? {plain(primary.name)}, context {ctx:,} x batch {batch}")
    matrix = pd.DataFrame(
        {e.precision_label: [_fit_cell(fits[(hw.id, e.precision)], hw.kind)
                             + ("" if e.kv_cache_known or ctx == 0 else " (KV not counted)") for hw in hardware]
         for e in primary_estimates},
        index=[f"{hw.name} ({hw.usable_memory_bytes / GB:.1f} GB usable)" for hw in hardware],
    )
    st.dataframe(matrix)
    st.caption("Usable memory is what the runtime can allocate: Apple Silicon's GPU may use only about 2/3-3/4 of "
               "unified memory by default. GPUs needed: tensor parallel (power of two dividing the heads, each card "
               "pays the overhead) and pooled (layers spread over cards).")
    st.dataframe(pd.DataFrame(details), hide_index=True, column_config={
        "Free GB": st.column_config.NumberColumn(format="%.1f"),
        "Decode tok/s ceiling": st.column_config.NumberColumn(format="%.0f"),
        "Max context": st.column_config.NumberColumn(format="%d")})
    st.caption("Decode tok/s ceiling = memory bandwidth / bytes read per token (active weights + KV cache); real "
               "runtimes reach roughly 50-80% of it. MoE models read only their active experts.")

st.subheader("What quantizing costs")
quality = pd.DataFrame([{"Precision": p.label, "ppl Δ": _ppl(p.ppl_delta), "What it is": p.description,
                         "Source": p.ppl_source or "no published llama.cpp figure"} for p in precisions])
st.dataframe(quality, hide_index=True)
st.caption("Perplexity increase over FP16 as llama.cpp's quantize tool reports it (Llama-3-8B, wikitext-2); lower is "
           "better. Ideal INTn rows are arithmetic only: real 4-bit formats carry scales and keep some layers at 16 bits.")

with st.expander("GB or GiB?"):
    st.markdown("A **GB** is 10^9 bytes; a **GiB** is 2^30 = 1,073,741,824 bytes, 7.4% more. Model files and the "
                "7B = 14 GB rule use GB; GPU memory (\"24 GB\" cards) and most tools' readouts are GiB. A 24 GiB "
                "card holds 25.8 GB.")
with st.expander("PTQ vs QAT"):
    st.markdown("**Post-training quantization (PTQ)** rounds a trained model's weights to fewer bits, sometimes with "
                "a little calibration data (GPTQ, AWQ, llama.cpp's importance matrix). Cheap, minutes to hours. "
                "**Quantization-aware training (QAT)** simulates the rounding during training so the model learns "
                "to tolerate it; better at very low bits, but it needs a training run.")
with st.expander("Quantization vs distillation"):
    st.markdown("**Quantization** keeps the same model and stores its numbers with fewer bits. **Distillation** "
                "trains a *different, smaller* model to imitate a larger one (e.g. DeepSeek-R1-Distill-Llama-8B): "
                "fewer parameters, not fewer bits per parameter. The two combine: a distilled model can be quantized.")
with st.expander("GGUF vs AWQ vs GPTQ (vs bitsandbytes)"):
    st.markdown("**GGUF** is llama.cpp's file format; its K-quants mix types per tensor (Q4_K_M keeps the output layer "
                "and half the attn_v/ffn_down layers at 6 bits) and run on CPU, Apple and GPUs. **AWQ** and **GPTQ** "
                "are 4-bit GPU formats (vLLM, transformers) with a 16-bit scale per group of 128 weights; AWQ protects "
                "the weights that see large activations, GPTQ corrects rounding errors column by column. "
                "**bitsandbytes NF4** quantizes on load (4.127 bits with double quantization) and is what QLoRA uses.")
with st.expander("Why does 70B at INT4 not fit a 24 GB card?"):
    st.markdown(sizing.MYTH_70B_INT4)
