"""The calculator's "Run it" section (UI only): launch commands, vLLM's predicted boot lines, offload plans.

Every number and command comes from core.sizing (launch, serving, verdict); this module only draws them. Commands
go through st.code (shown as text, never rendered as Markdown); model names through plain().
"""

from __future__ import annotations

import streamlit as st

from core.sizing import weights_bytes
from core.sizing.card_set import card_set_verdict
from core.sizing.launch import llama_cpp_command, plan_for_verdict, vllm_command
from core.sizing.runtimes import loads
from core.sizing.serving import capacity_sentence, vllm_capacity
from core.sizing.verdict import UNSUPPORTED
from pages.text import plain


def _repo_for(model, runtime: str, hub_found) -> tuple[str | None, str | None]:
    """The repo the commands name: the Hub id typed (and its GGUF file), or for vLLM/transformers the catalog's
    own checkpoint id; a catalog model under llama.cpp gets a placeholder (its GGUF repo is not known)."""
    for f in hub_found or ():
        if f.spec.name == model.name:
            return f.ref.repo_id, getattr(f, "gguf_file", None)
    if runtime != "llama.cpp" and model.catalog_id:
        return model.catalog_id, None
    return None, None


def _capacity(model, answer_, verdict, ests, hw, kv: str):
    """vLLM's predicted boot lines for the verdict's format (or, when nothing fits the requests asked for, the most
    faithful loadable format that still boots), on the tensor-parallel size it runs on."""
    if model.architecture is None or model.architecture.is_encoder or hw.kind != "gpu" or not verdict.context:
        return None
    candidates = [verdict.best_precision] if verdict.best_precision else [
        e.precision for e in sorted(ests, key=lambda e: -e.weights_bytes)
        if loads("vllm", e.precision) and answer_.cells[(hw.id, e.precision)].status != UNSUPPORTED]
    for name in candidates:
        cell = answer_.cells.get((hw.id, name))
        tp = cell.cards_used if cell is not None else 1
        c = vllm_capacity(model.architecture, weights_bytes(model, name), hw.memory_bytes, verdict.context,
                          verdict.batch, tp, kv_precision=kv if kv in ("fp16", "bf16", "fp8", "fp32") else "fp16")
        if c.starts or name == candidates[-1]:
            return name, c
    return None


def draw_card_set(result, cards, runtime: str, kv: str = "fp16", hub_found=()) -> None:
    """Mixed cards used together (mixed=): one line per model, with the command that realises it."""
    if len(cards) < 2:
        return
    st.markdown("**Your cards together** (each within its own memory)")
    for model, ests in zip(result.models, result.estimates, strict=True):
        if not ests:
            continue
        v = card_set_verdict(model, ests, cards, runtime)
        st.markdown(("✅ " if v.fits else "❌ ") + plain(v.sentence))
        precision = v.precision or v.offload_precision
        if not v.flags or precision is None:
            continue
        repo, gguf_file = _repo_for(model, runtime, hub_found)
        context, batch = ests[0].context, ests[0].batch
        if runtime == "llama.cpp":
            st.code(llama_cpp_command(repo, precision, context, batch, kv, v.flags, gguf_file), language="bash",
                    wrap_lines=True)
        elif runtime == "vllm":
            st.code(vllm_command(repo, precision, context, batch, kv, int(v.flags.split()[-1])), language="bash",
                    wrap_lines=True)
        else:
            st.code(v.flags, language="python")


def draw_run_it(answers, result, hardware, kv: str, hub_found=()) -> None:
    """Per model x device: the commands that realise the verdict, and under vLLM its predicted boot lines."""
    if not hardware or not any(a.verdicts for a in answers):
        return
    st.subheader("Run it: launch commands", anchor="run-it")
    for a, model, ests in zip(answers, result.models, result.estimates, strict=True):
        for v in a.verdicts:
            hw = next(h for h in hardware if h.id == v.hardware_id)
            repo, gguf_file = _repo_for(model, v.runtime, hub_found)
            stored = next((f.stored_precision for f in hub_found or () if f.spec.name == model.name), None)
            plan = plan_for_verdict(v, a.cells, kv, repo, gguf_file, model.catalog_id, stored)
            if plan is None:
                continue
            st.markdown(f"**{plain(model.name)} on {plain(hw.name)}**" + (f" ×{v.cards}" if v.cards > 1 else ""))
            for cmd in plan.commands:
                st.caption(plain(cmd.label))
                st.code(cmd.command, language="bash", wrap_lines=True)
            if v.offload is not None and v.best_precision is None:
                st.caption(plain(v.offload.sentence))
            for note in plan.notes:
                st.caption(plain(note))
            if v.runtime == "vllm":
                found = _capacity(model, a, v, ests, hw, kv)
                if found is not None:
                    name, cap = found
                    st.caption(f"vLLM's boot log should print (predicted, {plain(name)}, within ~10% on published "
                               "logs):")
                    st.code("\n".join(cap.log_lines()), language="text", wrap_lines=True)
                    st.caption(plain(capacity_sentence(cap)))
    st.caption("Commands realise the verdict above: the format that fits (or the offload plan), the context, the "
               "concurrent requests and the cards. Check the repo name before running.")


