"""Showing strings that came from a link or an upload: always as plain text, never as Markdown.

Streamlit renders st.warning/st.info/st.caption/st.markdown bodies as Markdown (plus its own `:red[...]`,
`:material/...:` and `$...$` extensions), and autolinks bare URLs. A link value that closes a backtick span can
then fetch an image from any host, draw a fake "sign in" link or colour text (threat 29, docs/threats.md). So
every echoed value goes through `plain()`: each Markdown-significant character is backslash-escaped (CommonMark
makes any escaped punctuation literal, which also breaks `:directives:` and `$math$`), and line breaks and
other control characters become spaces, so a value cannot start a new block either.

Escaping alone does not stop autolinks: Streamlit 1.67's remark-gfm finds bare `http(s)://`, `www.` and e-mail
addresses in the *parsed* text, after escapes are gone (mdast-util-gfm-autolink-literal's find-and-replace, and
remark-emoji for `:shortcodes:` the same way). So `plain()` also puts an invisible WORD JOINER (U+2060) where those
patterns need two characters side by side: after a `:` or `@` followed by more than a space, and between `www`
and `.`. The reader sees the same text; no renderer sees a URL, an address or a shortcode. st.table renders every
cell as Markdown too (`plain_cells`); st.dataframe, st.text and st.code show text as is and need nothing.
"""

from __future__ import annotations

import re

# Every character with a meaning in CommonMark, GFM or Streamlit's extensions; quotes, commas and the like are
# left alone so messages stay readable.
_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:@&^])")
# Control characters, line/paragraph separators and bidi overrides (which could make a value read backwards).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069]+")
WORD_JOINER = "\u2060"
# Where an autolink or a shortcode would need two characters to touch: after a `:` (http://, mailto:, :smile:) or
# an `@` (e-mail) that is followed by more than a space, and between www and its dot. A colon before a space (the
# "RTX 4090: no" of a verdict) stays as it is, so text people search for keeps its plain characters.
_JOIN_POINTS = re.compile(r"(?<=[:@])(?=\S)|(?<=[wW]{3})(?=\.)")
MAX_ECHO_CHARS = 1000


def plain(text: object, limit: int = MAX_ECHO_CHARS) -> str:
    """A user- or model-supplied string made safe to embed in Markdown, shortened to `limit` characters."""
    value = _CONTROL.sub(" ", str(text))
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    return _PUNCTUATION.sub(r"\\\1", _JOIN_POINTS.sub(WORD_JOINER, value))


def plain_cells(frame):
    """A copy of a pandas DataFrame for st.table (which renders each cell and index label as Markdown): every
    string cell and index label through `plain()`; numbers stay numbers, so formatting still applies. Column
    headers are the page's own words and stay as they are (styles and formats are keyed by them)."""
    import pandas as pd

    def cell(value):
        return plain(value) if isinstance(value, str) else value

    out = frame.map(cell)
    out.index = pd.Index([cell(v) for v in frame.index], name=cell(frame.index.name))
    return out


def link_int(raw: str, lo: int, hi: int) -> int | None:
    """A whole number from a link, or None: only ASCII digits, at most 12 of them, within [lo, hi].

    `str.isdigit()` accepts '²' and other digits `int()` refuses, and `int()` of a 5,000-digit string raises
    (Python's int-string limit): both crashed the calculator page.
    """
    if not (0 < len(raw) <= 12 and raw.isascii() and raw.isdecimal()):
        return None
    value = int(raw)
    return value if lo <= value <= hi else None
