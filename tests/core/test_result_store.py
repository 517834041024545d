"""The shared store and the choice of queue: what a fleet relies on without Redis running.

Same upload + same settings = one content key on every host; files travel by content hash and are checked on
arrival; a result is visible whole or not at all; old entries expire; with QUANTLENS_QUEUE unset nothing changes.
The store behaviours run against both stores: the folder store and the S3 store talking to a real S3-protocol
server on 127.0.0.1 (tests/core/s3_server.py; those cases are slow: they start the server once per session).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from core.errors import QuantLensError
from core.jobs.queue_backend import job_backend
from core.jobs.result_store import FolderStore, localize, store_from_url
from core.jobs.runner import PROJECT_ROOT, JobQueue
from core.jobs.server_settings import ServerSettings
from tests.core import s3_server as s3
from tests.core.s3_server import unique_prefix

s3_server, s3_env = s3.s3_server, s3.s3_env  # the fixtures, for pytest


@pytest.fixture(params=["folder", pytest.param("s3", marks=pytest.mark.slow)])
def store(request, tmp_path):
    """Each store a fleet can be given: a shared folder, or an S3 bucket (a fresh prefix per test)."""
    if request.param == "folder":
        return FolderStore(tmp_path / "store")
    server = request.getfixturevalue("s3_env")
    return store_from_url(f"s3://{server.bucket}/{unique_prefix()}")


def _overwrite_blob(store, digest: str, data: bytes) -> None:
    """What someone with write access to the shared volume or bucket could do to a stored file."""
    if isinstance(store, FolderStore):
        store._blob(digest).write_bytes(data)
    else:
        store.client.put_object(Bucket=store.bucket, Key=store._key("blobs", digest), Body=data)


def _leftovers(store) -> list[str]:
    """Unfinished writes left in the store: the folder store's temp folders, the S3 store's unreferenced files."""
    if isinstance(store, FolderStore):
        return [p.name for p in (store.root / "tmp").iterdir()]
    keys = [item["Key"] for item in store._list("results")]
    reports = [json.loads(store.client.get_object(Bucket=store.bucket, Key=k)["Body"].read())
               for k in keys if k.endswith("/report.json")]
    referenced = {store._key("results", k.split("/")[-2], r["writer"], name)
                  for k, r in zip([k for k in keys if k.endswith("/report.json")], reports, strict=True)
                  for name in r["files"]}
    return [k for k in keys if not k.endswith("/report.json") and k not in referenced]


def _job_dir(tmp_path, name: str, model: bytes = b"model bytes"):
    job_dir = tmp_path / name
    (job_dir / "inputs").mkdir(parents=True)
    (job_dir / "model.onnx").write_bytes(model)
    (job_dir / "inputs" / "a.npz").write_bytes(b"inputs")
    (job_dir / "out").mkdir()
    (job_dir / "out" / "old.onnx").write_bytes(b"an earlier result is not an input")
    payload = {"source": str(job_dir / "model.onnx"), "inputs": {"npz": str(job_dir / "inputs" / "a.npz")},
               "options": {"runs": 3}}
    return job_dir, payload


def test_the_same_upload_and_settings_give_one_key_on_any_host(tmp_path, store):
    first = store.pack("t:f", *reversed(_job_dir(tmp_path, "web1")))
    second = store.pack("t:f", *reversed(_job_dir(tmp_path, "web2")))
    assert first.key == second.key and first.payload == second.payload
    assert first.payload["source"] == "@job/model.onnx"
    assert sorted(first.manifest) == ["inputs/a.npz", "model.onnx"]  # out/ is what a job makes, not an input
    other_settings = store.pack("t:f", {**_job_dir(tmp_path, "web3")[1], "options": {"runs": 4}},
                                tmp_path / "web3")
    other_model = store.pack("t:f", *reversed(_job_dir(tmp_path, "web4", b"another model")))
    assert len({first.key, other_settings.key, other_model.key}) == 3


def test_a_worker_gets_the_same_files_in_its_own_job_folder(tmp_path, store):
    job_dir, payload = _job_dir(tmp_path, "web")
    packed = store.pack("t:f", payload, job_dir)
    worker_dir = tmp_path / "worker-job"
    worker_dir.mkdir()
    store.unpack(packed.manifest, worker_dir)
    assert (worker_dir / "model.onnx").read_bytes() == b"model bytes"
    local = localize(packed.payload, worker_dir)
    assert local["source"] == str(worker_dir.resolve() / "model.onnx")
    assert local["inputs"]["npz"] == str(worker_dir.resolve() / "inputs" / "a.npz")


def test_a_stored_file_that_no_longer_matches_its_hash_is_refused(tmp_path, store):
    packed = store.pack("t:f", *reversed(_job_dir(tmp_path, "web")))
    _overwrite_blob(store, packed.manifest["model.onnx"], b"swapped on the shared volume")
    target = tmp_path / "worker"
    target.mkdir()
    with pytest.raises(QuantLensError) as caught:
        store.unpack(packed.manifest, target)
    assert caught.value.code == "job_inputs_missing"
    assert not (target / "model.onnx").exists()


def test_a_stored_file_that_is_gone_asks_the_user_to_run_the_job_again(tmp_path, store):
    target = tmp_path / "worker"
    target.mkdir()
    with pytest.raises(QuantLensError) as caught:
        store.unpack({"model.onnx": "e" * 64}, target)
    assert caught.value.code == "job_inputs_missing" and "run it again" in caught.value.message


def test_a_manifest_naming_a_path_outside_the_job_folder_is_refused(tmp_path, store):
    packed = store.pack("t:f", *reversed(_job_dir(tmp_path, "web")))
    target = tmp_path / "worker"
    target.mkdir()
    with pytest.raises(QuantLensError, match="outside"):
        store.unpack({"../escape": packed.manifest["model.onnx"]}, target)


def test_a_job_folder_with_a_link_is_refused(tmp_path):
    job_dir, payload = _job_dir(tmp_path, "web")
    (job_dir / "link").symlink_to("/etc/passwd")
    with pytest.raises(QuantLensError) as caught:
        FolderStore(tmp_path / "store").pack("t:f", payload, job_dir)
    assert caught.value.code == "bad_payload"


def test_a_result_comes_back_whole_with_its_files(tmp_path, store):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model_int8.onnx").write_bytes(b"int8")
    key = "a" * 64
    assert store.fetch_result(key, tmp_path / "dest") is None and not store.has_result(key)
    store.put_result(key, {"results": [1]}, out)
    store.put_result(key, {"results": ["a second writer loses"]}, out)
    assert store.fetch_result(key, tmp_path / "dest") == {"results": [1]}
    assert (tmp_path / "dest" / "model_int8.onnx").read_bytes() == b"int8"
    assert _leftovers(store) == []


@pytest.mark.parametrize("key", ["../" + "a" * 61, "A" * 64, "a" * 63, "a" * 64 + "/x"])
def test_a_result_key_that_is_not_a_content_hash_never_becomes_a_path(tmp_path, store, key):
    for call in (lambda: store.put_result(key, {}, None), lambda: store.fetch_result(key, tmp_path / "dest"),
                 lambda: store.has_result(key), lambda: store.fetch_blob(key, tmp_path / "blob")):
        with pytest.raises(ValueError, match="sha256"):
            call()


def test_an_entry_read_again_is_renewed_and_only_unused_ones_expire(tmp_path, store):
    job_dir, payload = _job_dir(tmp_path, "web")
    packed = store.pack("t:f", payload, job_dir)
    store.put_result("b" * 64, {"old": True}, None)
    store.put_result("c" * 64, {"new": True}, None)
    written = time.time()
    wait_for_clock = time.monotonic() + 60  # stores keep whole seconds (S3's LastModified): let 2 s pass
    while time.time() < written + 2.5 and time.monotonic() < wait_for_clock:
        time.sleep(0.1)
    renewed_at = time.time()
    assert store.fetch_result("c" * 64, tmp_path / "dest") == {"new": True}  # reading renews
    assert store.put_blob(job_dir / "inputs" / "a.npz") == packed.manifest["inputs/a.npz"]  # reused: renewed
    assert store.expire(1.5, now=renewed_at) == 2  # the unread result and the unused model blob
    assert not store.has_result("b" * 64) and store.has_result("c" * 64)
    worker = tmp_path / "worker"
    worker.mkdir()
    store.unpack({"inputs/a.npz": packed.manifest["inputs/a.npz"]}, worker)
    with pytest.raises(QuantLensError):
        store.unpack({"model.onnx": packed.manifest["model.onnx"]}, worker)


def test_entries_not_used_for_the_ttl_expire_and_recent_ones_stay(tmp_path):
    store = FolderStore(tmp_path / "store")
    packed = store.pack("t:f", *reversed(_job_dir(tmp_path, "web")))
    store.put_result("b" * 64, {"old": True}, None)
    store.put_result("c" * 64, {"new": True}, None)
    old = time.time() - 7200
    os.utime(store._result("b" * 64), (old, old))
    os.utime(store._blob(packed.manifest["model.onnx"]), (old, old))
    assert store.expire(3600) == 2
    assert not store.has_result("b" * 64) and store.has_result("c" * 64)
    assert store._blob(packed.manifest["inputs/a.npz"]).exists()


def test_without_a_queue_setting_the_page_gets_the_embedded_queue_and_imports_no_redis():
    assert isinstance(job_backend({}, ServerSettings()), JobQueue)
    code = ("import sys, os; from core.jobs.queue_backend import job_backend; from core.jobs.server_settings import "
            "ServerSettings; job_backend({}, ServerSettings()); print(sorted(m for m in sys.modules if m in "
            "('redis', 'rq')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("environ, words", [
    ({"QUANTLENS_QUEUE": "http://redis:6379"}, "must be a Redis URL"),
    ({"QUANTLENS_QUEUE": "redis://localhost:6379/0", "QUANTLENS_STORE": "relative/folder"}, "absolute folder"),
])
def test_a_bad_queue_or_store_setting_is_refused_with_the_variable_named(environ, words):
    with pytest.raises(QuantLensError) as caught:
        job_backend(environ, ServerSettings())
    assert caught.value.code == "invalid_setting" and words in caught.value.message


def test_an_s3_store_without_boto3_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(QuantLensError) as caught:
        store_from_url("s3://bucket/prefix")
    assert caught.value.code == "store_unavailable" and "boto3" in caught.value.message


def test_an_unreachable_queue_is_one_clear_error_for_the_user(tmp_path):
    import socket

    from core.jobs.redis_queue import RedisJobQueue

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    queue = RedisJobQueue(f"redis://127.0.0.1:{port}/0", FolderStore(tmp_path / "store"))
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    with pytest.raises(QuantLensError) as caught:
        queue.run("s", "t:f", {}, job_dir=job_dir)
    assert caught.value.code == "queue_unavailable"


@pytest.mark.parametrize("argv, words", [
    (["worker", "--queue", "http://localhost:6379"], "must be a Redis URL"),
    (["worker", "--queue", "redis://127.0.0.1:1/0"], "needs the shared store"),
])
def test_the_worker_command_refuses_a_bad_queue_or_a_missing_store_in_one_line(argv, words):
    env = {k: v for k, v in os.environ.items() if k not in ("QUANTLENS_QUEUE", "QUANTLENS_STORE")}
    done = subprocess.run([sys.executable, "-m", "core", *argv], cwd=PROJECT_ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and words in done.stderr and "[invalid_setting]" in done.stderr


def test_a_worker_runs_only_the_comparison_and_only_a_job_whose_key_matches_its_content(tmp_path, monkeypatch):
    from core.jobs.payload import TARGET
    from core.jobs.redis_worker import run_stored_job
    from core.jobs.result_store import job_key

    monkeypatch.setenv("QUANTLENS_STORE", str(tmp_path / "store"))
    monkeypatch.delenv("QUANTLENS_WORKER_TARGETS", raising=False)
    other = {"target": "tests.security.workers:echo", "payload": {}, "manifest": {}, "limits": {},
             "key": job_key("tests.security.workers:echo", {}, {})}
    assert run_stored_job(other)["code"] == "bad_payload"
    payload = {"source": "demo", "options": {}, "inputs": None, "name": None}
    forged = {"target": TARGET, "payload": payload, "manifest": {}, "limits": {}, "key": "0" * 64}
    answer = run_stored_job(forged)
    assert answer["code"] == "bad_payload" and "key" in answer["message"]
