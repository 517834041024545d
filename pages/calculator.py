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

import pandas as pd
import streamlit as st

from core import sizing
from core.errors import QuantLensError
from core.sizing import catalog
from core.sizing.architecture import MAX_CONFIG_BYTES, parse_config_json, parse_param_count
from core.sizing.card_set import parse_card_set
from core.sizing.custom_card import parse_custom_card, picker_label
from core.sizing.glossary import GLOSSARY
from core.sizing.kv_cache import KV_PRECISIONS
from core.sizing.overhead import RUNTIMES
from core.sizing.parsing import parse_context
from core.sizing.precisions import DEFAULT_NAMES, PRECISIONS, get_precision, parse_precision_list
from core.sizing.runtimes import budget_words, kv_choices, kv_refusal
from core.sizing.runtimes import rules as runtime_rules
from core.sizing.training import TRAINING_MODES, training_estimate
from core.sizing.training_limits import limits_words, training_limits
from core.sizing.verdict import (
    FITS,
    FITS_SPLIT,
    MAX_CARDS,
    UNSUPPORTED,
    answer,
    cap_view,
    format_tokens,
    kv_unknown_words,
    training_fit_text,
    workload_words,
)
from pages import hub_input, runtime_view, style
from pages.routing import ensure_routed, page_entered
from pages.share import share_link
from pages.text import link_int, plain, plain_cells

ensure_routed()
ENTERED = page_entered("calculator")
style.apply()

GB = 10**9
GIB = 2**30
MAX_CONTEXT = 10_000_000
MAX_BATCH = 4096
MAX_URL_CONFIG_CHARS = 6000
MODES = {"inference": "Inference", **TRAINING_MODES}
MODE_LABELS = {"inference": "Inference", "full": "Full fine-tune", "lora": "LoRA", "qlora": "QLoRA"}
# Link keys people guess, read as the page's own keys.
ALIASES = {"context": "ctx", "precision": "prec", "precisions": "prec", "models": "model", "hardware": "gpu",
           "gpus": "gpu", "n_gpus": "cards", "runtime": "rt", "kv_precision": "kv"}
SOURCES = {"hf": "Hugging Face id or URL", "catalog": "Catalog model(s)", "params": "Parameter count(s)",
           "config": "Upload config.json"}
# Pickers match what is typed as a substring and Enter takes the highlighted option only: with Streamlit's default
# (fuzzy match, a "Select N matches" entry first) "mistral 7" + Enter added Mistral 7B and Mistral Nemo (24*07*).
PICKER = {"filter_mode": "contains", "select_all": False}
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
    _model_from_config(cfg)  # validates it counts
    return cfg


def _model_from_config(cfg: dict, name: str = "Uploaded config.json") -> sizing.ModelSpec:
    """The engine's model; the first time a config needs its model definition built, a spinner says so."""
    from core.sizing import meta_inventory

    if meta_inventory.cached(cfg) is not None:
        return sizing.model_from_config(cfg, name)
    with st.spinner("Reading this architecture from its model definition (first time only, can take a minute)..."):
        return sizing.model_from_config(cfg, name)


def _ppl(delta: float | None) -> str:
    return "" if delta is None else f"{delta:+.4f}"


def _split_params(text: str) -> list[str]:
    return [t for t in text.replace(";", " ").split() if t]


def defaults(model_ids: list[str], gpu_ids: list[str]) -> dict:
    first = "meta-llama/Llama-3.1-8B" if "meta-llama/Llama-3.1-8B" in model_ids else model_ids[:1]
    return {
        "src": "catalog", "model": [first] if isinstance(first, str) else list(first), "params": "7B 70B",
        "prec": list(DEFAULT_NAMES), "ctx": 4096, "batch": 1, "kv": "fp16", "rt": "llama.cpp", "mode": "inference",
        "rank": 16, "gpu": [g for g in DEFAULT_GPUS if g in gpu_ids] or gpu_ids[:3], "cards": 1, "cfg": "",
        "imatrix": False, "hf": "", "measured": "", "card": "", "mixed": [],
    }


class _Query:
    """The link's values with guessed keys (`context=`, `precision=`) mapped to the page's own ones."""

    def __init__(self, qp) -> None:
        self.values: dict[str, list[str]] = {}
        self.unknown: list[str] = []
        for key in qp:
            own = ALIASES.get(key, key)
            self.values.setdefault(own, []).extend(qp.get_all(key))

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def __getitem__(self, key: str) -> str:
        return self.values[key][-1]

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.values[key][-1] if key in self.values else default

    def get_all(self, key: str) -> list[str]:
        return self.values.get(key, [])


