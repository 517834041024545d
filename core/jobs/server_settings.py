"""Operator settings of a hosted QuantLens, read from the environment (documented in DEPLOY.md).

A host with 2 GB of memory and one with 64 GB need different job limits; those are deployment facts, so they come
from environment variables rather than code. Bad values are refused with a clear message at start-up instead of
silently falling back, so an operator never runs with limits they did not mean.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.errors import QuantLensError
from core.units import GIB, MIB


@dataclass(frozen=True)
class ServerSettings:
    job_timeout_s: float = 300.0
    job_memory_bytes: int = 6 * GIB
    max_running: int = 1
    max_queued: int = 4
    max_model_upload_bytes: int = 200 * MIB
    max_unpacked_bytes: int = 1 * GIB
    # Global budgets across all sessions (core/jobs/budget.py): the job root's disk (uploads unpacked, job
    # folders, media inputs; DEPLOY's tmpfs is 4 GB) and upload bytes held in memory before they are spooled.
    max_disk_bytes: int = 3 * GIB
    max_upload_memory_bytes: int = 600 * MIB
    # Per session: the compare page's image/audio inputs, spooled to disk (32 is all the worker ever uses).
    max_media_files: int = 32
    max_media_bytes: int = 128 * MIB


_VARIABLES = {
    # variable: (field, converter to the field's unit, lowest, highest)
    "QUANTLENS_JOB_TIMEOUT_S": ("job_timeout_s", float, 5, 3600),
    "QUANTLENS_JOB_MEMORY_GB": ("job_memory_bytes", lambda v: int(float(v) * GIB), GIB // 4, 512 * GIB),
    "QUANTLENS_MAX_RUNNING": ("max_running", int, 1, 64),
    "QUANTLENS_MAX_QUEUED": ("max_queued", int, 0, 1000),
    "QUANTLENS_MAX_UPLOAD_MB": ("max_model_upload_bytes", lambda v: int(float(v) * MIB), MIB, 4096 * MIB),
    "QUANTLENS_MAX_UNPACKED_GB": ("max_unpacked_bytes", lambda v: int(float(v) * GIB), 16 * MIB, 64 * GIB),
    "QUANTLENS_MAX_DISK_GB": ("max_disk_bytes", lambda v: int(float(v) * GIB), 64 * MIB, 4096 * GIB),
    "QUANTLENS_MAX_UPLOAD_MEMORY_MB": ("max_upload_memory_bytes", lambda v: int(float(v) * MIB), 16 * MIB, 64 * 1024 * MIB),
    "QUANTLENS_MAX_MEDIA_FILES": ("max_media_files", int, 1, 32),
    "QUANTLENS_MAX_MEDIA_MB": ("max_media_bytes", lambda v: int(float(v) * MIB), MIB, 4096 * MIB),
}


def server_settings(environ: Mapping[str, str]) -> ServerSettings:
    """Settings from `environ` (pass os.environ); unset variables keep the defaults above."""
    values: dict[str, float | int] = {}
    for variable, (field, convert, low, high) in _VARIABLES.items():
        raw = environ.get(variable, "").strip()
        if not raw:
            continue
        try:
            value = convert(raw)
        except (ValueError, OverflowError):
            raise QuantLensError("invalid_setting", f"{variable}={raw!r} is not a number.") from None
        if not (low <= value <= high):  # NaN fails this too
            raise QuantLensError("invalid_setting", f"{variable}={raw!r} is out of the range this setting allows.")
        values[field] = value
    return ServerSettings(**values)
