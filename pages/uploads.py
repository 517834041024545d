"""What the server holds for uploads across all sessions, and letting go of it (the compare page's plumbing).

Why here and not in core: these read Streamlit's own state (its in-memory upload store, its list of connected
sessions), which core never imports. The rules they serve live in core/jobs/budget.py.

- `held_upload_bytes`: bytes of uploads Streamlit holds in memory right now, all sessions together (the memory
  budget compares this with QUANTLENS_MAX_UPLOAD_MEMORY_MB before the page takes one more).
- `release_unclaimed_uploads`: a session that replays its upload request leaves copies no widget refers to;
  they are removed once they are older than a grace period (an upload still on its way to its widget is kept).
- `SessionRegistry`: the folders of sessions whose browser went away are removed after a grace period, not
  when Streamlit finally evicts the session (it keeps disconnected ones for minutes, so closed tabs held GBs).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterable

CLAIM_GRACE_S = 60.0  # an upload no widget refers to for this long is a replay, not one on its way
DISCONNECTED_GRACE_S = 30.0  # a tab gone this long loses its folders (a reload is a new session anyway)


def _upload_manager():
    from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    manager = getattr(ctx, "uploaded_file_mgr", None)
    return (ctx, manager) if isinstance(manager, MemoryUploadedFileManager) else (ctx, None)


def held_upload_bytes() -> int:
    """Bytes of uploaded files Streamlit holds in memory now, across every session (0 where not in memory)."""
    _, manager = _upload_manager()
    if manager is None:
        return 0
    with manager._lock:  # the manager's own lock: sessions upload from other threads
        return sum(len(rec.data) for files in manager.file_storage.values() for rec in files.values())


_first_seen: dict[tuple[str, str], float] = {}
_first_seen_lock = threading.Lock()


def release_unclaimed_uploads(claimed: Iterable[str], grace_s: float = CLAIM_GRACE_S) -> int:
    """Remove this session's uploads that no widget has claimed for `grace_s`; returns how many went."""
    ctx, manager = _upload_manager()
    if manager is None or ctx is None:
        return 0
    claimed, now = set(claimed), time.monotonic()
    with manager._lock:
        ids = list(manager.file_storage.get(ctx.session_id, {}))
    removed = 0
    with _first_seen_lock:
        for stale in [k for k in _first_seen if k[0] == ctx.session_id and k[1] not in ids]:
            del _first_seen[stale]
        for file_id in ids:
            key = (ctx.session_id, file_id)
            if file_id in claimed:
                _first_seen.pop(key, None)
                continue
            if now - _first_seen.setdefault(key, now) >= grace_s:
                manager.remove_file(session_id=ctx.session_id, file_id=file_id)
                del _first_seen[key]
                removed += 1
    return removed


def _session_connected(session_id: str) -> bool | None:
    """Whether a browser is connected to the session; None where there is no server runtime (AppTest)."""
    from streamlit.runtime import Runtime

    if not Runtime.exists():
        return None
    return Runtime.instance().is_active_session(session_id)


class SessionRegistry:
    """Process-wide: which session holds which SessionFiles, so a closed tab's folders go within a minute."""

    def __init__(self, grace_s: float = DISCONNECTED_GRACE_S) -> None:
        self.grace_s = grace_s
        self._lock = threading.Lock()
        self._files: dict[str, weakref.ref] = {}
        self._gone_since: dict[str, float] = {}
        self._last_sweep = float("-inf")

    def register(self, session_id: str, files) -> None:
        with self._lock:
            self._files[session_id] = weakref.ref(files)

    def sweep_now_and_then(self, interval_s: float = 5.0) -> int:
        """sweep(), at most once per `interval_s` (every page run of every session calls this)."""
        with self._lock:
            now = time.monotonic()
            if now - self._last_sweep < interval_s:
                return 0
            self._last_sweep = now
        return self.sweep()

    def sweep(self) -> int:
        """Close the SessionFiles of sessions disconnected longer than the grace period; returns how many."""
        now, closed = time.monotonic(), []
        with self._lock:
            for session_id, ref in list(self._files.items()):
                files = ref()
                connected = _session_connected(session_id)
                if files is None:
                    self._files.pop(session_id, None)
                    self._gone_since.pop(session_id, None)
                elif connected is False:
                    since = self._gone_since.setdefault(session_id, now)
                    if now - since >= self.grace_s:
                        closed.append(files)
                        self._files.pop(session_id, None)
                        self._gone_since.pop(session_id, None)
                else:
                    self._gone_since.pop(session_id, None)
        for files in closed:
            files.close()
        return len(closed)