def read_query_params(qp, model_ids: list[str], gpu_ids: list[str]) -> tuple[dict, list[tuple[str, str]]]:
    """URL -> validated page state; each bad value becomes a (key, warning) and falls back to its default."""
    state = defaults(model_ids, gpu_ids)
    query = _Query(qp)
    qp = query
    warnings: list[tuple[str, str]] = []

    def bad(key: str, value: object, why: str) -> None:
        warnings.append((key, f"Ignored {plain(key)}={plain(value, 60)} in the link ({plain(why)}); using the default."))

    for key in qp.values:
        if key not in state and key not in ("rev", "file"):  # rev= and file= belong to hf=
            warnings.append((key, f"Ignored {plain(key, 60)}= in the link: this page has no such setting "
                                  f"(it reads {', '.join(k for k in state if k != 'cfg')})."))
    if "src" in qp:
        v = qp["src"]
        state["src"] = v if v in SOURCES else (bad("src", v, "unknown model source") or state["src"])
    if "hf" in qp:
        state["hf"], hf_warnings = hub_input.text_from_query(qp)
        warnings += [("hf", w) if isinstance(w, str) else w for w in hf_warnings]
        if state["hf"] and "src" not in qp:
            state["src"] = "hf"
    if "model" in qp:
        lower = {m.lower(): m for m in model_ids}
        picked = []
        for v in qp.get_all("model"):
            if v.lower() in lower:
                picked.append(lower[v.lower()])
            else:
                bad("model", v, "not in the catalog")
        state["model"] = picked or state["model"]
        state["model"], _, cut = cap_view(state["model"], [], MODEL_NAMES.get)
        warnings += [("model", w) for w in cut]
    if "params" in qp:
        v = qp["params"]
        try:
            if not _split_params(v):
                raise QuantLensError("invalid_param_count", "it is empty")
            for t in _split_params(v):
                parse_param_count(t)
            state["params"] = v
        except QuantLensError as exc:
            bad("params", v, exc.message.rstrip("."))
    if "prec" in qp:  # repeated keys, commas (prec=fp16,int4,Q4_K_M) and all/ideal/real, as the CLI reads them
        picked, unknown = [], []
        for v in (part for value in qp.get_all("prec") for part in value.split(",") if part.strip()):
            try:
                names = [p.name for p in parse_precision_list(v)]
            except QuantLensError:
                unknown.append(v.strip())
                continue
            picked += [n for n in names if n not in picked]
        if unknown:
            kept = f"kept {', '.join(picked)}" if picked else "using the default"
            warnings.append(("prec", f"Ignored prec={plain(','.join(unknown), 80)} in the link (unknown precision; "
                                     f"{kept})."))
        state["prec"] = picked or state["prec"]
    if "ctx" in qp:  # the same words as the context box and the CLI: 8192, 32k, 128k (k = 1024), 1e5
        v = qp["ctx"]
        try:
            n = parse_context(v)
            if n > MAX_CONTEXT:
                raise QuantLensError("invalid_context", "too large")
            state["ctx"] = n
        except QuantLensError:
            bad("ctx", v, f"must be a number of tokens from 0 to {MAX_CONTEXT:,}, like 8192 or 128k")
    if "imatrix" in qp:
        v = qp["imatrix"]
        if v in ("0", "1"):
            state["imatrix"] = v == "1"
        else:
            bad("imatrix", v, "use 1 or 0")
    for key, lo, hi in (("batch", 1, MAX_BATCH), ("rank", 1, 1024), ("cards", 1, MAX_CARDS)):
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
    if kv_refusal(state["rt"], state["kv"]):  # a KV type the runtime cannot use: say so, size with FP16
        bad("kv", state["kv"], kv_refusal(state["rt"], state["kv"]).rstrip("."))
        state["kv"] = "fp16"
    if "gpu" in qp:
        given = [v for v in qp.get_all("gpu") if v]
        picked = [v for v in given if v in gpu_ids]
        for v in given:
            if v not in gpu_ids:
                bad("gpu", v, "not in the hardware catalog")
        state["gpu"] = picked if picked or not given else state["gpu"]
        _, state["gpu"], cut = cap_view([], state["gpu"], hardware_name=lambda h: HW_BY_ID[h].name)
        warnings += [("gpu", w) for w in cut]
    if "mixed" in qp:  # different cards used together in one machine: mixed=rtx-4090+rtx-3060-12gb
        v = " ".join(qp.get_all("mixed"))
        try:
            state["mixed"] = [c.id for c in parse_card_set(v, {h: HW_BY_ID[h] for h in gpu_ids if h in HW_BY_ID})]
        except QuantLensError as exc:
            bad("mixed", v[:60], exc.message.rstrip("."))
    if "card" in qp:  # a card the catalog lacks: name, GB, GB/s
        v = qp["card"]
        try:
            parse_custom_card(v)
            state["card"] = v
        except QuantLensError as exc:
            bad("card", v[:60], exc.message.rstrip("."))
    if "measured" in qp:  # numbers read from a pasted log (core.sizing.reconcile), never the log itself
        v = qp["measured"]
        try:
            from core.sizing.reconcile import from_link

            from_link(v)
            state["measured"] = v
        except QuantLensError as exc:
            bad("measured", v[:40], exc.message.rstrip("."))
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
    target = {k: ([str(x) for x in v] if isinstance(v, list) else str(int(v)) if isinstance(v, bool) else str(v))
              for k, v in state.items() if v not in ("", []) and v is not False and k != "hf"}
    target |= hub_input.query_from_text(state.get("hf", ""))
    if state.get("gpu") == []:
        target["gpu"] = ""  # "no hardware" is a choice too; an absent key would mean the defaults
    current = {k: (st.query_params.get_all(k) if isinstance(target.get(k), list) else st.query_params.get(k))
               for k in st.query_params}
    if current != target:
        st.query_params.from_dict(target)


# ------------------------------------------------------------------------------------------------ state


def restore_state(defaults_: dict) -> dict:
    """Widget values for this run. Entering the page rebuilds every value: a link's values win over anything the
    session remembers (keys the link leaves out take their defaults); entering without a link shows what the page
    showed last (or its defaults). Within the page, values of hidden widgets come back from the last run."""
    saved = st.session_state.get("calc_state")
    from_link = any(k in st.query_params or any(a in st.query_params for a, o in ALIASES.items() if o == k)
                    for k in defaults_)
    if ENTERED or saved is None:
        if from_link or saved is None:
            initial, warnings = read_query_params(st.query_params, MODEL_IDS, list(HW_BY_ID))
        else:
            initial, warnings = dict(saved), []
        st.session_state["calc_url_warnings"] = warnings
        st.session_state["calc_link_state"] = dict(initial)
        if from_link:
            st.session_state.pop("calc_cfg_inline", None)
        for k, v in initial.items():  # overwrite: never a value left over from an earlier visit
            st.session_state[f"w_{k}"] = _widget_value(k, v)
        return initial
    for k, v in saved.items():
        if f"w_{k}" not in st.session_state:
            st.session_state[f"w_{k}"] = _widget_value(k, v)
    return saved


