"""What the compare page relies on: a job runs in a child, reports progress, returns JSON, and cleans up."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core.errors import QuantLensError
from core.jobs.runner import (
    JOB_ROOT_ENV,
    JobLimits,
    JobQueue,
    default_job_root,
    job_directory,
    new_job_dir,
    run_job,
    sweep_stale_job_dirs,
)
from tests.waiting import read_when_complete, wait_for

W = "tests.security.workers"
FAST = JobLimits(timeout_s=10, memory_bytes=512 * 2**20, threads=1)


@pytest.fixture
def job_root(tmp_path: Path) -> Path:
    root = tmp_path / "jobs"
    root.mkdir(mode=0o700)
    return root


def test_a_job_returns_its_json_result_and_relays_progress(job_root):
    seen = []
    with job_directory(job_root) as job_dir:
        result = run_job(f"{W}:echo", {"n": 1, "text": "héllo"}, job_dir=job_dir, limits=FAST,
                         on_progress=lambda stage, fraction: seen.append((stage, fraction)))
        assert result["payload"] == {"n": 1, "text": "héllo"}
        assert result["cwd"] == str(job_dir.resolve()) and result["job_dir"] == str(job_dir.resolve())
        assert sorted(p.name for p in job_dir.iterdir()) == []  # scratch (.run-*) removed, caller's dir kept
    assert seen == [("starting", 0.0), ("done", 1.0)]
    assert list(job_root.iterdir()) == []


def test_the_child_runs_offline_in_its_own_session_with_a_scrubbed_environment(job_root, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.setenv("SECRET", "parent-only")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    with job_directory(job_root) as job_dir:
        result = run_job(f"{W}:echo", {}, job_dir=job_dir, limits=JobLimits(threads=3, timeout_s=10))
    assert result["env"] == {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                             "OMP_NUM_THREADS": "3", "HTTPS_PROXY": None, "https_proxy": None, "HF_TOKEN": None,
                             "SECRET": None}
    assert result["pid"] == result["pgid"] == result["sid"] != os.getpid()
    assert result["cwd_on_path"] is False


def test_progress_lines_are_truncated_and_clamped(job_root):
    seen = []
    with job_directory(job_root) as job_dir:
        run_job(f"{W}:progress_spam", {"n": 5}, job_dir=job_dir, limits=FAST,
                on_progress=lambda stage, fraction: seen.append((stage, fraction)))
    assert len(seen) == 6 and len(seen[-1][0]) == 200 and seen[-1][1] == 1.0


def test_a_quantlens_error_in_the_child_arrives_with_the_same_code_and_sentence(job_root):
    with job_directory(job_root) as job_dir, pytest.raises(QuantLensError) as caught:
        run_job(f"{W}:refuse", {}, job_dir=job_dir, limits=FAST)
    assert (caught.value.code, caught.value.message) == ("invalid_config", "config.json is not a JSON object.")


@pytest.mark.parametrize(("target", "expected"), [("fail", "ValueError"), ("not_a_dict", "TypeError"),
                                                  ("exit_nonzero", "exit status 3")])
def test_an_unexpected_failure_names_its_kind_but_leaks_no_detail(job_root, target, expected):
    with job_directory(job_root) as job_dir, pytest.raises(QuantLensError) as caught:
        run_job(f"{W}:{target}", {"detail": "TOPSECRET"}, job_dir=job_dir, limits=FAST)
    assert caught.value.code == "job_failed"
    assert expected in caught.value.message and "TOPSECRET" not in caught.value.message


def test_a_file_over_the_size_limit_is_resource_limit_disk(job_root):
    with job_directory(job_root) as job_dir, pytest.raises(QuantLensError) as caught:
        run_job(f"{W}:big_file", {"mib": 4}, job_dir=job_dir,
                limits=JobLimits(timeout_s=10, memory_bytes=512 * 2**20, file_bytes=2**20))
    assert caught.value.code == "resource_limit_disk"


def test_a_malformed_target_is_a_programming_error(job_root):
    with pytest.raises(ValueError):
        run_job("os.system('x')", {}, job_dir=job_root)


def test_job_dirs_are_random_private_and_always_removed(job_root):
    first, second = new_job_dir(job_root), new_job_dir(job_root)
    assert first != second and len(first.name) == 32
    assert stat.S_IMODE(first.stat().st_mode) == 0o700
    with pytest.raises(RuntimeError), job_directory(job_root) as job_dir:
        (job_dir / "model.onnx").write_bytes(b"x")
        raise RuntimeError("page crashed mid-job")
    assert not job_dir.exists()


def test_sweeper_removes_only_old_job_dirs(job_root):
    old, fresh = new_job_dir(job_root), new_job_dir(job_root)
    (job_root / "not-a-job").mkdir()
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert sweep_stale_job_dirs(job_root, older_than_s=3600) == 1
    assert not old.exists() and fresh.exists() and (job_root / "not-a-job").exists()


def test_a_shared_or_foreign_job_root_is_refused(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    monkeypatch.setenv(JOB_ROOT_ENV, str(shared))
    with pytest.raises(QuantLensError) as caught:
        default_job_root()
    assert caught.value.code == "job_root_unsafe"


def test_default_job_root_is_created_private(tmp_path, monkeypatch):
    monkeypatch.setenv(JOB_ROOT_ENV, str(tmp_path / "fresh"))
    root = default_job_root()
    assert stat.S_IMODE(root.stat().st_mode) == 0o700


# ------------------------------------------------------------------------------------------ queue
class _Gate:
    """A runner stand-in for queue bookkeeping tests: blocks until released or cancelled (real jobs are below)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started: list[str] = []

    def __call__(self, target, payload, *, job_dir, limits, on_progress, cancel):
        self.started.append(payload["who"])
        while not self.release.is_set():
            if cancel.is_set():
                raise QuantLensError("cancelled", "The job was cancelled.")
            time.sleep(0.01)
        return {"who": payload["who"]}


