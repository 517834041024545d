"""Threat 22, display side: nothing a user uploads can become HTML in the page.

Streamlit escapes markdown HTML unless `unsafe_allow_html=True` is passed, and `st.html` renders raw HTML;
neither may appear in the app, so an upload named `<img onerror=...>.onnx` or a config string is shown as text.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_no_page_renders_raw_html():
    sources = [REPO / "app.py", *(REPO / "pages").glob("*.py")]
    offenders = [
        f"{path.name}:{number}"
        for path in sources if path.exists()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if re.search(r"unsafe_allow_html\s*=\s*True|\bst\.html\(|components\.html\(", line)
    ]
    assert offenders == []