# ------------------------------------------------------------------------------------- predicted vs measured

LOG_BOX = "calc_log_text"
MAX_LOG_CHARS = 200_000


def sync_measured() -> str | None:
    """Before the page builds its state: a pasted log becomes the numbers the link carries (`measured=`); the
    log itself is never stored in the link. Returns the one-line error of an unreadable log, if any."""
    from core.errors import QuantLensError
    from core.sizing.reconcile import parse_log

    text = st.session_state.get(LOG_BOX) or ""
    if not text.strip():
        return None
    try:
        st.session_state["w_measured"] = parse_log(text[:MAX_LOG_CHARS]).to_link()
    except QuantLensError as exc:
        return exc.one_line()
    return None


def draw_reconcile(model, precisions, kv: str, hardware, measured: str, error: str | None) -> None:
    """Paste a start-up log (or open a link carrying its numbers): each component predicted vs measured."""
    import pandas as pd

    from core.errors import QuantLensError
    from core.sizing.precisions import get_precision
    from core.sizing.reconcile import choose_precision, from_link, predicted_components, reconcile
    from core.sizing.runtimes import loads as runtime_loads

    st.subheader("Paste a log: predicted vs measured", anchor="reconcile")
    st.text_area("Start-up log (llama.cpp buffer lines, Ollama runner log or vLLM boot log); read as text, only its "
                 "numbers are kept", key=LOG_BOX, height=120, max_chars=MAX_LOG_CHARS)
    if error:
        st.error(plain(error))
    if not measured or model is None:
        st.caption("The link then carries the numbers read from the log (never the log), so others see the same "
                   "comparison.")
        return
    try:
        parsed = from_link(measured)
    except QuantLensError as exc:
        st.warning(plain(exc.one_line()))
        return
    runtime = "vllm" if parsed.runtime == "vllm" else "llama.cpp"
    chosen = [p.name for p in precisions if runtime_loads(runtime, p.name)]
    choice = choose_precision(parsed, chosen[0] if chosen else None)  # the log's own format first (as the CLI)
    precision = choice.name
    if not choice.from_log:
        st.info(f"The log names no weight format, so it is compared at {plain(get_precision(precision).label)}, the "
                "first precision chosen above that this runtime loads. Pick the format the log loaded first.")
    gpu = next((h for h in hardware if h.kind == "gpu"), None)
    try:
        kv = parsed.kv_precision or kv  # the KV type the log names (llama.cpp `K (q8_0):`) before the page's
        predicted = predicted_components(model, precision, parsed, kv, gpu.memory_bytes if gpu else None)
    except QuantLensError as exc:
        st.warning(plain(exc.one_line()))
        return
    rows = reconcile(parsed, predicted)

    def show(v, unit):
        return "—" if v is None else (f"{v:,} tokens" if unit == "tokens" else f"{v / 1e9:.3f} GB")

    st.table(pd.DataFrame([{
        "Component": r.component, "Predicted": show(r.predicted_bytes, r.unit), "Measured": show(r.measured_bytes, r.unit),
        "Gap": "—" if r.gap_bytes is None else (f"{r.gap_bytes:+,} tokens" if r.unit == "tokens"
                                                 else f"{r.gap_bytes / 1e9:+.3f} GB"),
        "Gap %": "—" if r.gap_percent is None else f"{r.gap_percent:+.1f}%",
    } for r in rows]), hide_index=True, border="horizontal")
    facts = ", ".join(f"{k} {v:,}" for k, v in parsed.facts.items())
    st.caption(f"{plain(model.name)} at {plain(precision)} ({plain(choice.words)}), KV cache {plain(kv)}"
               + (" (named by the log)" if parsed.kv_precision else "") + f", {parsed.runtime} log" + (f" ({facts})" if facts else "")
               + (f"; vLLM pool predicted for {plain(gpu.name)}" if gpu and parsed.runtime == "vllm" else "")
               + ". Weights and KV cache are arithmetic; compute buffers and vLLM's pool are estimates.")
