"""QuantLens router: registers the pages and nothing else.

Kept free of heavy imports so the first page load is fast; torch, transformers and onnxruntime are
imported only inside the compare engine, in a worker process, when a comparison actually runs.
"""

import streamlit as st

st.set_page_config(page_title="QuantLens", page_icon=":material/memory:", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/calculator.py", title="Memory calculator", icon=":material/calculate:", url_path="calculator"),
    st.Page("pages/compare.py", title="Quantize & compare", icon=":material/compare_arrows:", url_path="compare"),
]

st.navigation(PAGES, position="top").run()
