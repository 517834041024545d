"""Starting the app cleans up after a server that was killed: threat 27 (docs/threats.md) says at start-up,
not when the first visitor presses Run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest

from core.jobs.runner import JOB_ROOT_ENV, OWNER_SUFFIX, new_job_dir

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def _folder_of_a_dead_process(root: Path) -> Path:
    """A job folder stamped by a process that has exited (what a SIGKILLed server leaves behind)."""
    code = "import sys; from pathlib import Path; from core.jobs.runner import new_job_dir; print(new_job_dir(Path(sys.argv[1])))"
    out = subprocess.run([sys.executable, "-c", code, str(root)], cwd=Path(APP).parent, capture_output=True, text=True,
                         check=True)
    return Path(out.stdout.strip())


def test_opening_the_app_removes_job_folders_whose_server_is_gone_and_keeps_live_ones(tmp_path, monkeypatch):
    root = tmp_path / "jobs"
    root.mkdir(mode=0o700)
    monkeypatch.setenv(JOB_ROOT_ENV, str(root))
    orphan = _folder_of_a_dead_process(root)
    (orphan / "model.onnx").write_bytes(b"x" * 1000)
    live = new_job_dir(root)
    assert orphan.is_dir() and orphan.with_name(orphan.name + OWNER_SUFFIX).exists()
    st.cache_resource.clear()  # a fresh server process: its once-per-process start-up runs again
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert not orphan.exists() and not orphan.with_name(orphan.name + OWNER_SUFFIX).exists()
    assert live.is_dir()
