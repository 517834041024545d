"""Byte units, defined once: every figure a user sees says whether its GB is 10^9 or 2^30.

Decimal units (GB, MB) are what vendors print on a card and model cards print next to files; binary units
(GiB, MiB) are what operating systems and memory limits count in. Mixing them silently is a 7% error at GB scale.
"""

from __future__ import annotations

KB = 10**3
MB = 10**6
GB = 10**9
KIB = 2**10
MIB = 2**20
GIB = 2**30


def format_gb(n_bytes: int | float, digits: int = 2) -> str:
    """Decimal gigabytes, the unit GPU vendors and model cards use."""
    return f"{n_bytes / GB:.{digits}f} GB"


def format_gib(n_bytes: int | float, digits: int = 2) -> str:
    """Binary gibibytes, the unit memory limits and operating systems use."""
    return f"{n_bytes / GIB:.{digits}f} GiB"
