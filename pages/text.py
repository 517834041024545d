"""Showing strings that came from a link or an upload: always as plain text, never as Markdown.

Streamlit renders st.warning/st.info/st.caption/st.markdown bodies as Markdown (plus its own `:red[...]`,
`:material/...:` and `$...$` extensions), and autolinks bare URLs. A link value that closes a backtick span can
then fetch an image from any host, draw a fake "sign in" link or colour text (threat 29, docs/threats.md). So
every echoed value goes through `plain()`: each Markdown-significant character is backslash-escaped (CommonMark
makes any escaped punctuation literal, which also breaks `www.`/`http://` autolinks and `:directives:`), and
line breaks and other control characters become spaces, so a value cannot start a new block either.
"""

from __future__ import annotations

import re

# Every character with a meaning in CommonMark, GFM or Streamlit's extensions; quotes, commas and the like are
# left alone so messages stay readable.
_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:@&^])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
MAX_ECHO_CHARS = 1000


def plain(text: object, limit: int = MAX_ECHO_CHARS) -> str:
    """A user- or model-supplied string made safe to embed in Markdown, shortened to `limit` characters."""
    value = _CONTROL.sub(" ", str(text))
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    return _PUNCTUATION.sub(r"\\\1", value)


def link_int(raw: str, lo: int, hi: int) -> int | None:
    """A whole number from a link, or None: only ASCII digits, at most 12 of them, within [lo, hi].

    `str.isdigit()` accepts '²' and other digits `int()` refuses, and `int()` of a 5,000-digit string raises
    (Python's int-string limit): both crashed the calculator page.
    """
    if not (0 < len(raw) <= 12 and raw.isascii() and raw.isdecimal()):
        return None
    value = int(raw)
    return value if lo <= value <= hi else None
