"""What every technique returns, and the one signature every technique has."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.compare.feeds import Feeds
    from core.compare.settings import CompareOptions


@dataclass(frozen=True)
class QuantizedModel:
    """One written variant. `notes` say in plain words what was kept in float and why."""

    precision: str
    path: Path
    size_bytes: int
    seconds: float
    settings: dict[str, Any]
    notes: tuple[str, ...] = field(default=())


# (FP32 source, destination file, the comparison's options, the user's inputs as feeds) -> the written variant.
# A technique reads its own settings from the options and whichever feeds it calibrates on.
Technique = Callable[[Path, Path, "CompareOptions", "Feeds"], QuantizedModel]
