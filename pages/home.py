"""Home: what quantization buys and costs, in one screen, and the way to the two tools.

Every number on this page comes from the engine (core.sizing), so the story and the calculator never disagree.
"""

import pandas as pd
import streamlit as st

from core import sizing
from core.sizing.glossary import term
from pages.routing import page_entered

page_entered("home")  # so the tools rebuild themselves from their links when entered from here
st.title("QuantLens")
st.markdown(
    "#### How much memory does this model need at FP16, INT8, INT4 — and what does quantizing it really cost?"
)

left, right = st.columns([3, 2], gap="large")
with left:
    st.markdown(
        "**Quantization buys memory.** A model's weights take *parameters × bytes per parameter*. "
        "Storing each weight in 8 or 4 bits instead of 16 halves or quarters that, which decides whether a model "
        "fits your GPU at all, and — because decoding reads every weight once per token — how fast it can talk."
    )
    rows = sizing.seed_table()
    order = list(dict.fromkeys(r["model"] for r in sorted(rows, key=lambda r: r["parameters"])))
    table = (
        pd.DataFrame(rows)
        .pivot(index="model", columns="precision", values="weights_gb")
        .reindex(index=order, columns=["FP16", "INT8", "INT4"])
    )
    table.index.name = "Weights only (GB = 10⁹ bytes)"
    st.dataframe(table.style.format("{:.1f} GB"), width="stretch")
    st.caption(
        "Ideal bits: INT4 is exactly half a byte per weight. Real formats add scales and keep some tensors at higher "
        "precision (a GGUF Q4_K_M file is about 4.9 bits per weight) — the calculator shows both side by side, plus "
        "the KV cache and runtime overhead that come on top."
    )
    st.warning(sizing.MYTH_70B_INT4, icon=":material/report:")
    st.markdown(
        "**Quantization costs quality — sometimes a little, sometimes a lot.** llama.cpp measures Llama-3-8B's "
        "perplexity rising by +0.003 at Q8_0, +0.18 at Q4_K_M and +3.5 at Q2_K. Published averages are a hint, "
        "not a guarantee: the only honest answer is to run your model on your inputs, which is what the compare "
        "page does."
    )

with right:
    st.subheader("The two tools")
    with st.container(border=True):
        st.markdown("**Memory calculator** — any model size, any precision, KV cache, overhead, training; "
                    "does it fit this GPU or Mac, how many GPUs, what context, what tokens/s.")
        st.page_link("pages/calculator.py", label="Open the calculator", icon=":material/calculate:")
        st.page_link("pages/calculator.py", label="Does 70B at INT4 fit an RTX 4090?", icon=":material/help:",
                     query_params={"src": "params", "params": "70B", "prec": ["int4", "Q4_K_M"],
                                   "gpu": ["rtx-4090", "rtx-3090"], "ctx": "4096"})
    with st.container(border=True):
        st.markdown("**Quantize & compare** — upload a small model (ONNX, or a Hugging Face folder as a zip) or use "
                    "the bundled all-MiniLM-L6-v2; get FP16, INT8 and INT4 versions and see size, latency and "
                    "outputs side by side on your own inputs.")
        st.page_link("pages/compare.py", label="Open quantize & compare", icon=":material/compare_arrows:")
        st.page_link("pages/compare.py", label="See the demo results", icon=":material/play_arrow:",
                     query_params={"demo": "1", "run": "1"})

st.subheader("Terms people confuse")
for column, key in zip(st.columns(3), ("ptq_qat", "quant_distill", "formats"), strict=True):
    title, text = term(key)
    with column, st.container(border=True):
        st.markdown(f"**{title}.** {text}")
st.caption("GB = 10⁹ bytes, GiB = 2³⁰ bytes; GPU makers sell memory in GiB (a \"24 GB\" card holds 24 GiB).")
