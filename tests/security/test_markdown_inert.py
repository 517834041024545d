"""Threat 29, round three: `pages.text.plain()` makes any value inert in Streamlit's Markdown, autolinks included.

Streamlit 1.67 renders st.markdown/caption/warning/error/info, spinner and status labels and every st.table cell
with react-markdown + remark-gfm (+ remark-math, remark-directive, remark-emoji). Backslash escapes stop the
parser's own constructs, but GFM's literal autolinks and emoji shortcodes are found afterwards in the parsed text,
where escapes are gone. The regexes below are the ones in Streamlit's bundle
(streamlit/static/static/js/StreamlitMarkdown.*.js: mdast-util-gfm-autolink-literal's findAndReplace, and
remark-emoji's shortcode pattern); JavaScript's \\w is ASCII, hence re.ASCII. The browser walk
(tests/e2e/test_no_foreign_links.py) checks the same values in a real Chromium.
"""

from __future__ import annotations

import re

import pytest

from pages.text import WORD_JOINER, plain, plain_cells
from tests.security.page_keys import PAYLOADS, hostile_query, query_keys

# What the parsed text node is searched for after parsing (escapes already resolved).
GFM_URL = re.compile(r"(https?://|www(?=\.))([-.\w]+)([^ \t\r\n]*)", re.IGNORECASE | re.ASCII)
GFM_EMAIL = re.compile(r"([-.\w+]+)@([-\w]+(?:\.[-\w]+)+)", re.ASCII)
EMOJI = re.compile(r":\+1:|:-1:|:[\w-]+:", re.ASCII)

CORPUS = [
    "x` ![t](https://evil.example/pixel.png) `",
    "x` [Session expired: sign in](https://evil.example/login) `",
    "[Session expired - sign in](https:evil.example)",
    "![x](https:evil.example?img.png)",
    "evil/www.evil.example",
    "WWW.EVIL.EXAMPLE and HtTpS://evil.example/x",
    "https://evil.example/bare http://evil.example:8080/p?q=1#f",
    "mail me: phish@evil.example or mailto:phish@evil.example",
    "<https://evil.example/angle> <phish@evil.example>",
    "[x][1]\n\n[1]: https://evil.example/ref",
    "[x]\n[x]: https://evil.example/collapsed",
    "<a href=\"https://evil.example\">sign in</a><img src=https://evil.example/i.png>",
    "<iframe src=//evil.example></iframe><style>*{background:url(//evil.example/c.png)}</style>",
    "&#104;ttps://evil.example/entity &lt;img&gt; &#x5B;x&#x5D;(https://evil.example)",
    "ｈｔｔｐｓ://evil.example ＜a＞ www．evil．example",  # fullwidth lookalikes: shown as they are
    "``x`` ``` ![t](https://evil.example/n.png) ```",  # nested / longer backtick runs
    "![t](https://evil.example/\nsplit.png) [a\n](https://evil.example)",  # a line break inside the markers
    "x\r\n\r\n# heading\n> quote\n- item\n1. item\n---\n|a|b|\n|-|-|\n|c|d|",
    ":red[coloured] :material/warning: :smile: :+1: $x^2$ $$y$$ ~~del~~ **b** __u__ *i* _i_",
    "javascript:alert(1) data:text/html,<b>x</b> \\[escaped\\](https://evil.example)",
    "www.evil.example" * 40 + "https://evil.example/long",  # cut at the limit, still inert
    "\u202eelpmaxe.live//:sptth\u202c and \u2066isolate\u2069",  # bidi controls
]


def live_constructs(markdown: str) -> list[str]:
    """What Streamlit's renderer would still act on in `markdown` (empty when the value is inert)."""
    unescaped = re.sub(r"\\.", "", markdown)  # escaped characters are literal to the parser; what is left is live
    found = [tok for tok in ("](", "![", "[", "`", "<", ">", "&", "$", "*", "_", "~", "|", "\n", "\r") if tok in unescaped]
    found += [f"directive {m}" for m in re.findall(r":[\w-]+[\[{]|:material", unescaped)]
    if re.match(r"\s*(?:[-+*>#]|\d+[.)])", unescaped):
        found.append("block at start")
    text = re.sub(r"\\(.)", r"\1", markdown)  # the parsed text node: where autolinks and shortcodes are found
    found += [f"autolink {m.group(0)}" for m in GFM_URL.finditer(text)]
    found += [f"email {m.group(0)}" for m in GFM_EMAIL.finditer(text)]
    found += [f"shortcode {m.group(0)}" for m in EMOJI.finditer(text)]
    return found