def _widget_value(key: str, value):
    """The context box is text (it reads 128k and 1e5), so its widget holds the number as a string."""
    return str(value) if key == "ctx" else value


def show_link_warnings(state: dict) -> None:
    """A link's warning stays only while its setting still holds the fallback; fixing the value removes it."""
    link_state = st.session_state.get("calc_link_state", {})
    for key, text in st.session_state.get("calc_url_warnings", []):
        if key not in link_state or state.get(key) == link_state.get(key):
            st.warning(text)


# ----------------------------------------------------------------------------------------------- inputs


def draw_inputs() -> tuple[str, str | None, object]:
    """All the controls; returns (mode, a Hub token typed for this lookup only, the context box's column).
    Controls a training mode ignores are not drawn in it."""
    hf_token = None
    left, right = st.columns([1, 1])
    with left:
        src = st.radio("Model", list(SOURCES), format_func=SOURCES.get, key="w_src", horizontal=True)
        if src == "hf":
            hf_token = hub_input.draw_input()
        elif src == "catalog":
            st.multiselect("Catalog models (pick several to compare)", MODEL_IDS,
                           format_func=lambda i: f"{MODEL_NAMES[i]} ({i})", key="w_model", **PICKER)
        elif src == "params":
            st.text_input("Parameter counts, separated by spaces (7B 70B, 1.5e9, 350M)", key="w_params")
        else:
            draw_config_upload()
        mode = st.segmented_control("Mode", list(MODES), format_func=MODE_LABELS.get, key="w_mode") or "inference"
        if mode in ("lora", "qlora"):
            st.number_input("LoRA rank (adapters on every linear layer)", min_value=1, max_value=1024, step=8,
                            key="w_rank")
    with right:
        if mode == "inference":
            st.multiselect("Precisions (ideal and real formats)", [p.name for p in PRECISIONS],
                           format_func=lambda n: get_precision(n).label, key="w_prec", **PICKER)
        c1, c2, c3 = st.columns(3)
        # no help= tooltip: it would share the label, and the browser tests find the box by its label
        c1.text_input("Context (tokens; 0 = weights only)", key="w_ctx", placeholder="8192, 32k, 128k (k = 1024)")
        c2.number_input("Batch (sequences) = concurrent requests", min_value=1, max_value=MAX_BATCH, step=1, key="w_batch")
        c3.number_input("Cards I have (of each GPU)", min_value=1, max_value=MAX_CARDS, step=1, key="w_cards",
                        help="8 asks whether it runs on 8× the GPU (tensor parallel or layers split). "
                             "Macs and CPU RAM count as one.")
        if mode == "inference":
            c4, c5 = st.columns(2)
            kv_options = list(kv_choices(st.session_state.get("w_rt") or "llama.cpp"))  # only the runtime's types
            if st.session_state.get("w_kv") not in kv_options:
                st.session_state["calc_kv_note"] = kv_refusal(st.session_state.get("w_rt") or "llama.cpp",
                                                              str(st.session_state.get("w_kv")))
                st.session_state["w_kv"] = "fp16"
            c4.selectbox("KV cache precision", kv_options, format_func=lambda k: KV_PRECISIONS[k].label,
                         key="w_kv")
            if st.session_state.get("calc_kv_note"):
                c4.warning(f"{plain(st.session_state.pop('calc_kv_note'))} Using FP16.")
            c5.selectbox("Runtime", list(RUNTIMES), format_func=RUNTIMES.get, key="w_rt")
            st.checkbox("GGUF made with an importance matrix (imatrix), as most published GGUFs are",
                        key="w_imatrix",
                        help="llama.cpp picks other tensor types for some GGUF types (Q4_0, IQ4_XS, IQ4_NL...) when "
                             "quantizing with an imatrix; bartowski's and unsloth's files are made that way.")
    h1, h2 = st.columns([3, 2])
    h1.multiselect("Hardware to check (type a name or a memory size: 24 finds the 24 GB cards)", list(HW_BY_ID),
                   format_func=lambda i: picker_label(HW_BY_ID[i]), key="w_gpu", **PICKER)
    h2.text_input("Your own card: name, GB, bandwidth GB/s", key="w_card", placeholder="RTX A6000, 48, 768")
    if mode == "inference":
        st.multiselect("Cards together in one machine (mixed: each keeps its own memory)",
                       [i for i, h in HW_BY_ID.items() if h.kind == "gpu"], format_func=lambda i: picker_label(HW_BY_ID[i]),
                       key="w_mixed", placeholder="e.g. an RTX 4090 and an RTX 3060 12GB", **PICKER)
    return mode, hf_token, c1


def draw_config_upload() -> None:
    # The browser takes files up to 4 MB so that one a little over the 1 MB limit gets a sentence, not only a red
    # icon on its chip; the engine refuses anything over MAX_CONFIG_BYTES before parsing it.
    limit = f"{MAX_CONFIG_BYTES / 10**6:g} MB"
    up = st.file_uploader(f"config.json, at most {limit} (read as JSON only; no code is ever run)", type=["json"],
                          max_upload_size=4, key="w_upload",
                          help=f"A model's config.json is a few kB; files over {limit} are refused (not the weights).")
    if up is None:
        return
    if up.size > MAX_CONFIG_BYTES:
        st.error(f"This file is {up.size / 10**6:.1f} MB; a config.json may be at most {limit} (a real one is a few "
                 "kB: upload the model's config.json, not its weights). [config_too_large]")
        return
    try:
        cfg = parse_config_json(up.getvalue())
        _model_from_config(cfg)
        encoded = _encode_config(cfg)
        st.session_state["w_cfg"] = encoded if len(encoded) <= MAX_URL_CONFIG_CHARS else ""
        st.session_state["calc_cfg_inline"] = cfg
        if len(encoded) > MAX_URL_CONFIG_CHARS:
            st.info("This config is too large to put in the link; the link will not include it.")
    except QuantLensError as exc:
        st.error(plain(exc.one_line()))


