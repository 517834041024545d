"""Page-wide CSS the theme cannot express (UI only; not a page itself).

A visible focus ring on tables and charts for keyboard users, and tables that never push the page sideways on a
phone (they scroll inside their own box instead); multiselect tags wrap on a phone instead of running off it.
"""

import streamlit as st

CSS = """
<style>
[data-testid="stDataFrame"]:focus-within, [data-testid="stTable"]:focus-within,
[data-testid="stVegaLiteChart"]:focus-within {
  outline: 3px solid #5c7cfa; outline-offset: 2px; border-radius: 4px;
}
[data-testid="stDataFrame"], [data-testid="stTable"] { max-width: 100%; overflow-x: auto; }
@media (max-width: 640px) {  /* a phone: table cells wrap at word breaks in a smaller font, so wide tables fit */
  [data-testid="stTableStyledTable"] th, [data-testid="stTableStyledTable"] td {
    white-space: normal; overflow-wrap: break-word; font-size: 0.75rem; padding: 0.25rem 0.3rem;
  }
}
[data-testid="stMultiSelect"] [data-tag] { max-width: 100%; height: auto; }
[data-testid="stMultiSelect"] [data-tag] span[title] { max-width: none; white-space: normal; overflow-wrap: anywhere; }
[data-testid="stMultiSelect"] [data-baseweb="select"] > div > div { flex-wrap: wrap; }
</style>
"""


def apply() -> None:
    st.html(CSS)
