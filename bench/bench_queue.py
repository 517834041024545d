"""Compare jobs per minute and time in line: the embedded queue vs the shared Redis queue with K local workers.

What runs: N compare jobs submitted at once (N web sessions, threads of this process), each a real comparison
(export-free: a small ONNX model built here, a different seed per job so none is served from the store; FP32,
INT8 and INT4 variants, timed runs) in the confined child.
1. embedded: core.jobs.runner.JobQueue as `make app` has it (QUANTLENS_MAX_RUNNING=1 by default, --embedded-running).
2. redis K=1, K=2, ...: a redis-server started here on a free loopback port (no persistence), K workers
   `python -m core worker`, the jobs sent through core.jobs.redis_queue.RedisJobQueue with a fresh store.
Per mode: the makespan (first submit to last report), jobs/minute, and each job's wait in line (submit to its
first progress line from the child). `--demo` runs the bundled all-MiniLM-L6-v2 demo instead (about a minute
per job on 2 cores; each job one more timed run than the last, so no two share a result).

Run: .venv/bin/python bench/bench_queue.py [--jobs 6] [--workers 1,2] [--threads 1] [--runs 20] [--demo]
Needs redis-server on PATH (Debian package redis-server) for the Redis rows; without it they are skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._shared.onnx_models import build_gemm_relu_onnx  # noqa: E402
from core.compare.common.settings import CompareOptions  # noqa: E402
from core.jobs.payload import TARGET, CompareJob  # noqa: E402
from core.jobs.runner import JobLimits, JobQueue, job_directory  # noqa: E402


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until(condition, what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if condition():
                return
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def run_batch(submit, jobs: int, job_root: Path, args) -> dict:
    """Submit `jobs` comparisons at once through `submit(session, payload, job_dir, on_progress)`."""
    options = CompareOptions(precisions=("fp32", "int8", "int4"), reference="fp32", runs=args.runs, warmup=2,
                             threads=args.threads).to_dict()
    waits: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        with job_directory(job_root) as job_dir:
            if args.demo:  # one more timed run per job: a different job key, so none is served from the store
                payload = CompareJob("demo", {**options, "runs": args.runs + i}).payload(job_dir)
            else:
                model = build_gemm_relu_onnx(job_dir / "model.onnx", in_features=256, hidden=2048, out_features=256,
                                             seed=int(time.time_ns() % 2**31) + i)
                payload = CompareJob(model, options).payload(job_dir)
            submitted = time.monotonic()
            started: list[float] = []

            def on_progress(stage: str, fraction: float | None) -> None:
                if not started:
                    started.append(time.monotonic())

            try:
                submit(f"session-{i}", payload, job_dir, on_progress)
            except Exception as exc:  # noqa: BLE001 - a bench reports failures, it does not stop at them
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                return
            with lock:
                waits.append((started[0] if started else time.monotonic()) - submitted)

    begin = time.monotonic()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    makespan = time.monotonic() - begin
    done = len(waits)
    return {"done": done, "makespan_s": makespan, "jobs_per_min": 60 * done / makespan if makespan else 0.0,
            "wait_p50_s": statistics.median(waits) if waits else float("nan"),
            "wait_max_s": max(waits) if waits else float("nan"), "errors": errors}


def embedded(args, job_root: Path) -> dict:
    queue = JobQueue(max_running=args.embedded_running, max_queued=args.jobs, sweep_older_than_s=None)
    limits = JobLimits(timeout_s=600, memory_bytes=4 * 2**30, threads=args.threads)
    return run_batch(lambda session, payload, job_dir, on_progress: queue.run(
        session, TARGET, payload, job_dir=job_dir, limits=limits, on_progress=on_progress), args.jobs, job_root, args)


@contextlib.contextmanager
def redis_server(folder: Path):
    port = _free_port()
    server = subprocess.Popen([shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", str(folder)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        from redis import Redis

        _wait_until(lambda: Redis.from_url(url).ping(), "redis-server")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def redis_fleet(args, job_root: Path, url: str, workers: int, tmp: Path) -> dict:
    from rq import Worker

    from core.jobs.redis_queue import RedisJobQueue
    from core.jobs.result_store import FolderStore

    store_dir = tmp / f"store-{workers}"
    queue = RedisJobQueue(url, FolderStore(store_dir), max_queued=args.jobs)
    queue.redis.flushdb()
    env = {**os.environ, "QUANTLENS_JOB_ROOT": str(job_root), "PYTHONPATH": str(REPO)}
    processes = [subprocess.Popen([sys.executable, "-m", "core", "worker", "--queue", url, "--store", str(store_dir),
                                   "--name", f"bench-{workers}-{i}"], cwd=REPO, env=env, start_new_session=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(workers)]
    try:
        _wait_until(lambda: Worker.count(queue=queue.queue) == workers, f"{workers} workers")
        limits = JobLimits(timeout_s=600, memory_bytes=4 * 2**30, threads=args.threads)
        return run_batch(lambda session, payload, job_dir, on_progress: queue.run(
            session, TARGET, payload, job_dir=job_dir, limits=limits, on_progress=on_progress),
            args.jobs, job_root, args)
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--jobs", type=int, default=6)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts for the Redis rows")
    parser.add_argument("--threads", type=int, default=1, help="threads per job (onnxruntime intra-op)")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per variant")
    parser.add_argument("--embedded-running", type=int, default=1, help="the embedded queue's QUANTLENS_MAX_RUNNING")
    parser.add_argument("--demo", action="store_true", help="run the bundled demo model instead of the small ONNX model")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="quantlens-bench-queue-") as tmp_name:
        tmp = Path(tmp_name)
        job_root = tmp / "jobs"
        job_root.mkdir(mode=0o700)
        print(f"{args.jobs} jobs submitted at once; {os.cpu_count()} CPUs; {args.threads} thread(s) per job", flush=True)
        rows.append((f"embedded (max running {args.embedded_running})", args.embedded_running, embedded(args, job_root)))
        print("embedded done", flush=True)
        if shutil.which("redis-server") is None:
            print("redis-server not found: the Redis rows are skipped (Debian package redis-server)")
        else:
            with redis_server(tmp) as url:
                for workers in [int(k) for k in args.workers.split(",") if k.strip()]:
                    rows.append((f"redis + {workers} worker(s)", workers, redis_fleet(args, job_root, url, workers, tmp)))
                    print(f"redis K={workers} done", flush=True)
    print()
    print("| mode | parallel jobs | done | makespan (s) | jobs/min | jobs/min per parallel job | wait p50 (s) | wait max (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, parallel, r in rows:
        print(f"| {name} | {parallel} | {r['done']}/{args.jobs} | {r['makespan_s']:.1f} | {r['jobs_per_min']:.2f} | "
              f"{r['jobs_per_min'] / parallel:.2f} | {r['wait_p50_s']:.1f} | {r['wait_max_s']:.1f} |")
    for name, _, r in rows:
        for error in r["errors"][:3]:
            print(f"{name}: {error}")
    base = rows[0][2]["jobs_per_min"]
    if base:
        print("\nthroughput vs embedded: " + ", ".join(f"{name}: {r['jobs_per_min'] / base:.2f}x" for name, _, r in rows[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
