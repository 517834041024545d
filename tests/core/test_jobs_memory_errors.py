"""Specification: a job that dies of its memory limit is reported as the memory limit, naming the limit and the
flag or variable that raises it, even when the runtime crashed (SIGSEGV) instead of raising MemoryError."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import QuantLensError
from core.jobs.runner import JobLimits, job_directory, run_job

W = "tests.security.workers"
LIMITS = JobLimits(timeout_s=30, memory_bytes=600 * 2**20, threads=1)


@pytest.fixture
def job_root(tmp_path: Path) -> Path:
    root = tmp_path / "jobs"
    root.mkdir(mode=0o700)
    return root


def _error(target: str, payload: dict, job_root: Path) -> QuantLensError:
    with job_directory(job_root) as job_dir, pytest.raises(QuantLensError) as caught:
        run_job(f"{W}:{target}", payload, job_dir=job_dir, limits=LIMITS)
    return caught.value


def test_a_crash_as_the_job_reaches_its_memory_limit_is_reported_as_the_memory_limit(job_root):
    error = _error("segfault_near_limit", {"mib": 520}, job_root)
    assert error.code == "resource_limit_memory"
    assert "0.6 GiB" in error.message and "SIGSEGV" in error.message
    assert "--memory-gib" in error.message and "QUANTLENS_JOB_MEMORY_GB" in error.message


def test_a_crash_far_below_the_limit_stays_a_runtime_crash(job_root):
    error = _error("segfault_near_limit", {"mib": 1}, job_root)
    assert error.code == "model_crashed_runtime" and "SIGSEGV" in error.message


def test_a_memory_error_names_the_flag_and_variable_that_raise_the_limit(job_root):
    error = _error("allocate", {"gib": 4}, job_root)
    assert error.code == "resource_limit_memory" and "--memory-gib" in error.message
