"""The compare page under the server's global budgets (AppTest): what a visitor sees when an upload is larger than
its widget allows, when the server's disk is full, and what happens to images/audio (kept on disk, once)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from bench._shared.onnx_models import build_gemm_relu_onnx
from core.jobs.runner import JOB_ROOT_ENV

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "compare.py")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
BUSY = "The server is busy; try again in a minute."


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A fresh server process as far as the page can tell: its own job root, settings read again."""
    root = tmp_path / "jobs"
    root.mkdir(mode=0o700)
    monkeypatch.setenv(JOB_ROOT_ENV, str(root))
    st.cache_resource.clear()
    yield root
    st.cache_resource.clear()  # the next test reads the default settings again


def _errors(at: AppTest) -> list[str]:
    """The error boxes as the visitor reads them (the page escapes Markdown in echoed values)."""
    return [e.value.replace("\\", "") for e in at.error]


def _upload_page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["src"] = "upload"
    return at.run()


def test_a_model_upload_replayed_past_the_limit_is_refused_by_the_server(server, monkeypatch, tmp_path):
    monkeypatch.setenv("QUANTLENS_MAX_UPLOAD_MB", "1")
    at = _upload_page()
    at.file_uploader(key="cmp_model_file").upload("big.onnx", b"\0" * (2 * 2**20))  # the widget says 1 MB
    at.run()
    assert not at.exception
    assert _errors(at) == ["big.onnx was refused: big.onnx is 2.0 MiB; the limit for this upload is 1 MiB. "
                           "[upload_too_large]"]
    assert "cmp_upload" not in at.session_state
    assert [p for p in server.rglob("*") if p.is_file()] == []  # refused before a byte was spooled


def test_when_all_sessions_filled_the_disk_an_upload_is_told_the_server_is_busy(server, monkeypatch, tmp_path):
    monkeypatch.setenv("QUANTLENS_MAX_DISK_GB", str(64 / 1024))  # 64 MiB for every session together
    (server / "other-sessions.bin").write_bytes(b"\1" * (70 * 2**20))
    model = build_gemm_relu_onnx(tmp_path / "m.onnx").read_bytes()
    at = _upload_page()
    at.file_uploader(key="cmp_model_file").upload("m.onnx", model)
    at.run()
    assert not at.exception
    assert any(BUSY in e and e.endswith("[server_busy]") for e in _errors(at)), _errors(at)
    assert "cmp_upload" not in at.session_state
    (server / "other-sessions.bin").unlink()  # other sessions ended: the same upload is kept now
    at.file_uploader(key="cmp_model_file_1").upload("m.onnx", model)
    at.run()
    assert Path(at.session_state["cmp_upload"]["path"]).read_bytes() == model


def test_images_are_kept_on_disk_once_and_the_uploader_is_emptied(server, tmp_path):
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(2000)
    at = _upload_page()
    at.file_uploader(key="cmp_media_files").set_value([("a.png", png, "image/png"), ("again.png", png, "image/png"),
                                                      ("b.wav", b"RIFF" + os.urandom(500), "audio/wav")])
    at.run()
    assert not at.exception
    kept = at.session_state["cmp_media"].items()
    assert [m.label for m in kept] == ["a.png", "b.wav"]  # the same bytes twice are held once
    assert kept[0].path.read_bytes() == png and kept[0].path.is_relative_to(server)
    assert at.file_uploader(key="cmp_media_files_1").value == []  # a fresh, empty uploader
    assert any("2 image/audio file(s) kept" in c.value for c in at.caption)
    # a replay of the same file in a later request is still held once
    at.file_uploader(key="cmp_media_files_1").set_value([("a.png", png, "image/png")])
    at.run()
    assert len(at.session_state["cmp_media"].items()) == 2
    next(b for b in at.button if b.label == "Remove the images/audio").click().run()
    assert at.session_state["cmp_media"].items() == [] and not kept[0].path.exists()


