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
        and not (path.name == "style.py" and line.strip() == "st.html(CSS)")
    ]
    assert offenders == []


def test_the_only_raw_html_is_the_page_wide_css_constant():
    """pages/style.py injects one fixed <style> block: a plain string literal, nothing interpolated into it."""
    import ast

    tree = ast.parse((REPO / "pages" / "style.py").read_text(encoding="utf-8"))
    css = next(n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "CSS")
    assert isinstance(css, ast.Constant) and isinstance(css.value, str)
    assert css.value.strip().startswith("<style>") and css.value.count("<") == 2


# ------------------------------------------------------------------------------------------ round two (threat 29)
def _calculator(**query):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.switch_page("pages/calculator.py")
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


INJECTIONS = [
    "x` ![t](https://evil.example/pixel.png) `",  # closes the code span, fetches an image from any host
    "x` [Session expired, sign in](https://evil.example/login) `",
    "x` :red[coloured] :material/warning: $x^2$ `",
    "https://evil.example/bare-url www.evil.example",
    "x\n\n# a heading\n\n<img src=x onerror=alert(1)>",
]


def _markdown_constructs(text: str) -> list[str]:
    """Markdown a renderer would act on: an unescaped link/image opener, directive, math, autolink, new block."""
    unescaped = re.sub(r"\\.", "", text)  # drop every escaped character: what is left is live syntax
    found = [token for token in ("](", "![", ":red[", ":material/", "$", "`", "<", "\n") if token in unescaped]
    found += re.findall(r"https?://|www\.", unescaped)
    return found


def test_a_link_value_is_echoed_as_plain_text_never_as_markdown():
    for value in INJECTIONS:
        at = _calculator(kv=value, src="params", params="7B")
        assert not at.exception
        warnings = [w for w in at.warning.values if "Ignored kv" in re.sub(r"\\(.)", r"\1", w)]
        assert warnings, value
        for warning in warnings:
            assert _markdown_constructs(warning) == [], (value, warning)


def test_plain_escapes_every_markdown_construct_and_keeps_the_text():
    from pages.text import plain

    for value in INJECTIONS:
        escaped = plain(value)
        assert _markdown_constructs(escaped) == [], escaped
        seen = re.sub(r"\\(.)", r"\1", escaped).replace("\u2060", "")  # the word joiners are invisible
        assert seen == re.sub(r"\n+", " ", value)  # the reader still sees it all


def test_a_context_of_superscript_two_or_five_thousand_digits_is_a_warning_not_a_crash():
    for value in ("²", "9" * 5000, "٣"):
        at = _calculator(ctx=value)
        assert not at.exception, value
        assert any("Ignored ctx" in re.sub(r"\\(.)", r"\1", w) for w in at.warning.values), value


def test_link_numbers_accept_only_plain_ascii_digits():
    from pages.text import link_int

    assert link_int("4096", 0, 10**6) == 4096
    assert [link_int(v, 0, 10**6) for v in ("²", "٣", "9" * 5000, "", "-1", "1e3", " 5", "2000000")] == [None] * 8
