"""Jobs: the only way a model is ever opened — in a confined worker process with time and memory limits.

Modules: runner (job folders, `run_job`, the one-slot queue the page shares), worker (the child's entry point:
rlimits, network guard and Landlock before the target module is imported), sandbox (those confinement layers),
server_settings (operator limits read from the environment once), payload (CompareJob: the one typed job the
page and CLI hand the worker), session (SessionFiles: a session's folders, removed when it ends), demo_store
(demo results shared by all sessions, one lock per setting), budget (one disk and one upload-memory budget for
all sessions: `server_busy` past it), media_store (a session's images/audio on disk, capped, one copy per
content), atomic_files (files another process reads are written to a temporary name and renamed). With QUANTLENS_QUEUE set: queue_backend (which queue
the page gets), redis_queue (the web side of the shared RQ queue), redis_worker (the worker side: RQ forks, run_job
confines), result_store (uploads and results by content hash in a shared folder or S3); imported only then.
"""

from core.jobs.demo_store import DemoStore
from core.jobs.payload import CompareJob
from core.jobs.runner import (
    JobLimits,
    JobQueue,
    JobSlot,
    QueueState,
    default_job_root,
    job_directory,
    new_job_dir,
    remove_job_dir,
    run_job,
    sweep_at_start_up,
    sweep_orphaned_job_dirs,
    sweep_stale_job_dirs,
)
from core.jobs.server_settings import ServerSettings, server_settings
from core.jobs.session import SessionFiles

__all__ = [
    "CompareJob", "DemoStore", "SessionFiles",
    "JobLimits", "JobQueue", "JobSlot", "QueueState", "ServerSettings", "default_job_root", "job_directory",
    "new_job_dir", "remove_job_dir", "run_job", "server_settings", "sweep_at_start_up", "sweep_orphaned_job_dirs", "sweep_stale_job_dirs",
]
