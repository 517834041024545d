"""One disk budget for everything all sessions keep on the server: unpacked uploads, job folders, media inputs.

Why: each limit so far was per upload or per job. A 9.7 MB zip may unpack to 954 MB in one session, so five
sessions fill a 4 GB tmpfs (DEPLOY.md) and then every session fails in its own odd way. The server needs one
total across sessions, checked before any work that writes, and one clear answer when it is reached:
"The server is busy; try again in a minute. [server_busy]" (folders of ended sessions are removed, so space
comes back).

How: what is on disk is measured (a walk of the private job root: tens of folders, milliseconds), and what is
being written right now is reserved in memory until its writer is done, at its worst case. So two uploads
arriving together cannot both take the last gigabyte: the second sees the first's reservation.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.errors import QuantLensError

BUSY_MESSAGE = "The server is busy; try again in a minute."


def server_busy(detail: str = "") -> QuantLensError:
    """The one refusal every global budget gives (detail, if any, goes after the sentence the user acts on)."""
    return QuantLensError("server_busy", BUSY_MESSAGE + (f" ({detail})" if detail else ""))


def disk_usage_bytes(root: Path) -> int:
    """Bytes the files under `root` occupy on disk (allocated blocks: a sparse file counts what it uses).

    Never follows links; entries removed while walking are skipped.
    """
    total = 0
    stack = [Path(root)]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(info.st_mode):
                stack.append(Path(entry.path))
            elif stat.S_ISREG(info.st_mode):
                total += getattr(info, "st_blocks", 0) * 512 or info.st_size
    return total


@dataclass(frozen=True)
class DiskUse:
    used_bytes: int  # measured under the root
    reserved_bytes: int  # promised to writers still at work
    limit_bytes: int

    @property
    def free_bytes(self) -> int:
        return max(0, self.limit_bytes - self.used_bytes - self.reserved_bytes)


class DiskBudget:
    """The bytes every session's folders may hold together under one root (the page keeps one per server)."""

    def __init__(self, root: Path, limit_bytes: int) -> None:
        if limit_bytes <= 0:
            raise ValueError("limit_bytes must be positive")
        self.root, self.limit_bytes = Path(root), int(limit_bytes)
        self._lock = threading.Lock()
        self._reserved: dict[int, int] = {}
        self._next = 0

    def use(self) -> DiskUse:
        used = disk_usage_bytes(self.root)
        with self._lock:
            reserved = sum(self._reserved.values())
        return DiskUse(used, reserved, self.limit_bytes)

    @contextlib.contextmanager
    def reserve(self, nbytes: int, what: str = "") -> Iterator[int]:
        """Hold `nbytes` (the writer's worst case) while the block runs, or refuse at once with `server_busy`.

        Yields the bytes still free beyond this reservation, so a writer may cap itself to them. Measuring and
        reserving happen under one lock, so concurrent writers never share the same free space.
        """
        nbytes = max(0, int(nbytes))
        with self._lock:
            used = disk_usage_bytes(self.root)
            reserved = sum(self._reserved.values())
            if used + reserved + nbytes > self.limit_bytes:
                raise server_busy(what)
            self._next += 1
            ticket = self._next
            self._reserved[ticket] = nbytes
            free_after = self.limit_bytes - used - reserved - nbytes
        try:
            yield free_after
        finally:
            with self._lock:
                self._reserved.pop(ticket, None)


class MemoryBudget:
    """Bytes of uploads the server holds in memory across sessions (Streamlit keeps each upload's bytes until
    the page releases them); the page asks before taking one more and refuses with `server_busy` beyond it."""

    def __init__(self, limit_bytes: int) -> None:
        if limit_bytes <= 0:
            raise ValueError("limit_bytes must be positive")
        self.limit_bytes = int(limit_bytes)

    def check(self, held_bytes: int, what: str = "") -> None:
        """Refuse when the uploads held right now (including the one being taken) pass the limit."""
        if held_bytes > self.limit_bytes:
            raise server_busy(what)
