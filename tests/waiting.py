"""Waiting for conditions, never for a moment: what every test that watches another process or thread uses.

Why: on a busy 2-core CI machine a child may take seconds to start and a file may exist before its content
does. A test that sleeps a fixed time or reads a file the moment it appears flakes (CI once read `int('')`
from a pgid file). Deadlines here are generous ceilings for a hung process, not performance claims.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
CEILING_S = 120.0  # a stuck process fails the test after this; a slow machine never should


def wait_for(condition: Callable[[], bool], timeout_s: float = CEILING_S, what: str = "the condition") -> None:
    """Poll `condition` until it holds; fail the test naming `what` if it never does within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} was not reached within {timeout_s:g} s"
        time.sleep(0.02)


def read_when_complete(path: Path, parse: Callable[[str], T] = str, timeout_s: float = CEILING_S) -> T:
    """The parsed content of a file another process writes, once it parses (writers use core.jobs.atomic_files,
    so a present file is complete; parsing guards against a writer that does not)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return parse(Path(path).read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            assert time.monotonic() < deadline, f"{path.name} was not written within {timeout_s:g} s"
            time.sleep(0.02)
