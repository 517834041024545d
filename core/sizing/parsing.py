"""What users type for a context length or a parameter count, turned into exact integers.

Why one module: the command line, the calculator page and links all accept the same words, and a user who
types `128k` in one place must get the same number everywhere (the page used to turn `128k` into 128).

Context suffixes are binary: `128k` = 131,072 tokens, `32K` = 32,768, `1m` = 1,048,576. That is what
llama.cpp and vLLM users mean: the published context windows are powers of two (Llama 3.1's
max_position_embeddings is 131072 and is sold as "128K"). Parameter counts are decimal (`7B` = 7 x 10^9),
as model names use them. Plain numbers and scientific notation (`1e5`, `131072`) are taken as given.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Any

from core.errors import QuantLensError

MAX_PARAMETERS = 10**14  # 100 trillion: far above any published model, far below int overflow worries
MAX_CONTEXT = 100_000_000

CONTEXT_SUFFIXES = {"": 1, "k": 1024, "m": 1024 * 1024}
_PARAM_SUFFIXES = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9, "t": 10**12}


def _clean(text: str) -> str:
    return text.strip().lower().replace(",", "").replace("_", "").replace(" ", "")


def _suffixed(text: str, suffixes: dict[str, int], code: str, not_a_number: str, not_finite: str) -> Decimal:
    """'128k' with {'k': 1024} -> Decimal(131072): the one way both parsers read a number and its suffix."""
    suffix = text[-1] if text[-1] in suffixes else ""
    digits = text[:-1] if suffix else text
    try:
        number = Decimal(digits) * suffixes[suffix]
    except (InvalidOperation, ValueError):
        raise QuantLensError(code, not_a_number) from None
    if not number.is_finite():
        raise QuantLensError(code, not_finite)
    return number


def parse_context(value: str | int) -> int:
    """`128k`, `32K`, `128 k`, `1e5`, `131072` or 131072 -> tokens (k = 1024, as llama.cpp/vLLM users mean).

    0 means "weights only". Anything negative, fractional, non-numeric or above 100M tokens is a
    QuantLensError with code `invalid_context`, naming what was typed.
    """
    if isinstance(value, bool):
        raise QuantLensError("invalid_context", f"Context must be a number of tokens like 8192 or 128k, not {value!r}.")
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, str):
        text = _clean(value)
        for word in ("tokens", "token", "tok"):
            if text.endswith(word):
                text = text[: -len(word)]
                break
        if not text or len(text) > 30 or not text.isascii():  # Decimal() also reads '٣' and other digits as numbers
            raise QuantLensError("invalid_context", f"Context {value!r} is not a number of tokens like 8192, 32k or 1e5.")
        number = _suffixed(text, CONTEXT_SUFFIXES, "invalid_context",
                           f"Context {value!r} is not a number of tokens like 8192, 32k or 1e5.",
                           f"Context {value!r} is not a finite number of tokens.")
    else:
        raise QuantLensError("invalid_context", f"Context must be a number of tokens like 8192 or 128k, not {type(value).__name__}.")
    if number < 0:
        raise QuantLensError("invalid_context", f"Context cannot be negative, got {value!r}.")
    if number != number.to_integral_value():
        raise QuantLensError("invalid_context", f"Context must be a whole number of tokens, got {value!r}.")
    if number > MAX_CONTEXT:
        raise QuantLensError("invalid_context", f"Context {value!r} is above the limit of {MAX_CONTEXT:,} tokens.")
    return int(number)


def format_context(tokens: int) -> str:
    """131072 -> '128k' (exact binary multiples only), so a parsed value reads back the way it was typed."""
    if tokens and tokens % (1024 * 1024) == 0:
        return f"{tokens // (1024 * 1024)}m"
    if tokens and tokens % 1024 == 0:
        return f"{tokens // 1024}k"
    return str(tokens)


def parse_param_count(value: Any) -> int:
    """"7B", "1.5e9", "350M", "70b", "1,000,000", 7e9 -> an exact integer number of parameters.

    Decimal arithmetic keeps "1.5e9" exact (no float rounding). Anything else is a QuantLensError.
    """
    if isinstance(value, bool):
        raise QuantLensError("invalid_param_count", f"Parameter count must be a number like 7B or 350M, not {value!r}.")
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise QuantLensError("invalid_param_count", "Parameter count must be a finite number like 7B or 350M.")
        number = Decimal(repr(value))
    elif isinstance(value, str):
        text = _clean(value)
        if text.endswith("params"):
            text = text[: -len("params")]
        elif text.endswith("parameters"):
            text = text[: -len("parameters")]
        if len(text) > 40 or not text:
            raise QuantLensError("invalid_param_count", f"Parameter count {value!r} is not a number like 7B, 1.5e9 or 350M.")
        number = _suffixed(text, _PARAM_SUFFIXES, "invalid_param_count",
                           f"Parameter count {value!r} is not a number like 7B, 1.5e9 or 350M.",
                           f"Parameter count {value!r} is not finite.")
    else:
        raise QuantLensError("invalid_param_count", f"Parameter count must be a number like 7B or 350M, not {type(value).__name__}.")
    if number < 1:
        raise QuantLensError("invalid_param_count", f"Parameter count must be at least 1, got {value!r}.")
    if number > MAX_PARAMETERS:
        raise QuantLensError("invalid_param_count", f"Parameter count {value!r} is above the 100T limit.")
    return int(number.to_integral_value())