def seen(markdown: str) -> str:
    """What a reader sees: escapes resolved, the invisible joiners dropped."""
    return re.sub(r"\\(.)", r"\1", markdown).replace(WORD_JOINER, "")


@pytest.mark.parametrize("value", CORPUS)
def test_every_payload_is_inert_and_still_readable(value):
    escaped = plain(value)
    assert live_constructs(escaped) == [], escaped
    expected = re.sub(r"[\x00-\x1f\u202a-\u202e\u2066-\u2069]+", " ", value)
    if len(expected) <= 1000:
        assert seen(escaped) == expected


def test_the_checker_sees_what_plain_prevents():
    """The oracle is not blind: raw payloads and backslash escaping alone (round two's fix) are caught."""
    for value in CORPUS[:9]:
        assert live_constructs(value), value
    old_style = re.sub(r"([\\`*_{}\[\]()#+\-.!|<>~$:@&^])", r"\\\1", "see https://evil.example and www.evil.example")
    assert [c for c in live_constructs(old_style) if c.startswith("autolink")]


def test_table_cells_and_index_labels_are_escaped_numbers_kept():
    import pandas as pd

    frame = pd.DataFrame({"Model": ["[x](https://evil.example)", "ok"], "GB": [1.5, 2.0]}).set_index("Model")
    cells = plain_cells(frame)
    assert all(live_constructs(label) == [] for label in cells.index)
    assert cells["GB"].tolist() == [1.5, 2.0] and list(cells.columns) == ["GB"]


def test_every_query_key_the_pages_read_is_found_for_the_link_walk():
    """The browser walk sends hostile values for query_keys(); the finder must see at least today's keys."""
    today = {"src", "model", "params", "prec", "ctx", "batch", "kv", "rt", "mode", "rank", "gpu", "cards", "cfg",
             "imatrix", "hf", "rev", "file", "context", "precision", "models", "hardware", "runtime", "kv_precision",
             "demo", "run", "p", "ref", "bs", "al", "f8", "clip", "algo", "sym", "emb", "pc", "runs", "out"}
    assert today <= set(query_keys())


def _markdown_bodies(at) -> list[str]:
    """Every text the page hands to Streamlit's Markdown renderer, st.table cells and index labels included."""
    bodies = [e.value for kind in ("title", "subheader", "markdown", "caption", "info", "warning", "error", "success")
              for e in getattr(at, kind)]
    for table in at.table:
        frame = table.value
        bodies += [str(v) for v in frame.index] + [v for v in frame.to_numpy().ravel() if isinstance(v, str)]
    return bodies


def foreign_links(markdown: str) -> list[str]:
    """Links or images to evil.example that Streamlit's renderer would draw from this Markdown body."""
    live = re.sub(r"\\.", "", markdown)
    found = re.findall(r"!?\[[^\]]*\]\([^)]*evil[^)]*\)|<https?:[^>]*>", live)
    text = re.sub(r"\\(.)", r"\1", markdown)
    found += [m.group(0) for m in GFM_URL.finditer(text) if "evil" in m.group(0)]
    found += [m.group(0) for m in GFM_EMAIL.finditer(text) if "evil" in m.group(0)]
    return found


@pytest.mark.parametrize("page", ["calculator", "compare"])
def test_hostile_values_for_every_query_key_leave_no_live_link_in_the_page(page):
    """The AppTest twin of tests/e2e/test_no_foreign_links.py (which needs Chromium): every key, every payload."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    script = str(Path(__file__).resolve().parents[2] / "pages" / f"{page}.py")
    for shift in range(len(PAYLOADS)):
        at = AppTest.from_file(script, default_timeout=60)
        for key, value in hostile_query(query_keys(), shift):
            at.query_params[key] = value
        at.run()
        assert not at.exception
        bodies = _markdown_bodies(at)
        assert any("evil" in b for b in bodies), "the hostile values were not echoed at all"
        assert [(b, foreign_links(b)) for b in bodies if foreign_links(b)] == []


def test_the_page_walk_oracle_finds_live_links():
    assert foreign_links("see [x](https://evil.example) or https://evil.example/y")
    assert foreign_links(re.sub(r"([\\`*_{}\[\]()#+\-.!|<>~$:@&^])", r"\\\1", "www.evil.example"))
