"""Compare jobs past one machine: a real redis-server, real RQ workers (`python -m core worker`), real web processes.

What a fleet operator and a user rely on: a job runs on a worker and its files come back; the same job again is
served from the shared store; every web process sees the same place in line; a queued or running job can be
cancelled from any web process; a worker killed mid-job has its job retried elsewhere or reported, never lost.
redis-server is Debian's package (`make test` installs it as root); without it these tests skip with that reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue as queue_module
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core.errors import QuantLensError
from core.jobs.runner import PROJECT_ROOT, JobLimits
from tests.core import s3_server as s3

s3_server, s3_env = s3.s3_server, s3.s3_env  # the fixtures, for pytest

pytestmark = pytest.mark.slow
REDIS = shutil.which("redis-server")
if REDIS is None:
    pytest.skip("redis-server is not installed (Debian package redis-server; `make test` installs it as root)",
                allow_module_level=True)

SLEEP = "tests.security.workers:sleep"
LIMITS = JobLimits(timeout_s=120, memory_bytes=512 * 2**20, threads=1)
WAIT_S = 180  # the longest any condition below may take on a busy 2-core machine


def wait_for(condition, what: str, timeout_s: float = WAIT_S):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    from redis import Redis

    folder = tmp_path_factory.mktemp("redis")
    port = _free_port()
    server = subprocess.Popen([REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                               "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"

    def answers() -> bool:
        with contextlib.suppress(Exception):
            return Redis.from_url(url).ping()
        return False

    try:
        wait_for(answers, "redis-server to answer", 30)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


class Fleet:
    """Workers on this machine against the test's Redis and store; all killed at the end."""

    def __init__(self, url: str, tmp: Path, store_url: str | None = None) -> None:
        from core.jobs.redis_queue import RedisJobQueue
        from core.jobs.result_store import store_from_url

        self.url, self.store_dir, self.job_root = url, tmp / "store", tmp / "jobs"
        self.store_url = store_url or str(self.store_dir)  # a shared folder, or s3://bucket/prefix
        self.job_root.mkdir(mode=0o700)
        self.store = store_from_url(self.store_url)
        self.queue = RedisJobQueue(url, self.store, max_queued=20)
        self.queue.redis.flushdb()
        self.workers: dict[str, subprocess.Popen] = {}
        self.env = {**os.environ, "QUANTLENS_JOB_ROOT": str(self.job_root),
                    "QUANTLENS_WORKER_TARGETS": SLEEP, "PYTHONPATH": str(PROJECT_ROOT)}

    def start_worker(self, name: str) -> subprocess.Popen:
        from rq import Worker

        process = subprocess.Popen([sys.executable, "-m", "core", "worker", "--queue", self.url, "--store",
                                    self.store_url, "--name", name], cwd=PROJECT_ROOT, env=self.env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.workers[name] = process
        wait_for(lambda: name in {w.name for w in Worker.all(queue=self.queue.queue)}, f"worker {name} to start")
        return process

    def submitter(self, session: str, seconds: float) -> Submitter:
        """A second web process submitting through the backend."""
        return Submitter([sys.executable, "-m", "tests.core.redis_submitter", self.url, str(self.store_dir), session,
                          str(seconds)], self.env)

    def job_of(self, session: str) -> str:
        return wait_for(lambda: self.queue._session_job(session), f"the job of session {session}")

    def job(self, job_id: str):
        from rq.job import Job
        from rq.serializers import JSONSerializer

        return Job.fetch(job_id, connection=self.queue.redis, serializer=JSONSerializer)

    def close(self) -> None:
        for process in self.workers.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


class Submitter:
    """Reads a submitter process's JSON lines as they come (a pipe, never a file being written)."""

    def __init__(self, argv: list[str], env: dict) -> None:
        self.process = subprocess.Popen(argv, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, text=True)
        self.lines: queue_module.Queue = queue_module.Queue()
        self.seen: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(json.loads(line))

    def next_matching(self, *keys: str) -> dict:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            try:
                item = self.lines.get(timeout=1)
            except queue_module.Empty:
                continue
            self.seen.append(item)
            if any(k in item for k in keys):
                return item
        raise AssertionError(f"no {keys} line from the submitter; saw {self.seen}")

    def outcome(self) -> dict:
        item = self.next_matching("ok", "code")
        self.process.wait(timeout=WAIT_S)
        return item


@pytest.fixture
def fleet(redis_url, tmp_path):
    fleet = Fleet(redis_url, tmp_path)
    try:
        yield fleet
    finally:
        fleet.close()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):  # a zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _processes_working_in(folder: Path) -> list[int]:
    """Processes whose working directory is inside `folder` (a confined child runs in its job folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if Path(os.readlink(entry / "cwd")).is_relative_to(folder) and _pid_alive(int(entry.name)):
                    found.append(int(entry.name))
    return found


def test_a_compare_job_runs_on_a_worker_and_the_same_job_again_comes_from_the_store(fleet, tmp_path):
    from rq.registry import FinishedJobRegistry

    from bench._shared.onnx_models import build_gemm_relu_onnx
    from core.compare.common.settings import CompareOptions
    from core.jobs.payload import TARGET, CompareJob
    from core.jobs.runner import job_directory

    fleet.start_worker("w1")
    options = CompareOptions(precisions=("fp32", "int8"), reference="fp32", runs=3, warmup=1).to_dict()
    limits = JobLimits(timeout_s=300, memory_bytes=3 * 2**30, threads=1)
    reports, stages = [], []
    for _ in range(2):  # the second web request: a fresh job folder with the same bytes and settings
        with job_directory(fleet.job_root) as job_dir:
            model = build_gemm_relu_onnx(job_dir / "model.onnx")
            payload = CompareJob(model, options).payload(job_dir)
            reports.append(fleet.queue.run("s1", TARGET, payload, job_dir=job_dir, limits=limits,
                                           on_progress=lambda stage, fraction: stages.append(stage)))
            files = sorted(p.name for p in (job_dir / "out").iterdir())
            assert any(name.endswith(".onnx") for name in files), files  # the quantized files came back
    first, second = reports
    assert [r["precision"] for r in first["results"]] == ["fp32", "int8"]
    assert second == first
    assert stages[-1] == "Served from the shared result store"
    assert FinishedJobRegistry(queue=fleet.queue.queue).count == 1  # the duplicate never reached a worker


def test_a_compare_job_travels_through_an_s3_store_and_comes_back_from_it_the_second_time(redis_url, tmp_path,
                                                                                          s3_env):
    """The same job as above with QUANTLENS_STORE=s3://...: the worker gets the upload from the bucket, the web
    process gets the report and the quantized files from it (a real S3-protocol server, tests/core/s3_server.py)."""
    from core.compare.common.settings import CompareOptions
    from core.jobs.payload import TARGET, CompareJob
    from core.jobs.result_store import S3Store
    from core.jobs.runner import job_directory
    from tests.core.conftest import build_gemm_relu_onnx
    from tests.core.s3_server import unique_prefix

    fleet = Fleet(redis_url, tmp_path, f"s3://{s3_env.bucket}/{unique_prefix('fleet')}")
    try:
        assert isinstance(fleet.store, S3Store)
        fleet.start_worker("w1")
        options = CompareOptions(precisions=("fp32", "int8"), reference="fp32", runs=3, warmup=1).to_dict()
        limits = JobLimits(timeout_s=300, memory_bytes=3 * 2**30, threads=1)
        reports, stages = [], []
        for _ in range(2):
            with job_directory(fleet.job_root) as job_dir:
                model = build_gemm_relu_onnx(job_dir / "model.onnx")
                payload = CompareJob(model, options).payload(job_dir)
                reports.append(fleet.queue.run("s1", TARGET, payload, job_dir=job_dir, limits=limits,
                                               on_progress=lambda stage, fraction: stages.append(stage)))
                assert any(p.name.endswith(".onnx") for p in (job_dir / "out").iterdir())
        assert [r["precision"] for r in reports[0]["results"]] == ["fp32", "int8"]
        assert reports[1] == reports[0] and stages[-1] == "Served from the shared result store"
        assert not fleet.store_dir.exists()  # nothing went through a folder
        listed = fleet.store.client.list_objects_v2(Bucket=fleet.store.bucket, Prefix=fleet.store.prefix)
        names = [item["Key"][len(fleet.store.prefix):] for item in listed["Contents"]]
        assert any(n.startswith("blobs/") for n in names) and sum(n.endswith("/report.json") for n in names) == 1
        assert any(n.startswith("results/") and n.endswith(".onnx") for n in names)
    finally:
        fleet.close()


def test_two_web_processes_see_the_same_places_in_the_shared_line(fleet):
    fleet.start_worker("w1")
    blocker = fleet.submitter("blocker", 60)
    blocker_job = fleet.job_of("blocker")
    wait_for(lambda: fleet.job(blocker_job).get_status() == "started", "the blocker to start")
    first = fleet.submitter("alice", 0.1)
    first_position = first.next_matching("position")["position"]
    second = fleet.submitter("bob", 0.1)
    second_position = second.next_matching("position")["position"]
    assert (first_position, second_position) == (1, 2)
    # the line as every process sees it (this test process is a third one)
    assert fleet.queue.position(fleet.job_of("alice")) == 1
    assert fleet.queue.position(fleet.job_of("bob")) == 2
    assert fleet.queue.state().queued == 2

    assert fleet.queue.cancel("blocker")  # running: stopped from another process than the one waiting on it
    assert blocker.outcome() == {"code": "cancelled"}
    assert first.outcome()["ok"] == {"slept": 0.1}
    assert second.outcome()["ok"] == {"slept": 0.1}


def test_a_queued_job_and_a_running_one_can_be_cancelled_and_the_running_one_leaves_no_process(fleet):
    fleet.start_worker("w1")
    running = fleet.submitter("running", 120)
    running_job = fleet.job_of("running")
    horse = wait_for(lambda: fleet.job(running_job).get_meta(refresh=True).get("horse_pid"), "the work horse")
    waiting = fleet.submitter("waiting", 0.1)
    assert waiting.next_matching("position")["position"] == 1

    assert fleet.queue.cancel("waiting")
    assert waiting.outcome() == {"code": "cancelled"}
    assert fleet.queue.state().queued == 0

    assert fleet.queue.cancel("running")
    assert running.outcome() == {"code": "cancelled"}
    wait_for(lambda: not _pid_alive(horse), "the work horse to be gone")
    wait_for(lambda: not _processes_working_in(fleet.job_root), "the confined child to be gone")
    after = fleet.submitter("after", 0.1)  # the worker takes the next job as usual
    assert after.outcome()["ok"] == {"slept": 0.1}


def test_a_worker_killed_mid_job_has_its_job_retried_on_another_worker(fleet):
    workers = {name: fleet.start_worker(name) for name in ("w1", "w2")}
    user = fleet.submitter("user", 8)
    job_id = fleet.job_of("user")
    horse = wait_for(lambda: fleet.job(job_id).get_meta(refresh=True).get("horse_pid"), "the job to start")
    victim = fleet.job(job_id).worker_name
    os.killpg(workers[victim].pid, signal.SIGKILL)  # the host is gone: the worker and its work horse
    with contextlib.suppress(ProcessLookupError):
        os.kill(horse, signal.SIGKILL)
    outcome = user.outcome()
    assert outcome["ok"] == {"slept": 8.0}
    survivor = ({"w1", "w2"} - {victim}).pop()
    assert fleet.job(job_id).worker_name == survivor


def test_a_job_whose_worker_is_lost_and_has_no_retry_left_is_reported_not_dropped(fleet):
    from core.jobs.redis_queue import RedisJobQueue
    from core.jobs.runner import job_directory

    worker = fleet.start_worker("w1")
    no_retry = RedisJobQueue(fleet.url, fleet.store, max_queued=20, retries=0)
    outcome: dict = {}

    def web() -> None:
        with job_directory(fleet.job_root) as job_dir:
            try:
                outcome["report"] = no_retry.run("lost", SLEEP, {"seconds": 120}, job_dir=job_dir, limits=LIMITS)
            except QuantLensError as exc:
                outcome["error"] = exc

    thread = threading.Thread(target=web)
    thread.start()
    job_id = fleet.job_of("lost")
    horse = wait_for(lambda: fleet.job(job_id).get_meta(refresh=True).get("horse_pid"), "the job to start")
    os.killpg(worker.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.kill(horse, signal.SIGKILL)
    thread.join(timeout=WAIT_S)
    assert not thread.is_alive()
    assert outcome["error"].code == "worker_lost"


def test_the_compare_page_sends_an_upload_to_a_worker_and_offers_the_files_it_made(fleet, tmp_path, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from bench._shared.onnx_models import build_gemm_relu_onnx

    fleet.start_worker("w1")
    monkeypatch.setenv("QUANTLENS_QUEUE", fleet.url)
    monkeypatch.setenv("QUANTLENS_STORE", str(fleet.store_dir))
    monkeypatch.setenv("QUANTLENS_JOB_ROOT", str(fleet.job_root))
    st.cache_resource.clear()  # the page's queue is built from the environment once per process
    try:
        at = AppTest.from_file(str(PROJECT_ROOT / "pages" / "compare.py"), default_timeout=30)
        at.query_params.update({"src": "upload", "p": "fp32,int8", "ref": "fp32", "runs": "3"})
        at.run()
        at.file_uploader(key="cmp_model_file").upload("m.onnx", build_gemm_relu_onnx(tmp_path / "m.onnx").read_bytes())
        at.run()
        at.button[0].click().run(timeout=240)
        assert not at.exception, at.exception
        assert not at.error, [e.value for e in at.error]
        assert list(at.dataframe[0].value["Precision"]) == ["FP32 (reference)", "INT8 dynamic"]
        assert any(b.label.startswith("INT8 .onnx") for b in at.get("download_button"))
        assert any(b.label == "Cancel" for b in at.button)  # offered while a job runs
        assert fleet.job(fleet.queue.queue.finished_job_registry.get_job_ids()[0]).worker_name == "w1"
    finally:
        st.cache_resource.clear()


def test_with_no_worker_at_all_the_user_is_told_instead_of_waiting_for_ever(fleet, monkeypatch):
    import core.jobs.redis_queue as redis_queue
    from core.jobs.runner import job_directory

    monkeypatch.setattr(redis_queue, "NO_WORKER_GRACE_S", 1.0)
    monkeypatch.setattr(redis_queue, "CLEANUP_EVERY_S", 0.2)
    positions: list[int] = []
    with job_directory(fleet.job_root) as job_dir, pytest.raises(QuantLensError) as caught:
        fleet.queue.run("alone", SLEEP, {"seconds": 0.1}, job_dir=job_dir, limits=LIMITS, on_wait=positions.append)
    assert caught.value.code == "no_workers"
    assert positions[0] == 1 and fleet.queue.state().queued == 0  # it saw its place, then the job was withdrawn