def resolve_models(state: dict, hf_token: str | None) -> tuple[list[sizing.ModelSpec], list]:
    """The chosen models, and for Hub ids what the lookup found (stored format, published sizes)."""
    models: list[sizing.ModelSpec] = []
    hub_found: list = []
    try:
        if state["src"] == "hf":
            hub_found = hub_input.lookup_all(state["hf"], hf_token)
            models = [f.spec for f in hub_found]
        elif state["src"] == "catalog":
            models = [sizing.model_from_catalog(i) for i in state["model"]]
        elif state["src"] == "params":
            models = [sizing.model_from_params(t) for t in _split_params(state["params"] or "")]
        else:
            cfg = st.session_state.get("calc_cfg_inline")
            if cfg is None and state["cfg"]:
                cfg = _decode_config(state["cfg"])
            if cfg is not None:
                models = [_model_from_config(cfg, "Uploaded config.json")]
    except QuantLensError as exc:
        st.error(plain(exc.one_line()))
    return list({m.name: m for m in models}.values()), hub_found  # the same model twice adds nothing


# ---------------------------------------------------------------------------------------------- output


def _fit_style(status: str) -> str:
    if status == UNSUPPORTED:
        return "background-color: rgba(134, 142, 150, 0.18); color: rgba(110, 118, 126, 1)"
    if status == FITS:
        return "background-color: rgba(47, 158, 68, 0.22)"
    if status == FITS_SPLIT:
        return "background-color: rgba(245, 159, 0, 0.22)"
    return "background-color: rgba(224, 49, 49, 0.20)"


def draw_answer(box, answers, result, ctx: int, batch: int = 1) -> None:
    """The verdict per model x hardware, and each model's totals, in plain lines that wrap on a phone."""
    with box:
        st.subheader("The answer", anchor="the-answer")
        for a in answers:
            for v in a.verdicts:
                st.markdown(("✅ " if v.fits else "❌ ") + plain(v.sentence))
        if not any(a.verdicts for a in answers):
            st.caption("Pick hardware below to get a yes or no.")
        lines = []
        for es in result.estimates:
            totals = ", ".join(f"{e.precision_label} **{e.total_bytes / GB:,.1f} GB**" for e in es)
            load = (f"{format_tokens(ctx)} context" + (f" × {batch} concurrent requests" if batch > 1 else "")
                    if ctx else "weights only")
            if ctx and not all(e.kv_cache_known for e in es):  # a bare parameter count: no KV cache in the total
                load = f"weights + overhead only ({kv_unknown_words(ctx)})"
            lines.append(f"- {plain(es[0].model_name)}, {load}: {totals}")
        st.markdown("**Totals** (weights + KV cache + overhead)\n" + "\n".join(lines))


def draw_training(models, mode: str, state: dict, hardware, cards: int) -> None:
    ctx, batch = int(state["ctx"]), int(state["batch"])
    st.subheader(f"{MODES[mode]}: sequence length {ctx:,} x batch {batch}", anchor="the-answer")
    rows, fit_rows = [], []
    for m in models:
        try:
            t = training_estimate(m.parameters, m.architecture, mode, max(ctx, 1), batch, int(state["rank"] or 16))
        except QuantLensError as exc:
            st.warning(f"{plain(m.name)}: {plain(exc.message)}")
            continue
        rows.append({"Model": m.name, "Trainable parameters": f"{t.trainable_parameters:,}",
                     "Weights GB": t.weights_bytes / GB, "Gradients GB": t.gradients_bytes / GB,
                     "Optimizer GB": t.optimizer_bytes / GB, "Activations GB": t.activations_bytes / GB,
                     "Total GB": t.total_bytes / GB,
                     "Range GB": f"{t.total_min_bytes / GB:,.1f} - {t.total_max_bytes / GB:,.1f}"})
        for hw in hardware:
            n = cards if hw.kind == "gpu" else 1
            text = training_fit_text(t.total_bytes, hw, n)
            lim = training_limits(m.parameters, m.architecture, mode, hw, n, max(ctx, 1), batch, int(state["rank"] or 16))
            fit_rows.append({"Model": m.name, "Hardware": hw.name + (f" ×{n}" if n > 1 else ""), "Fits": text,
                             f"Largest batch at {max(ctx, 1):,} tokens": lim.largest_batch,
                             f"Longest sequence at batch {batch}": lim.longest_sequence})
            most = f"; {limits_words(lim)}"
            st.markdown(f"{text[:1]} {plain(m.name)} on {plain(hw.name)}{f' ×{n}' if n > 1 else ''}: {text[2:]} "
                        f"({t.total_bytes / GB:,.1f} GB needed){most}")
        for note in t.notes:
            st.caption(f"{plain(m.name)}: {plain(note)}")
    if fit_rows:
        st.dataframe(pd.DataFrame(fit_rows), hide_index=True, width="stretch")
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", column_config={
            k: st.column_config.NumberColumn(format="%.2f") for k in rows[0] if k.endswith(" GB")})
    st.caption("Full fine-tune: 16 bytes per parameter (BF16 weights and gradients, FP32 master copy, two FP32 Adam "
               "moments) plus activations. LoRA: frozen 16-bit base + adapters. QLoRA: frozen NF4 base + adapters.")


_DEFINITION_KEYS = ("layer_kinds", "state_bytes_per_sequence", "parts", "tower_parameters", "image_tokens",
                    "image_resolution", "kv_bytes_per_image_fp16", "cross_attention_tokens", "inventory")


def _summary_row(sm: dict) -> dict:
    """The summary table's columns (the model-definition details are drawn as sentences below it)."""
    return {k: v for k, v in sm.items() if k not in _DEFINITION_KEYS}


