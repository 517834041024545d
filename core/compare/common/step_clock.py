"""Wall time of each step of a comparison, so the report says where the time went (prepare, each quantizer,
each run, the interleaved timing, quality) instead of one total nobody can act on."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator


class StepClock:
    """Accumulates seconds per named step; `seconds()` gives {"<step>_seconds": s} for the report's timings."""

    def __init__(self) -> None:
        self._seconds: dict[str, float] = {}
        self._open: dict[str, float] = {}

    def start(self, name: str) -> None:
        self._open[name] = time.perf_counter()

    def stop(self, name: str) -> None:
        began = self._open.pop(name)
        self._seconds[name] = self._seconds.get(name, 0.0) + time.perf_counter() - began

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time the block; a step that raises still counts the time it took."""
        self.start(name)
        try:
            yield
        finally:
            self.stop(name)

    def seconds(self) -> dict[str, float]:
        return {f"{name}_seconds": round(value, 4) for name, value in self._seconds.items()}