def test_images_past_the_sessions_count_are_refused_in_one_line_each(server, monkeypatch):
    monkeypatch.setenv("QUANTLENS_MAX_MEDIA_FILES", "2")
    at = _upload_page()
    at.file_uploader(key="cmp_media_files").set_value(
        [(f"{i}.png", b"\x89PNG" + bytes([i]) * 100, "image/png") for i in range(3)])
    at.run()
    assert len(at.session_state["cmp_media"].items()) == 2
    errors = _errors(at)
    assert len(errors) == 1 and "2.png was not kept" in errors[0] and errors[0].endswith("[inputs_too_many]")


def test_an_inputs_file_replayed_past_the_uploaders_limit_is_refused_by_the_server(server):
    from pages.compare import MAX_INPUTS_UPLOAD_MB

    at = _upload_page()
    size = (MAX_INPUTS_UPLOAD_MB + 1) * 2**20  # the widget would refuse it; a replayed request skips the widget
    at.file_uploader(key="cmp_inputs_file").upload("arrays.npz", b"\0" * size)
    at.run()
    assert not at.exception
    assert any(f"arrays.npz is {MAX_INPUTS_UPLOAD_MB + 1}.0 MiB" in e and e.endswith("[upload_too_large]")
               for e in _errors(at)), _errors(at)


def test_a_text_inputs_file_past_2_mb_is_refused_in_one_line(server):
    at = _upload_page()
    at.file_uploader(key="cmp_inputs_file").upload("texts.txt", b"a line\n" * 400_000)  # 2.8 MB of text
    at.run()
    assert not at.exception
    assert any(e.endswith("[inputs_too_large]") and "2 MiB" in e for e in _errors(at)), _errors(at)


def test_a_closed_tabs_folders_are_removed_after_the_grace_period(tmp_path, monkeypatch):
    from core.jobs.runner import new_job_dir
    from core.jobs.session import SessionFiles
    from pages import uploads

    root = tmp_path / "jobs"
    root.mkdir(mode=0o700)
    connected = {"open-tab": True, "closed-tab": False}
    monkeypatch.setattr(uploads, "_session_connected", lambda sid: connected[sid])
    registry = uploads.SessionRegistry(grace_s=0)
    open_files, closed_files = SessionFiles(), SessionFiles()
    open_folder, closed_folder = new_job_dir(root), new_job_dir(root)
    open_files.put("upload", open_folder)
    closed_files.put("upload", closed_folder)
    registry.register("open-tab", open_files)
    registry.register("closed-tab", closed_files)
    assert registry.sweep() == 1
    assert open_folder.is_dir() and not closed_folder.exists() and closed_files.closed and not open_files.closed


def test_uploads_past_the_servers_memory_budget_are_told_the_server_is_busy(server, monkeypatch):
    monkeypatch.setenv("QUANTLENS_MAX_UPLOAD_MEMORY_MB", "16")  # all sessions' uploads held in memory together
    at = _upload_page()
    at.file_uploader(key="cmp_model_file").upload("m.onnx", b"\0" * (17 * 2**20))
    at.run()
    assert any(BUSY in e and e.endswith("[server_busy]") for e in _errors(at)), _errors(at)
    assert [p for p in server.rglob("*") if p.is_file()] == []


def test_a_replayed_upload_request_is_not_held_twice(monkeypatch):
    """A session that replays its upload request leaves a copy no widget refers to: it goes after the grace
    period, the copy its widget uses stays, and other sessions' uploads are untouched."""
    from types import SimpleNamespace

    from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
    from streamlit.runtime.uploaded_file_manager import UploadedFileRec

    from pages import uploads

    manager = MemoryUploadedFileManager("/_stcore/upload_file")
    monkeypatch.setattr(uploads, "_upload_manager", lambda: (SimpleNamespace(session_id="me"), manager))
    for session, file_id in (("me", "sent"), ("me", "replayed"), ("someone-else", "theirs")):
        manager.add_file(session, UploadedFileRec(file_id, "model.onnx", "application/octet-stream", b"\0" * 1000))
    assert uploads.held_upload_bytes() == 3000
    assert uploads.release_unclaimed_uploads(["sent"]) == 0  # within the grace period: may still be on its way
    assert uploads.release_unclaimed_uploads(["sent"], grace_s=0) == 1
    assert [r.file_id for r in manager.get_files("me", ["sent", "replayed"])] == ["sent"]
    assert manager.get_files("someone-else", ["theirs"]) and uploads.held_upload_bytes() == 2000