def _definition_lines(sm: dict) -> list[str]:
    """What the model's own definition says beyond the table: layer kinds, recurrent state, tower, image cost."""
    if sm.get("layer_kinds") is None:
        return []
    lines = []
    kinds = sm["layer_kinds"]
    if set(kinds) - {"attention"}:
        lines.append(f"{sm['name']}: layers " + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in kinds.items())
                     + "; KV cache only on attention layers.")
    if sm["state_bytes_per_sequence"]:
        lines.append(f"{sm['name']}: recurrent (SSM/conv) state {sm['state_bytes_per_sequence'] / GB:.3f} GB per "
                     "sequence in llama.cpp (F32), whatever the context: its own line in the table.")
    parts = sm.get("parts") or {}
    if sm["tower_parameters"]:
        lines.append(f"{sm['name']}: language model {parts.get('language', 0):,} parameters; vision/audio tower "
                     f"{sm['tower_parameters']:,} (llama.cpp: the separate mmproj file).")
    if sm["image_tokens"]:
        lines.append(f"{sm['name']}: one image at {sm['image_resolution']} = {sm['image_tokens']:,} tokens = "
                     f"{sm['kv_bytes_per_image_fp16'] / 2**20:.1f} MiB of FP16 KV cache.")
    if sm["cross_attention_tokens"]:
        lines.append(f"{sm['name']}: encoder {parts.get('encoder', 0):,} + decoder {parts.get('decoder', 0):,} "
                     f"parameters; cross-attention caches {sm['cross_attention_tokens']} encoder tokens per layer.")
    if lines:
        lines.append(f"{sm['name']}: counted from {sm['inventory']}.")
    return lines


def _summary_cell(v) -> str:
    if v is None or (isinstance(v, float) and v != v):  # None or NaN: the model has no such field
        return "—"
    return f"{v:,.0f}" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def draw_memory(models, result, rt: str, compute_ms: float, hub_found=()) -> None:
    st.subheader("Memory per precision")
    summaries = [sizing.model_summary(m) for m in models]
    summary = pd.DataFrame([_summary_row(sm) for sm in summaries]).rename(columns={
        "name": "Model", "parameters": "Parameters", "active_parameters": "Active / token", "model_type": "Type",
        "layers": "Layers", "hidden_size": "Hidden", "attention": "Attention", "head_dim": "head_dim",
        "sliding_window": "Sliding window", "kv_bytes_per_token_fp16": "KV bytes/token (FP16)",
        "max_context": "Trained context", "parameters_without_embeddings": "Parameters w/o embeddings",
        "active_parameters_without_embeddings": "Active w/o embeddings"})
    # numbers stay numbers and the Styler draws "—" where the model has no such field: filling float columns with
    # "—" warned in pandas and failed Arrow's conversion of "Trained context" in a many-model view
    st.table(plain_cells(summary.set_index("Model")).style.format(_summary_cell, na_rep="—"), border="horizontal")
    hub_input.draw_details(hub_found)
    for sm in summaries:
        for line in _definition_lines(sm):
            st.caption(plain(line))
    has_state = any(e.state_bytes for es in result.estimates for e in es)
    table = pd.DataFrame([
        {"Model": e.model_name, "Precision": e.precision_label, "Total GB": e.total_bytes / GB,
         "Weights GB": e.weights_bytes / GB,
         "KV cache GB": e.kv_cache_bytes / GB if e.kv_cache_known else float("nan"),
         **({"Recurrent state GB": e.state_bytes / GB} if has_state else {}),
         "Overhead GB": e.overhead_bytes / GB,
         "Overhead range GB": f"{e.overhead_min_bytes / GB:.2f} - {e.overhead_max_bytes / GB:.2f}",
         "Total GiB": e.total_bytes / GIB, "ppl Δ (llama.cpp)": _ppl(get_precision(e.precision).ppl_delta),
         "GGUF imatrix": {True: "yes", False: "no", None: ""}[e.gguf_imatrix]}
        for es in result.estimates for e in es
    ])
    # A plain HTML table, not st.dataframe: the canvas grid made each rerun ~150-300 ms slower to show new numbers
    # (bench/bench_browser.py), and a few rows need no sorting or scrolling.
    gb_columns = ("Weights GB", "KV cache GB", "Overhead GB", "Total GB", "Total GiB") + (
        ("Recurrent state GB",) if has_state else ())
    st.table(plain_cells(table).style.format(dict.fromkeys(gb_columns, "{:.2f}"), na_rep="—"), hide_index=True,
             border="horizontal")
    csv_rows = pd.DataFrame([
        {"model": e.model_name, "precision": e.precision, "context": e.context, "batch": e.batch,
         "kv_precision": e.kv_precision, "runtime": e.runtime, "weights_bytes": e.weights_bytes,
         "kv_cache_bytes": e.kv_cache_bytes, "overhead_bytes": e.overhead_bytes,
         "overhead_min_bytes": e.overhead_min_bytes, "overhead_max_bytes": e.overhead_max_bytes,
         "total_bytes": e.total_bytes}
        for es in result.estimates for e in es
    ])
    st.download_button("Download table (CSV, bytes)", csv_rows.to_csv(index=False).encode(), "quantlens-memory.csv",
                       "text/csv", key="w_csv")
    for n in sorted({n for es in result.estimates for e in es for n in e.notes if "trained context" not in n}):
        st.caption(plain(n))
    for rule in dict.fromkeys(e.kv_cache_rule for es in result.estimates for e in es if e.kv_cache_rule):
        st.caption(f"KV cache rule: {plain(rule)}")
    if rt == "vllm":
        st.caption("vLLM reserves gpu_memory_utilization (default 0.9) of the card up front and fills it with KV "
                   "cache, so nvidia-smi shows ~90% used whatever the model; the total here is what this context needs.")
    st.caption(f"Engine time for this view: {compute_ms:.0f} ms. Overhead is an estimate: typical value, min-max "
               "range in the table.")