def _in_thread(queue: JobQueue, session: str, results: dict, positions: dict | None = None) -> threading.Thread:
    def work():
        try:
            results[session] = queue.run(session, f"{W}:echo", {"who": session}, job_dir=Path("."),
                                         on_wait=(lambda p: positions.setdefault(session, []).append(p))
                                         if positions is not None else None)
        except QuantLensError as exc:
            results[session] = exc.code

    thread = threading.Thread(target=work)
    thread.start()
    return thread


def _until(predicate, timeout_s: float = 120.0) -> None:
    wait_for(predicate, timeout_s)


def _joined(thread: threading.Thread) -> None:
    """The thread's job is over (waited for as a condition: a busy machine is slow, never wrong)."""
    thread.join(120)
    assert not thread.is_alive(), "the job never ended"


def test_a_full_queue_answers_busy_instead_of_hanging():
    gate = _Gate()
    queue = JobQueue(max_running=1, max_queued=1, runner=gate)
    results: dict = {}
    positions: dict = {}
    a = _in_thread(queue, "A", results)
    _until(lambda: gate.started == ["A"])
    b = _in_thread(queue, "B", results, positions)
    _until(lambda: queue.state().queued == 1)
    with pytest.raises(QuantLensError) as caught:
        queue.run("C", f"{W}:echo", {"who": "C"}, job_dir=Path("."))
    assert caught.value.code == "busy" and "queue is full" in caught.value.message
    gate.release.set()
    _joined(a)
    _joined(b)
    assert results == {"A": {"who": "A"}, "B": {"who": "B"}} and set(positions["B"]) == {1}


def test_a_waiting_job_hears_its_unchanged_place_again_so_a_page_can_cancel_it(monkeypatch):
    import core.jobs.runner as runner

    monkeypatch.setattr(runner, "REPORT_EVERY_S", 0.05)
    gate = _Gate()
    queue = JobQueue(max_running=1, max_queued=1, runner=gate)
    results: dict = {}
    positions: dict = {}
    a = _in_thread(queue, "A", results)
    _until(lambda: gate.started == ["A"])
    b = _in_thread(queue, "B", results, positions)
    _until(lambda: len(positions.get("B", [])) >= 3)
    gate.release.set()
    _joined(a)
    _joined(b)
    assert set(positions["B"]) == {1}


def test_one_job_per_session_and_the_second_click_says_where_it_is():
    gate = _Gate()
    queue = JobQueue(max_running=1, max_queued=3, runner=gate)
    results: dict = {}
    a = _in_thread(queue, "A", results)
    _until(lambda: gate.started == ["A"])
    b = _in_thread(queue, "B", results)
    _until(lambda: queue.state().queued == 1)
    for session, text in (("A", "already have a job running"), ("B", "you are 1 in line")):
        with pytest.raises(QuantLensError) as caught:
            queue.run(session, f"{W}:echo", {"who": session}, job_dir=Path("."))
        assert caught.value.code == "busy" and text in caught.value.message
    gate.release.set()
    _joined(a)
    _joined(b)


def test_cancelling_a_session_stops_its_running_job_and_removes_its_waiting_one():
    gate = _Gate()
    queue = JobQueue(max_running=1, max_queued=3, runner=gate)
    results: dict = {}
    a = _in_thread(queue, "A", results)
    _until(lambda: gate.started == ["A"])
    b = _in_thread(queue, "B", results)
    c = _in_thread(queue, "C", results)
    _until(lambda: queue.state().queued == 2)
    assert queue.cancel("B") and queue.cancel("A") and not queue.cancel("nobody")
    _joined(a)
    _joined(b)
    _until(lambda: gate.started == ["A", "C"])
    gate.release.set()
    _joined(c)
    assert results == {"A": "cancelled", "B": "cancelled", "C": {"who": "C"}}
    assert queue.state().running == 0 and queue.state().queued == 0


