"""The worker side of QUANTLENS_QUEUE=redis://...: an RQ worker whose jobs run in QuantLens's confined child.

Layers, outermost first: the RQ worker process takes a job from the shared queue and forks a work horse for it
(a fresh process per job, killed at the job's hard time limit or on a stop command); the horse unpacks the job's
input files from the shared store into a private job folder and calls core.jobs.run_job, which runs the target
in the same confined child as the embedded default (rlimits, Landlock, no network, scrubbed environment, and a
parent-death signal: if the horse is killed, the child dies with it); the report and the files in `out/` go to
the store under the job's content key. The engine schedules; our sandbox isolates.

Start one per core budget on any host that mounts the store:
    python -m core worker --queue redis://host:6379/0 --store /mnt/quantlens-store
or with RQ's own command line and this class:
    rq worker -w core.jobs.redis_worker.QuantLensWorker --serializer json --job-monitoring-interval 5 \
        --url redis://host:6379/0 quantlens-compare      (with QUANTLENS_STORE set)
"""

from __future__ import annotations

import contextlib
import logging
import os
import time

from rq import Worker

from core.errors import QuantLensError
from core.jobs.result_store import STORE_ENV, job_key, localize, store_from_url, store_ttl_s

log = logging.getLogger(__name__)

ALLOWED_TARGETS = ("core.compare.pipeline:run_comparison_job",)
EXTRA_TARGETS_ENV = "QUANTLENS_WORKER_TARGETS"  # comma-separated extra `module:function`s (tests, operators)
JOB_MONITORING_INTERVAL_S = 5  # the worker's heartbeat while a job runs
HEARTBEAT_GRACE_S = 20  # a job whose heartbeat is this late is treated as lost (retried once, then failed)
MAINTENANCE_INTERVAL_S = 30  # registry cleanup (lost jobs), store and job-folder expiry
PROGRESS_EVERY_S = 0.5


def _allowed(target: str) -> bool:
    extra = [t.strip() for t in os.environ.get(EXTRA_TARGETS_ENV, "").split(",") if t.strip()]
    return target in ALLOWED_TARGETS or target in extra


def _store():
    url = os.environ.get(STORE_ENV, "").strip()
    if not url:
        raise QuantLensError("store_unavailable", f"The worker has no shared store: set {STORE_ENV}.")
    return store_from_url(url)


def run_stored_job(spec: dict) -> dict:
    """RQ's job function, run in the work horse: unpack, run confined, store. Returns {ok, key} or {ok, code, message}.

    A QuantLensError (bad model, memory limit, timeout) is an answer for the user, not a worker failure: it is
    returned, so RQ does not retry it. Anything else raises and RQ records the failure.
    """
    from rq import get_current_job

    from core.jobs.runner import JobLimits, job_directory, run_job

    job = get_current_job()
    target, key = str(spec["target"]), str(spec["key"])
    if not _allowed(target):
        return {"ok": False, "code": "bad_payload", "message": "This worker does not run that kind of job."}
    if job_key(target, spec["payload"], spec["manifest"]) != key:
        return {"ok": False, "code": "bad_payload", "message": "The job's key does not match its content."}
    store = _store()
    if store.has_result(key):  # another worker finished the same job meanwhile
        return {"ok": True, "key": key, "cached": True}
    last = [0.0]

    def on_progress(stage: str, fraction: float | None) -> None:
        now = time.monotonic()
        if job is None or (now - last[0] < PROGRESS_EVERY_S and fraction != 1.0):
            return
        last[0] = now
        job.meta.update(stage=stage, fraction=fraction)
        with contextlib.suppress(Exception):  # progress is a courtesy; the job goes on without Redis
            job.save_meta()

    if job is not None:
        job.meta.update(stage="Preparing the job on a worker", fraction=None, horse_pid=os.getpid())
        job.save_meta()
    try:
        with job_directory() as job_dir:
            store.unpack(spec["manifest"], job_dir)
            limits = JobLimits(**{k: v for k, v in spec["limits"].items() if k in JobLimits.__dataclass_fields__})
            report = run_job(target, localize(spec["payload"], job_dir), job_dir=job_dir, limits=limits,
                             on_progress=on_progress)
            store.put_result(key, report, job_dir / "out")
    except QuantLensError as exc:
        return {"ok": False, "code": exc.code, "message": exc.message}
    return {"ok": True, "key": key}


class QuantLensWorker(Worker):
    """RQ's forking worker with a short heartbeat (a lost host is noticed in seconds, not minutes) and upkeep."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("job_monitoring_interval", JOB_MONITORING_INTERVAL_S)
        kwargs.setdefault("maintenance_interval", MAINTENANCE_INTERVAL_S)
        super().__init__(*args, **kwargs)

    def get_heartbeat_ttl(self, job) -> int:
        if job.timeout and job.timeout > 0:
            remaining = job.timeout - self.current_job_working_time
            return int(max(1, min(remaining, self.job_monitoring_interval))) + HEARTBEAT_GRACE_S
        return self.job_monitoring_interval + HEARTBEAT_GRACE_S

    def clean_registries(self) -> None:
        super().clean_registries()
        expire_local_and_stored()


def expire_local_and_stored() -> None:
    """Job folders of dead horses and old ones go; stored results and blobs unused for the TTL go."""
    from core.jobs.runner import sweep_orphaned_job_dirs, sweep_stale_job_dirs

    try:
        sweep_orphaned_job_dirs()
        sweep_stale_job_dirs(older_than_s=3600)
        if os.environ.get(STORE_ENV, "").strip():
            removed = _store().expire(store_ttl_s(os.environ))
            if removed:
                log.info("expired %d stored results and blobs", removed)
    except (OSError, QuantLensError) as exc:
        log.warning("expiry failed: %s", exc)


def work(url: str, *, burst: bool = False, name: str | None = None) -> bool:
    """Run a QuantLens worker on the shared queue until stopped (or, with burst, until the queue is empty)."""
    from redis import Redis
    from rq.serializers import JSONSerializer

    from core.jobs.redis_queue import QUEUE_NAME

    connection = Redis.from_url(url)
    worker = QuantLensWorker([QUEUE_NAME], connection=connection, serializer=JSONSerializer, name=name)
    expire_local_and_stored()
    return worker.work(burst=burst, with_scheduler=False, logging_level="INFO")