# Legends under the plot in two columns (a 390 px phone fits two labels a row), and a plot of its own fixed height:
# with Streamlit's default autosize ("fit" to 350 px in all) seven precisions' legend rows left the plot ~10 px tall.
LEGEND_BOTTOM = {"orient": "bottom", "direction": "horizontal", "columns": 2, "labelLimit": 170, "titleLimit": 320,
                 "columnPadding": 12}
LEGEND_TOP = {**LEGEND_BOTTOM, "orient": "top"}  # a second legend: two at the bottom would stand side by side
PLOT_HEIGHT = 300
SIZING = {"height": PLOT_HEIGHT, "autosize": {"type": "fit-x", "contains": "padding"}}
RULE_LABEL_GAP = 0.07  # rules closer than this share of the y axis share one label, so names never overlap


def _close_groups(rules: list, top_gb: float) -> list[list]:
    groups: list[list] = []
    for name, gb in sorted(rules, key=lambda r: r[1]):
        if groups and gb - groups[-1][0][1] <= RULE_LABEL_GAP * max(top_gb, 1e-9):
            groups[-1].append((name, gb))
        else:
            groups.append([(name, gb)])
    return groups


def rule_labels(rules: tuple, top_gb: float) -> tuple:
    """(label, GB) per card rule, with cards whose lines lie too close to read apart named together on one label
    (at the lowest of them): "RTX 4090 · RTX 3090" instead of two names drawn over each other."""
    short = [(n.removeprefix("NVIDIA ").removeprefix("GeForce "), gb) for n, gb in rules]
    return tuple((" · ".join(dict.fromkeys(n for n, _ in g)), g[0][1]) for g in _close_groups(short, top_gb))


def _bars_spec(order: tuple, model_names: tuple) -> dict:
    """The stacked bars as a plain Vega-Lite spec (written out, not through altair: ~1 ms instead of ~20 ms a rerun).
    The rows travel apart from it (st.vega_lite_chart's data=): when only the numbers change (a new context), the
    browser updates the drawn chart instead of compiling and embedding a new one. Several models stand side by side
    inside each precision (xOffset), not in facet columns: the chart keeps the container's width, so on a 390 px
    phone every model and the legend stay on screen."""
    encoding = {
        "x": {"field": "Precision", "type": "nominal", "sort": {"field": "Order", "op": "min"}, "title": None,
              "axis": {"labelAngle": -40, "labelLimit": 120}},
        "y": {"aggregate": "sum", "field": "GB", "type": "quantitative", "title": "GB (10^9 bytes)"},
        "color": {"field": "Part", "type": "nominal", "sort": ["Weights", "KV cache", "Overhead"],
                  "legend": LEGEND_BOTTOM},
        "tooltip": [{"field": "Model"}, {"field": "Precision"}, {"field": "Part"},
                    {"field": "GB", "type": "quantitative", "format": ".2f"}],
    }
    if len(model_names) > 1:
        encoding["xOffset"] = {"field": "Model", "type": "nominal", "sort": list(model_names)}
        encoding["opacity"] = {"field": "Model", "type": "nominal", "sort": list(model_names),
                               "scale": {"range": [1.0, 0.6, 0.35, 0.8, 0.5][:len(model_names)] or [1.0]},
                               "legend": {**LEGEND_TOP, "title": "Model (bar order in each group)"}}
    return {**SIZING, "mark": {"type": "bar", "stroke": "#1a1b1e", "strokeWidth": 0.5}, "encoding": encoding}


def _lines_spec(rules: tuple, multi: bool, label_color: str, labels: tuple | None = None) -> dict:
    """Memory against context per model x precision, with a dashed rule and a readable label per card. The lines'
    rows travel apart (data=), like the bars', so a new precision updates the chart instead of rebuilding it.
    With several models, each model has its own colour AND dash (one merged legend drawn as line strokes, not
    identical dots) and the precisions are told apart by point shape."""
    tooltip = [{"field": "Model"}, {"field": "Precision"}, {"field": "Context", "type": "quantitative"},
               {"field": "Total GB", "type": "quantitative", "format": ".2f"}]
    encoding: dict = {
        "x": {"field": "Context", "type": "quantitative", "title": "Context (tokens)"},
        "y": {"field": "Total GB", "type": "quantitative", "title": "Total GB (10^9 bytes)"},
        "tooltip": tooltip,
    }
    if multi:
        stroke_legend = {**LEGEND_TOP, "symbolType": "stroke", "symbolStrokeWidth": 3, "symbolSize": 400,
                         "title": "Model"}
        encoding["color"] = {"field": "Model", "type": "nominal", "legend": stroke_legend}
        encoding["strokeDash"] = {"field": "Model", "type": "nominal", "legend": stroke_legend}
        encoding["shape"] = {"field": "Precision", "type": "nominal", "sort": {"field": "Order", "op": "min"},
                             "legend": {**LEGEND_BOTTOM, "title": "Precision (point shape)"}}
        encoding["detail"] = {"field": "Precision", "type": "nominal"}
    else:
        encoding["color"] = {"field": "Precision", "type": "nominal", "sort": {"field": "Order", "op": "min"},
                             "legend": LEGEND_BOTTOM}
    layers: list[dict] = [{"mark": {"type": "line", "point": {"filled": True, "size": 45}, "strokeWidth": 2},
                           "encoding": encoding}]
    if rules:
        rule_values = {"values": [{"Hardware": h, "Total GB": gb, "Context": 0} for h, gb in rules]}
        y = {"field": "Total GB", "type": "quantitative"}
        layers.append({"data": rule_values, "mark": {"type": "rule", "strokeDash": [4, 4], "strokeWidth": 1.5,
                                                     "color": label_color},
                       "encoding": {"y": y, "tooltip": [{"field": "Hardware"}]}})
        label_values = {"values": [{"Hardware": h, "Total GB": gb, "Context": 0} for h, gb in (labels or rules)]}
        layers.append({"data": label_values, "mark": {"type": "text", "align": "left", "dx": 4, "dy": -8,
                                                      "fontSize": 13, "fontWeight": "bold", "color": label_color,
                                                      "limit": 290},
                       "encoding": {"x": {"field": "Context", "type": "quantitative"}, "y": y,
                                    "text": {"field": "Hardware", "type": "nominal"}}})
    return {**SIZING, "layer": layers}