def test_the_queue_sweeps_abandoned_job_dirs_when_new_work_arrives(job_root):
    abandoned, current = new_job_dir(job_root), new_job_dir(job_root)
    os.utime(abandoned, (time.time() - 7200, time.time() - 7200))
    gate = _Gate()
    gate.release.set()
    queue = JobQueue(runner=gate, sweep_root=job_root, sweep_older_than_s=3600)
    assert queue.run("A", f"{W}:echo", {"who": "A"}, job_dir=current) == {"who": "A"}
    assert not abandoned.exists() and current.exists()


def test_a_slot_holds_the_place_across_validation_and_the_job(job_root):
    """The page validates the upload inside the slot: a second session waits for the whole sequence."""
    from core.gate.ingest import spool_upload, validate_upload
    from tests.security.fixtures import hf_zip

    queue = JobQueue(max_running=1, max_queued=0, sweep_older_than_s=None)
    with job_directory(job_root) as job_dir, queue.slot("A") as slot:
        upload = validate_upload(spool_upload(hf_zip(), job_dir), job_dir)
        with pytest.raises(QuantLensError) as caught:
            queue.run("B", f"{W}:echo", {}, job_dir=job_dir)
        assert caught.value.code == "busy"
        result = slot.run(f"{W}:echo", {"files": list(upload.files)}, job_dir=job_dir, limits=FAST)
        assert result["payload"]["files"] == list(upload.files)
        assert queue.cancel("A") and slot.cancelled
        with pytest.raises(QuantLensError) as caught:
            slot.run(f"{W}:echo", {}, job_dir=job_dir, limits=FAST)
        assert caught.value.code == "cancelled"
    assert queue.state().running == 0


def test_a_page_rerun_while_waiting_kills_the_child(job_root):
    """Streamlit raises inside a callback when the user presses Stop or reruns: the job must not live on."""
    import psutil

    class Rerun(Exception):
        pass

    def on_progress(stage, fraction):
        raise Rerun()

    with job_directory(job_root) as job_dir, pytest.raises(Rerun):
        run_job(f"{W}:spin", {}, job_dir=job_dir, limits=FAST, on_progress=on_progress)
    assert [p for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE] == []



def test_a_job_is_the_first_process_the_kernel_kills_when_the_host_runs_out_of_memory(job_root):
    """A container-wide OOM must take the job, not the Streamlit server (oom_score_adj 1000 in the worker)."""
    with job_directory(job_root) as job_dir:
        result = run_job(f"{W}:read_oom_score_adj", {}, job_dir=job_dir, limits=FAST)
    assert result["oom_score_adj"] == 1000


# ------------------------------------------------------------------------------------------ parent death
_PARENT = """
import sys
from pathlib import Path
from core.jobs.runner import JobLimits, new_job_dir, run_job
job_dir = new_job_dir(Path(sys.argv[1]))
print(job_dir, flush=True)
run_job("tests.security.workers:report_pid_and_spin", {}, job_dir=job_dir,
        limits=JobLimits(timeout_s=60, memory_bytes=512 * 2**20, threads=1))
"""


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] == b"Z"  # a zombie no one reaped runs no more
    except FileNotFoundError:
        return True


def _poll(condition, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_worker_dies_with_its_parent_and_the_next_start_removes_its_folder(job_root, sig):
    root = Path(__file__).resolve().parents[2]
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, str(job_root)], cwd=root, stdout=subprocess.PIPE,
                              text=True)
    try:
        job_dir = Path(parent.stdout.readline().strip())
        worker = read_when_complete(job_dir / "worker.pid", int)  # written atomically by the worker
        parent.send_signal(sig)
        parent.wait(timeout=30)
        assert _poll(lambda: _gone(worker)), "the worker outlived its parent"
    finally:
        parent.kill()
        parent.wait()
    assert job_dir.is_dir()  # nobody was left to remove it...
    JobQueue(sweep_root=job_root)  # ...until the next server (or CLI) starts
    assert not job_dir.exists()


def test_the_start_up_sweep_keeps_the_folders_of_live_processes(job_root):
    mine = new_job_dir(job_root)
    JobQueue(sweep_root=job_root)
    assert mine.is_dir()


def test_a_worker_has_a_cpu_time_limit_matching_its_wall_clock_limit():
    from core.jobs.worker import cpu_seconds

    assert cpu_seconds(300, 2) == 601 and cpu_seconds(0.5, 1) == 2


