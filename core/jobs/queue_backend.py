"""Which job queue a web process uses: the embedded one (default) or a shared Redis queue (QUANTLENS_QUEUE).

Why one small interface: the page must not care whether its job runs in this process's queue or on a worker
host; both backends offer the same four calls, so `make app` with nothing set behaves exactly as before and a
fleet is one environment variable away. Redis and RQ are imported only when QUANTLENS_QUEUE is set.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from core.errors import QuantLensError
from core.jobs.runner import JobLimits, Progress, QueueState
from core.jobs.server_settings import ServerSettings

QUEUE_ENV = "QUANTLENS_QUEUE"
_SCHEMES = ("redis://", "rediss://", "unix://")


class Slot(Protocol):
    cancelled: bool

    def run(self, target: str, payload: dict, *, job_dir: Path, limits: JobLimits = ...,
            on_progress: Progress | None = None) -> dict: ...


class JobBackend(Protocol):
    """What the compare page needs of a queue; core.jobs.runner.JobQueue and RedisJobQueue both offer it."""

    def slot(self, session_id: str, *, on_wait: Callable[[int], None] | None = None) -> AbstractContextManager: ...

    def run(self, session_id: str, target: str, payload: dict, *, job_dir: Path, limits: JobLimits = ...,
            on_progress: Progress | None = None, on_wait: Callable[[int], None] | None = None) -> dict: ...

    def cancel(self, session_id: str) -> bool: ...

    def state(self) -> QueueState: ...


def check_queue_url(url: str) -> str:
    url = (url or "").strip()
    if not url.startswith(_SCHEMES):
        raise QuantLensError("invalid_setting", f"{QUEUE_ENV}={url!r} must be a Redis URL such as "
                                                "redis://host:6379/0.")
    return url


def default_store_url() -> str:
    """Without QUANTLENS_STORE: a private folder on this host (right for workers on the same host only)."""
    return os.path.join(tempfile.gettempdir(), f"quantlens-store-{os.getuid()}")


def job_backend(environ: Mapping[str, str], settings: ServerSettings) -> JobBackend:
    """The embedded JobQueue, or a RedisJobQueue when QUANTLENS_QUEUE is set (its store from QUANTLENS_STORE)."""
    from core.jobs.runner import JobQueue

    raw = environ.get(QUEUE_ENV, "").strip()
    if not raw:
        return JobQueue(max_running=settings.max_running, max_queued=settings.max_queued)
    url = check_queue_url(raw)
    from core.jobs.redis_queue import RedisJobQueue
    from core.jobs.result_store import STORE_ENV, store_from_url

    store = store_from_url(environ.get(STORE_ENV, "").strip() or default_store_url())
    return RedisJobQueue(url, store, max_queued=settings.max_queued)