def draw_charts(models, result, precisions, hardware, sweeps, batch: int) -> None:
    order = tuple(p.label for p in precisions)
    rank = {label: i for i, label in enumerate(order)}  # "Order": the precisions' order, as data, not in the spec
    rows = tuple((e.model_name, e.precision_label, rank.get(e.precision_label, 0), part, value / GB)
                 for es in result.estimates for e in es
                 for part, value in (("Weights", e.weights_bytes), ("KV cache", e.kv_cache_bytes),
                                     ("Overhead", e.overhead_bytes)))
    bars = pd.DataFrame(rows, columns=["Model", "Precision", "Order", "Part", "GB"])
    st.vega_lite_chart(bars, _bars_spec(order, tuple(m.name for m in models)), width="stretch", key="calc_bars",
                       alt="Stacked bars of weights, KV cache and overhead per precision.")
    st.caption("Stacked bars of weights, KV cache and overhead per precision; the numbers are in the table above.")
    names = ", ".join(m.name for m in models)
    st.subheader(f"Memory against context: {plain(names)}")
    if any(not m.architecture for m in models):
        st.caption("A bare parameter count has no KV cache estimate: its lines stay flat. Pick a catalog model or "
                   "upload a config.json.")
    lines = pd.DataFrame([(m.name, label, rank.get(label, 0), r["context"], r["total_bytes"] / GB)
                          for m, sweep in zip(models, sweeps, strict=True) for r in sweep
                          for label in (get_precision(r["precision"]).label,)],
                         columns=["Model", "Precision", "Order", "Context", "Total GB"])
    rules = tuple((hw.name, hw.usable_memory_bytes / GB) for hw in hardware)
    dark = getattr(st.context.theme, "type", None) == "dark"
    label_color = "#f1f3f5" if dark else "#1a1b1e"  # the theme's text colours: readable on either background
    top = max([gb for _, gb in rules] + list(lines["Total GB"]) + [0.0])
    st.vega_lite_chart(lines, _lines_spec(rules, len(models) > 1, label_color, rule_labels(rules, top)),
                       width="stretch", key="calc_lines",
                       alt="Total memory against context per model and precision, with each card's usable memory.")
    st.caption(f"Total memory against context (batch {batch}) for each model and precision, with dashed lines at "
               "each card's usable memory.")


def draw_fit(answers, result, hardware, ctx: int, batch: int, cards: int, rt: str) -> None:
    """The matrix and the per-device table both draw the verdict's own cells (core.sizing.verdict.FitCell), for
    every model, on the cards the user has: the three can never disagree."""
    if not hardware:
        return
    st.subheader(f"Does it fit? {workload_words(ctx, batch).strip(' ()').capitalize()} in {runtime_rules(rt).label}"
                 + (f", {cards} cards of each GPU" if cards > 1 else ""))
    rows, styles, refusals = [], [], {}
    for a, es in zip(answers, result.estimates, strict=True):
        for hw in hardware:
            cells = [a.cells[(hw.id, e.precision)] for e in es]
            rows.append({"Model": a.model_name, "Hardware": f"{hw.name} ({budget_words(hw, rt)})",
                         **{c.precision_label: c.text for c in cells}})
            styles.append({"Model": "", "Hardware": "", **{c.precision_label: _fit_style(c.status) for c in cells}})
            refusals.update({c.precision_label: c.reason for c in cells if c.status == UNSUPPORTED and c.reason})
    matrix = plain_cells(pd.DataFrame(rows))
    style_frame = pd.DataFrame(styles)
    st.table(matrix.style.apply(lambda _: style_frame, axis=None), hide_index=True, border="horizontal")
    st.caption("✅ fits one card (free memory shown) or the cards you have; ❌ does not; ⛔ greyed: the runtime cannot "
               "load that format. Usable memory is what the runtime may allocate: vLLM takes gpu_memory_utilization "
               "(0.9) of the card; Apple Silicon's GPU may use only about 2/3-3/4 of unified memory by default. "
               f"Cards: {runtime_rules(rt).split_words}.")
    for label, reason in refusals.items():
        st.caption(f"⛔ {plain(label)}: {plain(reason)}")
    details = [{
        "Model": a.model_name, "Hardware": hw.name, "Precision": c.precision_label,
        "Fits": {FITS: "yes", FITS_SPLIT: f"yes, {c.cards_used} cards", UNSUPPORTED: "cannot load"}.get(c.status, "no")
        + (" (KV not counted)" if c.text.endswith("(KV not counted)") else ""),
        "Cards": str(c.cards_used) if c.status != UNSUPPORTED else "—",
        "Free GB per card": f"{c.free_bytes / GB:.1f}" if c.status != UNSUPPORTED else "—",
        "Cards needed": str(c.cards_needed) if c.cards_needed else "—",
        "Max context": f"{c.max_context:,}" if c.max_context is not None else "—",
        "Decode tok/s ceiling": f"{c.decode_tokens_per_s:,.0f}" if c.decode_tokens_per_s is not None else "—",
    } for a, es in zip(answers, result.estimates, strict=True) for hw in hardware
        for c in (a.cells[(hw.id, e.precision)] for e in es)]
    st.markdown("**Every model: cards, longest context, speed** (on the cards it runs on)")
    st.table(plain_cells(pd.DataFrame(details)), hide_index=True, border="horizontal")
    st.caption("Decode tok/s ceiling = memory bandwidth / bytes read per token (active weights + KV cache) on the cards "
               "used (tensor parallel adds the cards' bandwidth; a layer split does not); real runtimes reach roughly "
               "50-80% of it. MoE models read only their active experts.")