# ------------------------------------------------------------------------------------------ library errors
@pytest.mark.parametrize("target, code, words", [
    ("onnxruntime_refuses", "invalid_onnx", "ONNX Runtime could not load"),
    ("package_missing", "missing_dependency", "bitsandbytes-not-installed-here"),
    ("runtime_out_of_memory", "resource_limit_memory", "memory limit"),
])
def test_library_failures_arrive_as_one_sentence_with_their_own_code(job_root, target, code, words):
    with job_directory(job_root) as job_dir, pytest.raises(QuantLensError) as caught:
        run_job(f"{W}:{target}", {}, job_dir=job_dir, limits=JobLimits(timeout_s=60, memory_bytes=2 * 2**30))
    assert caught.value.code == code, caught.value.one_line()
    assert words in caught.value.message
    assert "Traceback" not in caught.value.message and "\n" not in caught.value.message


# ------------------------------------------------------------------------------------------ session files
def test_a_sessions_folders_are_removed_when_the_session_is_dropped(job_root):
    import gc

    from core.jobs.session import SessionFiles

    files = SessionFiles()
    upload, first_run, second_run = new_job_dir(job_root), new_job_dir(job_root), new_job_dir(job_root)
    files.put("upload", upload)
    files.put("job", first_run)
    files.put("job", second_run)  # a new run replaces the previous run's files at once
    assert not first_run.exists() and upload.is_dir() and second_run.is_dir()
    del files  # what Streamlit does with a closed session's state after its disconnected-session timeout
    gc.collect()
    assert not upload.exists() and not second_run.exists()
    assert sorted(p.name for p in job_root.iterdir()) == []  # owner stamps too


def test_a_demo_with_other_settings_never_waits_on_a_running_demo(tmp_path):
    from core.jobs.demo_store import DemoStore

    store = DemoStore(tmp_path / "demo")
    running = threading.Event()
    release = threading.Event()

    def first_visitor():
        with store.lock_for("a" * 64):
            running.set()
            release.wait(30)

    thread = threading.Thread(target=first_visitor)
    thread.start()
    same = None
    try:
        assert running.wait(30)
        waited = []
        with store.lock_for("b" * 64, on_wait=lambda: waited.append(True)):
            pass  # other settings: straight through (to the job queue, which reports a place in line)
        assert waited == []
        same = threading.Thread(target=lambda: store.lock_for("a" * 64, on_wait=lambda: waited.append(True))
                                .__enter__())
        same.start()
        assert _poll(lambda: waited == [True]), "a visitor with the same settings is told why they wait"
    finally:
        release.set()
        thread.join()
        if same is not None:
            same.join(30)


def test_a_compare_job_refuses_paths_outside_its_job_folder(job_root, tmp_path):
    from core.jobs.payload import CompareJob

    job_dir = new_job_dir(job_root)
    (job_dir / "model.onnx").write_bytes(b"x")
    payload = CompareJob(job_dir / "model.onnx", {"runs": 3}, ("a text",), name="m").payload(job_dir)
    assert payload == {"source": str((job_dir / "model.onnx").resolve()), "options": {"runs": 3},
                       "inputs": ["a text"], "name": "m"}
    assert CompareJob("demo", {}).payload(job_dir)["source"] == "demo"
    for job in (CompareJob(tmp_path / "elsewhere.onnx", {}), CompareJob("demo", {}, npz=tmp_path / "x.npz")):
        with pytest.raises(QuantLensError) as caught:
            job.payload(job_dir)
        assert caught.value.code == "bad_payload"


@pytest.mark.slow
def test_sigterm_to_the_cli_mid_job_stops_the_worker_and_removes_its_folder(job_root):
    """A deploy's SIGTERM to `python -m core compare`: exit 143 with one line, no worker left, no job folder."""
    import psutil

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, JOB_ROOT_ENV: str(job_root)}
    cli = subprocess.Popen([sys.executable, "-m", "core", "compare", "demo", "--runs", "200", "--quiet"], cwd=root,
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        def worker():
            children = psutil.Process(cli.pid).children(recursive=True)
            return next((c for c in children if "core.jobs.worker" in " ".join(c.cmdline())), None)

        assert _poll(lambda: worker() is not None, timeout_s=120), "the job never started"
        pid = worker().pid
        cli.send_signal(signal.SIGTERM)
        assert cli.wait(timeout=60) == 143
        assert "[terminated]" in cli.stderr.read()
        assert _poll(lambda: _gone(pid)), "the worker outlived the CLI"
        assert [p.name for p in job_root.iterdir()] == []
    finally:
        cli.kill()
        cli.wait()
