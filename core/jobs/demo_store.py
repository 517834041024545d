"""Demo results shared by every session: the demo is a public model on the same inputs for everyone.

Why in core: the page and the CLI (and tests) share one rule for it, and none of it needs Streamlit. Each
distinct setting has its own lock, so a visitor asking for other settings is never held behind someone
else's demo run (they wait in the job queue instead, which reports their place in line); a visitor asking for
the same settings waits for that run and reuses it. Files live in a folder of the private job root; at
most `max_entries` settings are kept, oldest removed first.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

_KEY = re.compile(r"[0-9a-f]{64}")


class DemoStore:
    def __init__(self, root: Path, max_entries: int = 6) -> None:
        self.root, self.max_entries = Path(root), max_entries
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._results: dict[str, dict] = {}

    def get(self, key: str) -> dict | None:
        """{report, dir} for these settings if every file it lists is still on disk."""
        with self._lock:
            entry = self._results.get(key)
        if entry and all((Path(entry["dir"]) / r["file_name"]).exists() for r in entry["report"]["results"]):
            return entry
        return None

    @contextlib.contextmanager
    def lock_for(self, key: str, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Hold the lock of one setting; `on_wait()` is called once if someone else holds it."""
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        if not lock.acquire(blocking=False):
            if on_wait is not None:
                on_wait()
            lock.acquire()
        try:
            yield
        finally:
            lock.release()

    def put(self, key: str, report: dict, out_dir: Path) -> dict:
        """Copy a finished demo run's files into the store and remember it; returns its {report, dir}."""
        if not _KEY.fullmatch(key):
            raise ValueError("a demo key is a sha256 hex digest")
        target = self.root / key
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True, mode=0o700)
        for item in Path(out_dir).iterdir():
            if item.is_file() and not item.is_symlink():
                shutil.copyfile(item, target / item.name)
        entry = {"report": report, "dir": str(target)}
        with self._lock:
            self._results.pop(key, None)
            self._results[key] = entry
            evicted = []
            while len(self._results) > self.max_entries:  # oldest first (dicts keep insertion order)
                old_key = next(iter(self._results))
                evicted.append(self._results.pop(old_key)["dir"])
                self._locks.pop(old_key, None)
        for folder in evicted:
            shutil.rmtree(folder, ignore_errors=True)
        return entry
