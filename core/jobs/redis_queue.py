"""Compare jobs on a shared RQ queue in Redis (QUANTLENS_QUEUE=redis://...): the web side.

Why RQ (DEPLOY.md has the comparison): its worker forks a fresh work horse per job and kills it at a hard time
limit, a queue is a Redis list so a job's place in line is one LPOS away (the same number for every web
process), queued jobs cancel and running ones stop by command, and a job whose worker vanished is retried
(`Retry`) by the started-job registry's cleanup. RQ schedules; each job still runs in core.jobs.run_job's
confined child (limits, Landlock, no network, parent-death signal) inside the work horse (core.jobs.redis_worker).

A job travels as JSON only (RQ's JSONSerializer: nothing is unpickled on either side). Its input files go to the
shared store by content hash (core.jobs.result_store); the report and quantized files come back the same way,
under the job's content key, so the same upload with the same settings is served from the store. This class
offers what core.jobs.runner.JobQueue offers the page (`slot`, `run`, `cancel`, `state`), so the page does not
know which one it has.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

from core.errors import QuantLensError
from core.jobs.result_store import PackedJob, ResultStore
from core.jobs.runner import JobLimits, Progress, QueueState

log = logging.getLogger(__name__)

QUEUE_NAME = "quantlens-compare"
TASK = "core.jobs.redis_worker.run_stored_job"
POLL_S = 0.25
REPORT_EVERY_S = 2.0  # a waiting job re-reports its place this often, so a page can be interrupted (Cancel)
NO_WORKER_GRACE_S = 60.0  # a job waits this long for some worker to exist before the user is told there is none
CLEANUP_EVERY_S = 5.0  # how often a waiting web process has the started registry checked for lost workers
HARD_LIMIT_EXTRA_S = 120  # RQ kills the work horse this long after the job's own limit (unpacking, storing)
SESSION_WAIT_S = 6 * 3600  # the longest a claim may also cover waiting in line
RESULT_TTL_S = 3600  # the small JSON return value in Redis; the real result lives in the store
_SESSION = "quantlens:session:{}"
_SESSION_JOB = "quantlens:session-job:{}"


def _lost(exc_string: str) -> bool:
    return "AbandonedJobError" in exc_string or "terminated unexpectedly" in exc_string


@contextlib.contextmanager
def _reachable() -> Iterator[None]:
    """A Redis that cannot be reached is one clear line for the user, not a traceback."""
    from redis.exceptions import RedisError

    try:
        yield
    except RedisError as exc:
        log.warning("the job queue is unreachable: %s", exc)
        raise QuantLensError("queue_unavailable", "The job queue cannot be reached right now; try again in a "
                                                  "minute.") from None


class RedisSlot:
    """What `RedisJobQueue.slot` grants: a session's right to one job; `run` sends it and waits for it."""

    def __init__(self, queue: RedisJobQueue, session_id: str, on_wait: Callable[[int], None] | None) -> None:
        self._queue, self._session_id, self._on_wait = queue, session_id, on_wait
        self.cancelled = False

    def run(self, target: str, payload: dict, *, job_dir: Path, limits: JobLimits = JobLimits(),  # noqa: B008
            on_progress: Progress | None = None) -> dict:
        packed = self._queue.store.pack(target, payload, job_dir)
        out_dir = Path(job_dir) / "out"
        report = self._queue.store.fetch_result(packed.key, out_dir)
        if report is not None:  # the same upload and settings ran before, on some host
            if on_progress is not None:
                on_progress("Served from the shared result store", 1.0)
            return report
        with _reachable():
            job_id = self._queue.submit(packed, limits, session_id=self._session_id)
            self._queue.redis.set(_SESSION_JOB.format(self._session_id), job_id, ex=self._queue.session_ttl(limits))
            try:
                key = self._queue.wait(job_id, on_progress=on_progress, on_wait=self._on_wait)
            finally:
                with contextlib.suppress(Exception):
                    self._queue.redis.delete(_SESSION_JOB.format(self._session_id))
        report = self._queue.store.fetch_result(key, out_dir)
        if report is None:
            raise QuantLensError("job_failed", "The job finished but its result is no longer in the shared store; "
                                               "run it again.")
        return report


