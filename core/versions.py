"""Minimum versions of the libraries that open untrusted models, checked at start-up (threat 25, docs/threats.md).

Pins in requirements.txt can drift (a hand-made venv, an older base image); a library below the release
that fixed a known model-loading vulnerability must not serve uploads. Versions come from package metadata
(importlib.metadata): nothing heavy is imported, so app.py can call this on every start.

`check_dependency_floors()` lists every problem as one sentence; `require_dependency_floors()` raises for the
blocking ones (the app should refuse to run the compare feature) and returns the warnings to log.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata

from core.errors import QuantLensError


@dataclass(frozen=True)
class Floor:
    name: str  # distribution name, or "python"
    minimum: str
    reason: str
    blocking: bool = True  # False: warn only (the risk is mitigated elsewhere in QuantLens)


FLOORS: tuple[Floor, ...] = (
    Floor("onnx", "1.21.0", "external-data path traversal and ExternalDataInfo attribute injection "
                            "(CVE-2024-27318, CVE-2026-34445) are fixed from this release"),
    Floor("onnxruntime", "1.26.0", "first release after the MatMulNBits pre-pack and SVM out-of-bounds fixes "
                                   "(onnxruntime#27412, #27950)"),
    Floor("torch", "2.10.0", "torch.load weights_only bypasses are fixed from this release (QuantLens never calls "
                             "torch.load, but libraries it uses might)"),
    Floor("transformers", "4.48.0", "older releases deserialize pickled checkpoints and have tokenizer ReDoS bugs"),
    Floor("streamlit", "1.54.0", "older releases have known server-side issues fixed by this release"),
    Floor("python", "3.11.13", "tarfile extraction-filter bypasses (CVE-2025-4517 and related) are fixed from "
                               "3.11.13 / 3.12.11; QuantLens refuses tar uploads and never opens them, so this is a "
                               "warning", blocking=False),
)
_PYTHON_312_FLOOR = "3.12.11"


def parse_version(text: str) -> tuple[tuple[int, ...], bool]:
    """(release numbers, is_final). '2.13.0+cpu' -> ((2, 13, 0), True); '1.26.0rc1' -> ((1, 26, 0), False)."""
    match = re.match(r"^\s*v?(\d+(?:\.\d+)*)(.*)$", text)
    if not match:
        return (), False
    numbers = tuple(int(part) for part in match.group(1).split("."))
    while len(numbers) > 1 and numbers[-1] == 0:
        numbers = numbers[:-1]
    rest = match.group(2).lower()
    final = not re.match(r"^[-_.]?(a|alpha|b|beta|c|rc|pre|preview|dev)\d*", rest)
    return numbers, final


def is_below(installed: str, minimum: str) -> bool:
    have, have_final = parse_version(installed)
    need, _ = parse_version(minimum)
    if not have:
        return True  # unparseable: treat as unknown and therefore unsafe
    return have < need or (have == need and not have_final)


def installed_version(name: str) -> str | None:
    if name == "python":
        return ".".join(str(part) for part in sys.version_info[:3])
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _minimum_for(floor: Floor, version: str) -> str:
    if floor.name == "python" and version.startswith("3.12."):
        return _PYTHON_312_FLOOR
    return floor.minimum


def check_dependency_floors(floors: Iterable[Floor] = FLOORS,
                            version_of: Callable[[str], str | None] = installed_version) -> list[str]:
    """One sentence per library below its floor (not-installed libraries are not a problem here)."""
    return [problem for _, problem in _problems(floors, version_of)]


def _problems(floors: Iterable[Floor], version_of: Callable[[str], str | None]) -> list[tuple[Floor, str]]:
    found = []
    for floor in floors:
        version = version_of(floor.name)
        if version is None:
            continue
        minimum = _minimum_for(floor, version)
        if is_below(version, minimum):
            level = "must be upgraded" if floor.blocking else "should be upgraded"
            found.append((floor, f"{floor.name} {version} {level} to {minimum} or newer: {floor.reason}."))
    return found


def require_dependency_floors(floors: Iterable[Floor] = FLOORS,
                              version_of: Callable[[str], str | None] = installed_version) -> list[str]:
    """Raise `dependency_too_old` if a blocking floor is not met; return the warning-level problems."""
    problems = _problems(floors, version_of)
    blocking = [text for floor, text in problems if floor.blocking]
    if blocking:
        raise QuantLensError("dependency_too_old", " ".join(blocking))
    return [text for _, text in problems]
