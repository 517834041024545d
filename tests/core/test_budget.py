"""All sessions together share one disk budget: past it the answer is "The server is busy; try again in a minute."
and a session's images/audio are kept on disk, capped, one copy per content (core/jobs/budget.py, media_store.py)."""

from __future__ import annotations

import io
import threading

import pytest

from core.errors import QuantLensError
from core.jobs.budget import BUSY_MESSAGE, DiskBudget, MemoryBudget, disk_usage_bytes
from core.jobs.media_store import MediaStore

MIB = 2**20


def _filler(path, mib: int):
    path.write_bytes(b"\1" * (mib * MIB))  # real bytes: a sparse file would not use the disk it claims
    return path


def test_the_budget_counts_what_is_on_disk_under_the_job_root(tmp_path):
    (tmp_path / "a").mkdir()
    _filler(tmp_path / "a" / "model.onnx", 3)
    _filler(tmp_path / "b.bin", 1)
    (tmp_path / "link").symlink_to(tmp_path / "a" / "model.onnx")  # a link is not counted twice
    assert 4 * MIB <= disk_usage_bytes(tmp_path) < 4 * MIB + 64 * 1024


def test_a_full_disk_budget_answers_server_busy_in_one_line_and_frees_when_files_go(tmp_path):
    budget = DiskBudget(tmp_path, 8 * MIB)
    held = _filler(tmp_path / "held.bin", 6)
    with pytest.raises(QuantLensError) as caught, budget.reserve(4 * MIB, "its disk is full"):
        pass
    assert caught.value.code == "server_busy"
    assert caught.value.one_line() == f"{BUSY_MESSAGE} (its disk is full) [server_busy]"
    assert BUSY_MESSAGE == "The server is busy; try again in a minute."
    held.unlink()  # a session ended: its folder went
    with budget.reserve(4 * MIB) as free:
        assert 3 * MIB < free <= 4 * MIB


def test_two_writers_arriving_together_cannot_both_take_the_last_space(tmp_path):
    budget = DiskBudget(tmp_path, 10 * MIB)
    first_in, release = threading.Event(), threading.Event()
    outcome = {}

    def first():
        with budget.reserve(6 * MIB):
            first_in.set()
            release.wait(60)

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert first_in.wait(60)
        try:
            with budget.reserve(6 * MIB):
                outcome["second"] = "admitted"
        except QuantLensError as exc:
            outcome["second"] = exc.code
        assert budget.use().reserved_bytes == 6 * MIB
    finally:
        release.set()
        thread.join(60)
    assert outcome == {"second": "server_busy"}
    assert budget.use().reserved_bytes == 0  # released when the writer is done
    with budget.reserve(6 * MIB):
        pass


def test_the_memory_budget_refuses_past_its_limit_only():
    MemoryBudget(100).check(100)
    with pytest.raises(QuantLensError) as caught:
        MemoryBudget(100).check(101, "uploads held in memory are at the server's limit")
    assert caught.value.code == "server_busy" and caught.value.message.startswith(BUSY_MESSAGE)


def _store(tmp_path, **kw) -> MediaStore:
    return MediaStore(tmp_path / "media", **{"max_files": 3, "max_bytes": 10 * MIB, "max_file_bytes": 4 * MIB, **kw})


def test_media_are_spooled_to_disk_and_the_same_bytes_replayed_are_kept_once(tmp_path):
    store = _store(tmp_path)
    png = b"\x89PNG\r\n\x1a\n" + b"x" * 1000
    first = store.add("cat.png", io.BytesIO(png), len(png))
    again = store.add("cat (copy).png", io.BytesIO(png), len(png))  # a replayed upload request
    assert again == first and len(store.items()) == 1
    assert first.path.read_bytes() == png and first.path.parent == tmp_path / "media"
    assert first.path.name == f"{first.sha256}.png" and first.label == "cat.png"
    assert sorted(p.name for p in (tmp_path / "media").iterdir()) == [first.path.name]  # no temporary left


def test_media_past_the_count_or_the_bytes_or_the_file_limit_are_refused_in_one_line(tmp_path):
    store = _store(tmp_path)
    for i in range(3):
        store.add(f"{i}.wav", io.BytesIO(bytes([i]) * 100), 100)
    with pytest.raises(QuantLensError) as caught:
        store.add("fourth.wav", io.BytesIO(b"4" * 100), 100)
    assert caught.value.code == "inputs_too_many" and "At most 3" in caught.value.message

    store = _store(tmp_path / "b", max_files=32)
    for i in range(2):
        store.add(f"{i}.png", io.BytesIO(bytes([i]) * (4 * MIB)), 4 * MIB)
    with pytest.raises(QuantLensError) as caught:
        store.add("big.png", io.BytesIO(b"\7" * (3 * MIB)), 3 * MIB)
    assert caught.value.code == "inputs_too_large" and "10 MiB" in caught.value.message

    # a replayed request past the widget's limit: refused by its declared size, and by its stream if it lies
    for declared in (5 * MIB, 100):
        with pytest.raises(QuantLensError) as caught:
            store.add("huge.jpg", io.BytesIO(b"\0" * (5 * MIB)), declared)
        assert caught.value.code == "upload_too_large" and "\n" not in caught.value.message
    with pytest.raises(QuantLensError) as caught:
        store.add("notes.txt", io.BytesIO(b"hi"), 2)
    assert caught.value.code == "bad_inputs"
    assert len(store.items()) == 2 and not [p for p in (tmp_path / "b" / "media").iterdir() if p.name.startswith(".")]
    store.clear()
    assert store.items() == [] and list((tmp_path / "b" / "media").iterdir()) == []


def test_an_operator_sets_the_global_budgets_in_their_documented_units():
    from core.jobs.server_settings import ServerSettings, server_settings

    assert (ServerSettings().max_disk_bytes, ServerSettings().max_upload_memory_bytes) == (3 * 2**30, 600 * MIB)
    s = server_settings({"QUANTLENS_MAX_DISK_GB": "2.5", "QUANTLENS_MAX_UPLOAD_MEMORY_MB": "300",
                         "QUANTLENS_MAX_MEDIA_FILES": "8", "QUANTLENS_MAX_MEDIA_MB": "64"})
    assert s.max_disk_bytes == int(2.5 * 2**30) and s.max_upload_memory_bytes == 300 * MIB
    assert (s.max_media_files, s.max_media_bytes) == (8, 64 * MIB)
    for variable, value in (("QUANTLENS_MAX_DISK_GB", "0"), ("QUANTLENS_MAX_MEDIA_FILES", "33")):
        with pytest.raises(QuantLensError) as caught:
            server_settings({variable: value})
        assert caught.value.code == "invalid_setting" and variable in caught.value.message
