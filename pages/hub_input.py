"""The calculator's "Hugging Face id or URL" way in (UI only; not a page itself).

Why separate: the calculator page's layout is redesigned in parallel; this keeps the Hub input, its token form
and the predicted-vs-published tables in one small piece the page calls. Every number comes from core.sizing.hub.

The token: typed into a password field inside a form that clears itself on submit, used for that run's lookups,
never put in session state under our keys, the URL or a cache key. What a token lookup found is kept in this
browser session only (st.session_state), so later reruns (changing context, precision) need neither the token nor
a request.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.errors import QuantLensError
from core.sizing import hub, hub_quant
from core.sizing.hub_limits import SessionLookupLimit, capped_ids
from core.sizing.hub_ref import HubRef, parse_hub_ref, ref_text, refs_from_query, refs_to_query, split_ref_lines
from pages.text import plain

GB = 10**9
FOUND_KEY = "calc_hub_found"
LIMIT_KEY = "calc_hub_limit"
MAX_FOUND = 64  # models kept in one session's store (oldest dropped first)


def text_from_query(qp) -> tuple[str, list[str]]:
    """`hf=` (repeated), `rev=`, `file=` -> the model box's text; bad values become warnings."""
    try:
        refs = refs_from_query(qp.get_all("hf"), qp.get("rev") or None, qp.get("file") or None)
    except QuantLensError as exc:
        return "", [f"Ignored hf= in the link ({plain(exc.message)})"]
    return "\n".join(ref_text(r) for r in refs), []


def query_from_text(text: str) -> dict[str, list[str] | str]:
    refs = []
    for line in split_ref_lines(text):
        try:
            refs.append(parse_hub_ref(line))
        except QuantLensError:
            continue  # shown as an error where the lookups run; the link keeps only what parses
    return refs_to_query(refs)


TOKEN_BOX = "hf_token_box"
_TOKEN_ONCE = "hf_token_once"


def _take_token() -> None:
    """Runs on submit, before the rerun: moves the token out of the box, which is emptied on the server too."""
    st.session_state[_TOKEN_ONCE] = st.session_state.get(TOKEN_BOX, "")
    st.session_state[TOKEN_BOX] = ""


def draw_input() -> str | None:
    """The id box and the token form; returns a token only on the run its form was submitted, then forgets it."""
    st.text_area("Hugging Face model ids or links, one per line (org/name, org/name:Q4_K_M or hf.co/org/name:Q8_0 "
                 "for a GGUF type, or a huggingface.co link to a repo, revision or .gguf file)", key="w_hf", height=80,
                 placeholder="mistralai/Mistral-Small-24B-Instruct-2501")
    with (st.expander("Gated or private model? Use a read token"),
          st.form("hf_token_form", clear_on_submit=True, border=False)):
        st.text_input("Read token (huggingface.co/settings/tokens); used for this lookup only, never stored or put "
                      "in the link", type="password", key=TOKEN_BOX)
        st.form_submit_button("Look up with this token", on_click=_take_token)
    return (st.session_state.pop(_TOKEN_ONCE, "") or "").strip() or None


def lookup_all(text: str, token: str | None) -> list[hub.HubModel]:
    """Each line looked up (answers from this session's store or the process cache first); errors shown per line.

    At most hub_limits.MAX_IDS_PER_VIEW ids per view and MAX_LOOKUPS_PER_MINUTE network lookups per session."""
    found_store: dict[HubRef, hub.HubModel] = st.session_state.setdefault(FOUND_KEY, {})
    limit: SessionLookupLimit = st.session_state.setdefault(LIMIT_KEY, SessionLookupLimit())
    lines, left_out = capped_ids(split_ref_lines(text))
    if left_out:
        st.warning(left_out)
    out = []
    for line in lines:
        try:
            ref = parse_hub_ref(line)
            found = found_store.get(ref) if token is None else None
            if found is None and token is None:
                found = hub.peek(ref)
                failed = hub.cached_failure(ref) if found is None else None
                if failed is not None:
                    raise failed
            if found is None:
                limit.take()
                with st.spinner(f"Reading {plain(ref.label)} from the Hub (metadata only)..."):
                    found = hub_quant.lookup(ref, token=token)  # org/repo:Q4_K_M -> that GGUF file
            found_store[ref] = found
            while len(found_store) > MAX_FOUND:
                found_store.pop(next(iter(found_store)))
            out.append(found)
        except QuantLensError as exc:
            st.error(plain(exc.one_line()))
    return out


def draw_details(found: list[hub.HubModel]) -> None:
    """What each repo holds, and the calculator's prediction next to the published sizes."""
    if not found:
        return
    st.subheader("From the Hugging Face Hub")
    for f in found:
        stored = f"; stored as **{plain(f.stored_precision)}**" if f.stored_precision else ""
        st.markdown(f"**{plain(f.ref.label)}** at commit {plain(f.commit[:12])}{stored}"
                    + ("; metadata only (no weights downloaded)" if f.requests else "; from the cache (no request)"))
        if f.parameters_by_dtype:
            st.caption("Parameters per stored dtype (safetensors headers): "
                       + plain(", ".join(f"{k} {v:,}" for k, v in f.parameters_by_dtype.items())))
        if f.gguf_files:
            st.dataframe(pd.DataFrame([{"GGUF file": g.name, "Parts": len(g.parts), "Type": g.quant or "",
                                        "Published GB": g.size_bytes / GB,
                                        "Sized from": "✔ this file's header" if g.name == f.gguf_file else ""}
                                       for g in f.gguf_files]),
                         hide_index=True, column_config={"Published GB": st.column_config.NumberColumn(format="%.3f")})
        if f.checks:
            st.dataframe(pd.DataFrame([{"Check": c.label, "Predicted GB": c.predicted_bytes / GB,
                                        "Published GB": c.published_bytes / GB, "Difference %": c.error_percent}
                                       for c in f.checks]),
                         hide_index=True, column_config={
                             "Predicted GB": st.column_config.NumberColumn(format="%.3f"),
                             "Published GB": st.column_config.NumberColumn(format="%.3f"),
                             "Difference %": st.column_config.NumberColumn(format="%+.2f")})
        for n in f.notes:
            st.caption(plain(n))