def draw_quality(precisions) -> None:
    st.subheader("What quantizing costs")
    # the sources go under the table, once each: a Source column made the table run off a 390 px phone
    sources = list(dict.fromkeys(p.ppl_source for p in precisions if p.ppl_source))
    quality = pd.DataFrame([{"Precision": p.label, "ppl Δ": _ppl(p.ppl_delta) + (
        f" [{sources.index(p.ppl_source) + 1}]" if p.ppl_source else ""), "What it is": p.description}
        for p in precisions])
    st.table(quality.set_index("Precision"))
    for i, source in enumerate(sources, 1):
        st.caption(f"[{i}] {plain(source)}")
    st.caption("Perplexity increase over FP16 as llama.cpp's quantize tool reports it (Llama-3-8B, wikitext-2); lower "
               "is better. Ideal INTn rows are arithmetic only: real 4-bit formats carry scales and keep some layers "
               "at 16 bits.")


def draw_glossary() -> None:
    for _, title, text in GLOSSARY:
        with st.expander(title):
            st.markdown(text)
    with st.expander("Why does 70B at INT4 not fit a 24 GB card?"):
        st.markdown(sizing.MYTH_70B_INT4)


# ------------------------------------------------------------------------------------------------ page

st.title("Memory calculator")
st.markdown("[Skip to the answer](#the-answer)")
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
DEFAULTS = defaults(MODEL_IDS, list(HW_BY_ID))

restore_state(DEFAULTS)
warning_box = st.container()
answer_box = st.container()
saved = st.session_state.get("calc_state")
mode, hf_token, ctx_column = draw_inputs()
log_error = runtime_view.sync_measured()
state = {k: st.session_state.get(f"w_{k}", DEFAULTS[k]) for k in DEFAULTS}
state["mode"] = mode
try:
    state["ctx"] = parse_context(state["ctx"])
    if state["ctx"] > MAX_CONTEXT:
        raise QuantLensError("invalid_context", f"Context is above the page's limit of {MAX_CONTEXT:,} tokens.")
except QuantLensError as exc:  # a typo must not silently become another number: say so, keep the last good one
    st.error(f"Context: {plain(exc.one_line())}")
    state["ctx"] = saved["ctx"] if saved and isinstance(saved.get("ctx"), int) else DEFAULTS["ctx"]
st.session_state["calc_state"] = dict(state)
if state["ctx"] and state["ctx"] % 1024 == 0 and state["ctx"] >= 1024:
    ctx_column.caption(f"= {state['ctx']:,} tokens (k = 1024, as llama.cpp and vLLM count)")
write_query_params(state)
with warning_box:
    show_link_warnings(state)
share_link()

started = time.perf_counter()
models, hub_found = resolve_models(state, hf_token)
if not models:
    with answer_box:
        st.info("Choose a model: paste a Hugging Face id, pick from the catalog, type a parameter count, or upload "
                "a config.json.")
    st.stop()

precisions = [get_precision(n) for n in state["prec"]] or [get_precision("fp16")]
# a Hub model is always shown in the format its repo (or GGUF file) stores, first
stored = [get_precision(f.stored_precision) for f in hub_found if f.stored_precision]
precisions = list(dict.fromkeys(stored + precisions))
hardware = tuple(HW_BY_ID[g] for g in state["gpu"])
if state.get("card"):
    try:
        hardware += (parse_custom_card(state["card"]),)
    except QuantLensError as exc:
        with warning_box:
            st.error(f"Your own card: {plain(exc.one_line())}")
ctx, batch, kv, rt, cards = int(state["ctx"]), int(state["batch"]), state["kv"], state["rt"], int(state["cards"])
models, hardware_kept, cut_warnings = cap_view(models, list(hardware), lambda m: m.name, lambda h: h.name)
hardware = tuple(hardware_kept)
for w in cut_warnings:
    with warning_box:
        st.warning(plain(w))

for m in models:
    for w in m.warnings:
        st.info(f"{plain(m.name)}: {plain(w)}")
    if m.architecture is not None and ctx > m.max_context:
        with warning_box:
            st.warning(f"Context {ctx:,} is beyond {plain(m.name)}'s trained context of {m.max_context:,} tokens: the "
                       "memory is computed, but the model was not trained to read that far.")

if mode != "inference":
    with answer_box:
        draw_training(models, mode, state, hardware, cards)
    st.stop()

result = sizing.calculate(models, precisions, ctx, batch, kv, rt, hardware,
                          imatrix=True if state.get("imatrix") else None)
answers = answer(result.models, result.estimates, hardware, cards, kv, rt,
                 imatrix=True if state.get("imatrix") else None)
sweeps = [result.sweep] + [
    sizing.memory_vs_context(m, [p.name for p in precisions], sizing.context_points(min(m.max_context, MAX_CONTEXT)),
                             batch, kv, rt) for m in result.models[1:]]
compute_ms = (time.perf_counter() - started) * 1000
with answer_box:
    draw_answer(answer_box, answers, result, ctx, batch)
    runtime_view.draw_card_set(result, [HW_BY_ID[i] for i in state.get("mixed") or [] if i in HW_BY_ID], rt, kv,
                               hub_found)
    for note in result.myth_notes:
        st.warning(plain(note))
draw_memory(models, result, rt, compute_ms, hub_found)
draw_fit(answers, result, hardware, ctx, batch, cards, rt)
runtime_view.draw_run_it(answers, result, hardware, kv, hub_found)
runtime_view.draw_reconcile(result.models[0], precisions, kv, hardware, state.get("measured", ""), log_error)
draw_charts(result.models, result, precisions, hardware, sweeps, batch)
draw_quality(precisions)
draw_glossary()
