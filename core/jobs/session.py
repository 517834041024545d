"""Files that belong to one browser session, removed when the session ends rather than an hour later.

Why: an upload is spooled and validated into a private folder, and each run writes its quantized files to a
job folder for download. Left to the age-based sweeper, one load test left 1.9 GB behind (threat 30,
docs/threats.md). A SessionFiles object lives in the session's state; when Streamlit drops a closed session
(after its disconnected-session timeout) the object is garbage-collected and a weakref finalizer removes
every folder it holds. The finalizer also runs at interpreter exit, so a server stopped cleanly leaves
nothing; a killed one is covered by the start-up sweep of orphaned job folders (core.jobs.runner).
"""

from __future__ import annotations

import threading
import weakref
from pathlib import Path

from core.jobs.runner import remove_job_dir


def _remove_all(folders: dict[str, str], lock: threading.Lock) -> None:
    with lock:
        paths = list(folders.values())
        folders.clear()
    for path in paths:
        remove_job_dir(Path(path))


class SessionFiles:
    """Named folders of one session (e.g. "upload", "job"): replacing a name removes the folder it held."""

    def __init__(self) -> None:
        self._folders: dict[str, str] = {}
        self._lock = threading.Lock()
        self._finalizer = weakref.finalize(self, _remove_all, self._folders, self._lock)

    def put(self, name: str, folder: Path) -> None:
        """Hold `folder` under `name`, removing whatever folder held that name before."""
        with self._lock:
            old = self._folders.get(name)
            self._folders[name] = str(folder)
        if old is not None and old != str(folder):
            remove_job_dir(Path(old))

    def get(self, name: str) -> Path | None:
        with self._lock:
            value = self._folders.get(name)
        return None if value is None else Path(value)

    def drop(self, name: str) -> None:
        with self._lock:
            old = self._folders.pop(name, None)
        if old is not None:
            remove_job_dir(Path(old))

    @property
    def closed(self) -> bool:
        """True once close() ran (its session went away): a returning session needs a new SessionFiles."""
        return not self._finalizer.alive

    def close(self) -> None:
        """Remove every folder now (also what happens when the session is garbage-collected)."""
        self._finalizer()
