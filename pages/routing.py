"""Make a deep link go through app.py's router (UI plumbing; not a page itself).

Streamlit 1.67 decides once per server process, from the mere existence of a `pages/` folder, to serve a deep
link such as /calculator by running pages/calculator.py directly (its old "MPA v1" mode), until some session runs
app.py's `st.navigation`. The first visitor arriving by a shared link would then get a page without the app's
navigation, page config and start-up checks. Each page calls `ensure_routed()` first: if it finds itself served that
way, it switches the process to `st.navigation` routing and reruns, so app.py routes this very request.
"""

import streamlit as st


def ensure_routed() -> None:
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def page_entered(name: str) -> bool:
    """True on a page's first run since another page ran in this session (or the session began).

    Streamlit keeps session values across pages but drops widget values of pages not drawn, so a page entered
    again would mix stale values with empty widgets. Pages call this first and rebuild their whole state when it
    says so: from the link's values if it carries any, else from what the page last showed (or its defaults).
    """
    previous = st.session_state.get("ql_current_page")
    st.session_state["ql_current_page"] = name
    return previous != name
