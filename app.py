"""QuantLens router: registers the pages and nothing else.

Kept free of heavy imports so the first page load is fast; torch, transformers and onnxruntime are
imported only inside the compare engine, in a worker process, when a comparison actually runs.
"""

import logging

import streamlit as st

from core.errors import QuantLensError
from core.jobs.runner import sweep_at_start_up
from core.jobs.sandbox import describe_confinement
from core.versions import installed_version, require_dependency_floors

# An emoji icon: Streamlit draws it as an inline data: SVG. A ":material/...:" icon made every browser fetch the
# favicon from fonts.gstatic.com, an image from another host on every page (tests/e2e/test_no_foreign_links.py).
st.set_page_config(page_title="QuantLens", page_icon="🧮", layout="wide")


@st.cache_resource(show_spinner=False)
def _dependency_check() -> str | None:
    """Once per process: log versions and refuse to serve uploads on libraries with known, fixed vulnerabilities."""
    log = logging.getLogger("quantlens")
    names = ("streamlit", "onnx", "onnxruntime", "torch", "transformers", "optimum")
    log.info("QuantLens versions: %s", ", ".join(f"{n} {installed_version(n)}" for n in names))
    log.info(describe_confinement())
    try:
        removed = sweep_at_start_up()  # orphaned (owner gone) and old job folders: at start-up, not at first Run
        if removed:
            log.info("Removed %d job folder(s) left behind by an earlier run.", removed)
    except (OSError, QuantLensError) as exc:  # a sweep that cannot run must not keep the app from starting
        log.warning("Could not sweep old job folders: %s", exc)
    try:
        advisories = require_dependency_floors()
    except QuantLensError as exc:
        return exc.one_line()
    for text in advisories:  # the operator can act on these, a visitor cannot: log, don't show
        log.warning(text)
    return None


blocking = _dependency_check()
if blocking:
    st.error(blocking)
    st.stop()

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/calculator.py", title="Memory calculator", icon=":material/calculate:", url_path="calculator"),
    st.Page("pages/compare.py", title="Quantize & compare", icon=":material/compare_arrows:", url_path="compare"),
]

st.navigation(PAGES, position="top").run()