class RedisJobQueue:
    """The page's job queue when QUANTLENS_QUEUE points at Redis; one per web process, many per fleet."""

    def __init__(self, url: str, store: ResultStore, *, max_queued: int = 4, retries: int = 1) -> None:
        from redis import Redis
        from rq import Queue
        from rq.serializers import JSONSerializer

        self.url, self.store, self.max_queued, self.retries = url, store, max_queued, retries
        self.redis = Redis.from_url(url)
        self.queue = Queue(QUEUE_NAME, connection=self.redis, serializer=JSONSerializer)
        self._last_cleanup = float("-inf")

    # ------------------------------------------------------------------ what the page uses
    def state(self) -> QueueState:
        from rq.registry import StartedJobRegistry

        return QueueState(running=StartedJobRegistry(queue=self.queue).count, queued=self.queue.count)

    def session_ttl(self, limits: JobLimits) -> int:
        """How long a session's claim may outlive a web process that died holding it."""
        return int(limits.timeout_s + HARD_LIMIT_EXTRA_S) + SESSION_WAIT_S

    @contextlib.contextmanager
    def slot(self, session_id: str, *, on_wait: Callable[[int], None] | None = None) -> Iterator[RedisSlot]:
        """One job per browser session across the fleet (a Redis key), released when the job ends."""
        token = secrets.token_hex(8)
        claim = _SESSION.format(session_id)
        with _reachable():
            if not self.redis.set(claim, token, nx=True, ex=self.session_ttl(JobLimits(timeout_s=3600))):
                position = self.position(self._session_job(session_id) or "")
                where = f"; you are {position} in line" if position else ""
                raise QuantLensError("busy", f"You already have a job waiting or running{where}; wait for it to "
                                             "finish.")
        try:
            yield RedisSlot(self, session_id, on_wait)
        finally:
            with contextlib.suppress(Exception):  # an unreachable Redis lets the claim expire on its own
                if self.redis.get(claim) == token.encode():
                    self.redis.delete(claim)

    def run(self, session_id: str, target: str, payload: dict, *, job_dir: Path,
            limits: JobLimits = JobLimits(), on_progress: Progress | None = None,  # noqa: B008
            on_wait: Callable[[int], None] | None = None) -> dict:
        """Send one job and wait for its report (the same call as JobQueue.run)."""
        with self.slot(session_id, on_wait=on_wait) as slot:
            return slot.run(target, payload, job_dir=job_dir, limits=limits, on_progress=on_progress)

    def cancel(self, session_id: str) -> bool:
        """Stop the session's job wherever it is: removed from the shared queue, or its work horse killed."""
        job_id = self._session_job(session_id)
        return self.cancel_job(job_id) if job_id else False

    # ------------------------------------------------------------------ the parts, also for tests and the bench
    def _session_job(self, session_id: str) -> str | None:
        raw = self.redis.get(_SESSION_JOB.format(session_id))
        return raw.decode() if raw else None

    def position(self, job_id: str) -> int | None:
        """1 = next to start, the same answer in every web process; None once it is not waiting."""
        if not job_id:
            return None
        index = self.queue.get_job_position(job_id)
        return None if index is None else index + 1

    def submit(self, packed: PackedJob, limits: JobLimits, *, session_id: str = "") -> str:
        """Put a packed job at the end of the shared queue (or refuse when the fleet's queue is full)."""
        from rq import Retry

        if self.queue.count >= self.max_queued:
            raise QuantLensError("busy", f"The servers are busy: {self.queue.count} jobs are waiting, the queue is "
                                         "full. Try again in a minute.")
        spec = {"target": packed.target, "payload": packed.payload, "manifest": packed.manifest, "key": packed.key,
                "limits": asdict(limits)}
        job = self.queue.enqueue_call(
            TASK, args=(spec,), timeout=int(limits.timeout_s + HARD_LIMIT_EXTRA_S), result_ttl=RESULT_TTL_S,
            failure_ttl=RESULT_TTL_S, ttl=24 * 3600, retry=Retry(max=self.retries, enqueue_at_front=True) if self.retries
            else None, meta={"session": session_id[:64]}, description=f"compare {packed.key[:12]}")
        return job.id

    def cancel_job(self, job_id: str) -> bool:
        from rq.command import send_stop_job_command
        from rq.exceptions import InvalidJobOperation, NoSuchJobError
        from rq.job import Job, JobStatus
        from rq.serializers import JSONSerializer

        try:
            job = Job.fetch(job_id, connection=self.redis, serializer=JSONSerializer)
            status = job.get_status()
            if status in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED):
                with contextlib.suppress(InvalidJobOperation):
                    job.cancel()
                    return True
                status = job.get_status()
            if status == JobStatus.STARTED:
                send_stop_job_command(self.redis, job_id, serializer=JSONSerializer)
                return True
        except (NoSuchJobError, InvalidJobOperation):
            return False
        return False

    def _workers(self) -> int:
        from rq import Worker

        return Worker.count(queue=self.queue)

    def _cleanup_lost(self) -> None:
        """Have jobs whose worker stopped sending heartbeats retried (or failed): RQ's own registry cleanup.

        At most every CLEANUP_EVERY_S per web process, however many sessions wait.
        """
        now = time.monotonic()
        if now - self._last_cleanup < CLEANUP_EVERY_S:
            return
        self._last_cleanup = now
        from rq.registry import StartedJobRegistry

        try:
            StartedJobRegistry(queue=self.queue).cleanup()
        except Exception as exc:  # noqa: BLE001 - a failed cleanup must not fail a user's wait; a worker retries it
            log.warning("cleaning the started-job registry failed: %s", exc)

    def wait(self, job_id: str, *, on_progress: Progress | None = None,
             on_wait: Callable[[int], None] | None = None, timeout_s: float | None = None) -> str:
        """Wait for a job; return its result key or raise the QuantLensError it ended with.

        If the wait is abandoned (the page was interrupted, a callback raised), the job is cancelled: no one is
        left to show its result.
        """
        from rq.job import Job, JobStatus
        from rq.serializers import JSONSerializer

        job = Job.fetch(job_id, connection=self.redis, serializer=JSONSerializer)
        done = False
        reported: tuple = ()
        last_report = float("-inf")
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        workers_seen_at = last_fleet_check = time.monotonic()
        from rq.exceptions import InvalidJobOperation, NoSuchJobError

        try:
            while True:
                try:
                    status = job.get_status(refresh=True)
                except (InvalidJobOperation, NoSuchJobError):
                    done = True
                    raise QuantLensError("job_failed", "The job's record is gone from the queue (Redis was emptied "
                                                       "or restarted); run it again.") from None
                if status == JobStatus.FINISHED:
                    done = True
                    return self._finished(job)
                if status in (JobStatus.STOPPED, JobStatus.CANCELED):
                    done = True
                    raise QuantLensError("cancelled", "The job was cancelled.")
                if status == JobStatus.FAILED:
                    done = True
                    raise self._failure(job)
                now = time.monotonic()
                if status == JobStatus.STARTED:
                    meta = job.get_meta(refresh=True)
                    stage = (str(meta.get("stage") or "Running on a worker")[:200], meta.get("fraction"))
                    if on_progress is not None and stage != reported:
                        reported = stage
                        on_progress(stage[0], stage[1])
                else:  # queued, scheduled for a retry, deferred
                    position = self.position(job_id) or 1
                    if on_wait is not None and (("wait", position) != reported or now - last_report > REPORT_EVERY_S):
                        reported, last_report = ("wait", position), now
                        on_wait(position)
                self._cleanup_lost()
                if now - last_fleet_check > CLEANUP_EVERY_S:
                    last_fleet_check = now
                    if status == JobStatus.STARTED or self._workers() > 0:
                        workers_seen_at = now
                    elif now - workers_seen_at > NO_WORKER_GRACE_S:
                        raise QuantLensError("no_workers", "No worker is taking compare jobs right now, so the job "
                                                           "was withdrawn; try again later.")
                if deadline is not None and now > deadline:
                    raise TimeoutError(f"job {job_id} still {status} after {timeout_s} s")
                time.sleep(POLL_S)
        finally:
            if not done:
                self.cancel_job(job_id)

    def _finished(self, job) -> str:
        value = job.return_value(refresh=True)
        if not isinstance(value, dict):
            raise QuantLensError("job_failed", "The worker returned no result.")
        if value.get("ok") is True and isinstance(value.get("key"), str):
            return value["key"]
        code = str(value.get("code") or "job_failed")[:64]
        message = " ".join(str(value.get("message") or "The job failed.").split())[:500]
        raise QuantLensError(code, message)

    def _failure(self, job) -> QuantLensError:
        result = job.latest_result()
        exc_string = (getattr(result, "exc_string", None) or "") if result is not None else ""
        log.warning("job %s failed on a worker: %s", job.id, exc_string[-2000:])
        if _lost(exc_string):
            return QuantLensError("worker_lost", "The worker running this job was lost (its host stopped or the "
                                                 f"process was killed), {self.retries + 1} times; run it again.")
        if "JobTimeoutException" in exc_string:
            return QuantLensError("timeout", "The job ran past its time limit on the worker and was stopped.")
        kind = exc_string.strip().splitlines()[-1].split(":", 1)[0][:60] if exc_string.strip() else "error"
        return QuantLensError("job_failed", f"The job failed on a worker with an unexpected {kind}; the details are "
                                            "in the worker's log.")

