"""The "copy link" affordance shared by the pages (UI only; not a page itself).

Every page mirrors its state into st.query_params, so the current browser URL *is* the shareable link; this
shows it in a code block, whose built-in copy button puts it on the clipboard.
"""

from urllib.parse import urlencode, urlsplit, urlunsplit

import streamlit as st


def current_link() -> str:
    """The page's URL with its current query parameters (st.context.url carries no query string)."""
    base = urlsplit(st.context.url or "")
    pairs = [(key, value) for key in st.query_params for value in st.query_params.get_all(key)]
    return urlunsplit((base.scheme, base.netloc, base.path, urlencode(pairs), ""))


def share_link(label: str = "Copy link to this view") -> None:
    with st.popover(label, icon=":material/link:"):
        st.caption("Anyone opening this link sees the page exactly as it is now.")
        st.code(current_link(), language=None, wrap_lines=True)
