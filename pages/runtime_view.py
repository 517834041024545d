"""The calculator's "Run it" section (UI only): launch commands, vLLM's predicted boot lines, offload plans.

Every number and command comes from core.sizing (launch, serving, verdict); this module only draws them. Commands
go through st.code (shown as text, never rendered as Markdown); model names through plain().
"""

from __future__ import annotations

import streamlit as st

from core.sizing import weights_bytes
from core.sizing.launch import plan_for_verdict
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


def draw_run_it(answers, result, hardware, kv: str, hub_found=()) -> None:
    """Per model x device: the commands that realise the verdict, and under vLLM its predicted boot lines."""
    if not hardware or not any(a.verdicts for a in answers):
        return
    st.subheader("Run it: launch commands", anchor="run-it")
    for a, model, ests in zip(answers, result.models, result.estimates, strict=True):
        for v in a.verdicts:
            hw = next(h for h in hardware if h.id == v.hardware_id)
            repo, gguf_file = _repo_for(model, v.runtime, hub_found)
            plan = plan_for_verdict(v, a.cells, kv, repo, gguf_file)
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
                    st.code("\n".join(cap.log_lines()), language="text")
                    st.caption(plain(capacity_sentence(cap)))
    st.caption("Commands realise the verdict above: the format that fits (or the offload plan), the context, the "
               "concurrent requests and the cards. Check the repo name before running.")
