"""What every technique returns, and the one signature every technique has."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.compare.common.settings import CompareOptions
    from core.compare.inputs.feeds import Feeds


@dataclass(frozen=True)
class QuantizedModel:
    """One written variant. `notes` say in plain words what was kept in float and why."""

    precision: str
    path: Path
    size_bytes: int
    seconds: float
    settings: dict[str, Any]
    notes: tuple[str, ...] = field(default=())


# (FP32 source, the inputs to measure on, the latency feed, the options) -> an object whose `measure(name, model)`
# judges one built candidate against FP32 (core.compare.judge.candidates.CandidateProbe). A technique that picks
# among candidates by measuring them gets one from its caller: judging is a later stage than building.
ProbeFactory = Callable[[Path, list, dict, "CompareOptions"], Any]

# (FP32 source, destination file, the comparison's options, the user's inputs as feeds, a probe or None) -> the
# written variant. A technique reads its own settings from the options and whichever feeds it calibrates on.
Technique = Callable[[Path, Path, "CompareOptions", "Feeds", "ProbeFactory | None"], QuantizedModel]
