"""Threats 20-21 under load: many sessions upload and run at once through one JobQueue.

Each session spools an upload to its own job dir, validates it and runs a real onnxruntime job. Asserted:
bounded admission (some sessions are told `busy` and retry), every session ends with its own correct result,
the server's RSS stays within a budget, and no job directory or child process is left behind.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from onnx import TensorProto, helper, numpy_helper

from core.errors import QuantLensError
from core.gate.ingest import spool_upload, validate_upload
from core.jobs.runner import JobLimits, JobQueue, job_directory

SESSIONS = 8
ROUNDS = 2
RSS_BUDGET_BYTES = 300 * 2**20


def _session_model(value: int) -> bytes:
    """Y = n + value, plus a 4 MB initializer so uploads weigh something."""
    padding = numpy_helper.from_array(np.zeros(2**20, dtype=np.float32), "padding")
    graph = helper.make_graph(
        [helper.make_node("Add", ["n", "k"], ["Y"])], "g",
        [helper.make_tensor_value_info("n", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("Y", TensorProto.INT64, [])],
        initializer=[helper.make_tensor("k", TensorProto.INT64, [], [value]), padding])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


@pytest.mark.slow
def test_many_sessions_at_once_stay_bounded_and_leave_nothing_behind(tmp_path: Path):
    root = tmp_path / "jobs"
    root.mkdir(mode=0o700)
    queue = JobQueue(max_running=2, max_queued=2)
    limits = JobLimits(timeout_s=60, memory_bytes=1 * 2**30, threads=1)
    me = psutil.Process()
    # Children that were there before (e.g. Playwright's driver from the browser tests) are not ours to judge.
    before = {p.pid for p in me.children(recursive=True)}
    baseline = me.memory_info().rss
    peak = [baseline]
    stop = threading.Event()
    outcomes: dict[str, list] = {}
    busy_answers = []

    def monitor():
        while not stop.is_set():
            peak[0] = max(peak[0], me.memory_info().rss)
            time.sleep(0.02)

    def session(index: int):
        results = outcomes.setdefault(f"s{index}", [])
        for round_ in range(ROUNDS):
            value = index * 100 + round_
            while True:
                with job_directory(root) as job_dir:
                    upload = validate_upload(spool_upload(_session_model(value), job_dir), job_dir)
                    try:
                        result = queue.run(f"s{index}", "tests.security.workers:onnx_run", {"value": 1},
                                           job_dir=job_dir, limits=limits)
                    except QuantLensError as exc:
                        assert exc.code == "busy", exc.one_line()
                        busy_answers.append(exc.message)
                        time.sleep(0.05)
                        continue
                    assert upload.path.parent == job_dir
                results.append(result)
                break

    watcher = threading.Thread(target=monitor)
    watcher.start()
    started = time.perf_counter()
    threads = [threading.Thread(target=session, args=(i,)) for i in range(SESSIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    stop.set()
    watcher.join()
    elapsed = time.perf_counter() - started

    assert all(len(outcomes[f"s{i}"]) == ROUNDS for i in range(SESSIONS)), outcomes
    assert busy_answers and all("busy" in m or "line" in m or "full" in m for m in busy_answers)
    assert peak[0] - baseline < RSS_BUDGET_BYTES, f"RSS grew by {(peak[0] - baseline) / 2**20:.0f} MiB"
    assert list(root.iterdir()) == []
    assert [p for p in me.children(recursive=True)
            if p.pid not in before and p.status() != psutil.STATUS_ZOMBIE] == []
    assert queue.state().running == queue.state().queued == 0
    print(f"\n{SESSIONS} sessions x {ROUNDS} jobs in {elapsed:.1f} s, {len(busy_answers)} busy answers, "
          f"parent RSS +{(peak[0] - baseline) / 2**20:.0f} MiB")
