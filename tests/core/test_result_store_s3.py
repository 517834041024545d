"""The S3 store against a real S3-protocol server (moto's, on 127.0.0.1, with signatures checked): what an
operator who sets QUANTLENS_STORE=s3://bucket/prefix relies on beyond what both stores share
(tests/core/test_result_store.py runs those behaviours on both).

A misconfigured store is one clear line naming the bucket, never a traceback and never a credential; a second
writer of the same result cannot replace the first; a damaged result file is never handed to a user; expiry
crosses listing pages and touches nothing but the store's own keys.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from core.errors import QuantLensError
from core.jobs.result_store import REPORT, S3Store, store_from_url
from core.jobs.runner import PROJECT_ROOT
from tests.core import s3_server as s3
from tests.core.s3_server import free_port, unique_prefix

s3_server, s3_env = s3.s3_server, s3.s3_env  # the fixtures, for pytest

pytestmark = pytest.mark.slow


def _store(server, prefix: str | None = None) -> S3Store:
    return store_from_url(f"s3://{server.bucket}/{prefix or unique_prefix()}")


def _keys(store: S3Store) -> list[str]:
    listed = store.client.list_objects_v2(Bucket=store.bucket, Prefix=store.prefix)
    return sorted(item["Key"][len(store.prefix):] for item in listed.get("Contents", []))


def _one_clear_line(caught, server) -> str:
    message = caught.value.message
    assert caught.value.code == "store_unavailable", caught.value
    assert "\n" not in message and "Traceback" not in message
    assert server.secret_access_key not in message and server.access_key_id not in message
    return message


def test_without_a_region_setting_the_store_works_and_signs_for_us_east_1(s3_env):
    assert "AWS_DEFAULT_REGION" not in os.environ and "AWS_REGION" not in os.environ
    store = _store(s3_env)
    assert store.client.meta.region_name == "us-east-1"
    store.put_result("a" * 64, {"ok": 1}, None)
    assert store.has_result("a" * 64)


def test_a_missing_bucket_is_one_clear_error_naming_it(s3_env, tmp_path):
    store = store_from_url("s3://no-such-quantlens-bucket/jobs")
    (tmp_path / "model.onnx").write_bytes(b"m")
    for call in (lambda: store.has_result("a" * 64), lambda: store.put_blob(tmp_path / "model.onnx"),
                 lambda: store.fetch_result("a" * 64, tmp_path / "dest"), store.check):
        with pytest.raises(QuantLensError) as caught:
            call()
        message = _one_clear_line(caught, s3_env)
        assert "'no-such-quantlens-bucket'" in message and "does not exist" in message


@pytest.mark.parametrize("credentials", ["wrong secret", "unknown key id"])
def test_refused_credentials_are_one_clear_error_that_shows_no_credential(s3_env, monkeypatch, tmp_path,
                                                                         credentials):
    if credentials == "wrong secret":
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-" + s3_env.secret_access_key[:8])
    else:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA" + "Q" * 16)
    store = _store(s3_env)
    (tmp_path / "model.onnx").write_bytes(b"m")
    for call in (lambda: store.has_result("a" * 64), lambda: store.put_blob(tmp_path / "model.onnx")):
        with pytest.raises(QuantLensError) as caught:
            call()
        message = _one_clear_line(caught, s3_env)
        assert "credentials" in message and "not-the-secret" not in message and "AKIAQQQQ" not in message


def test_an_unreachable_endpoint_is_one_clear_error(s3_env, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    with pytest.raises(QuantLensError) as caught:
        _store(s3_env).has_result("a" * 64)
    assert "cannot be reached" in _one_clear_line(caught, s3_env)


@pytest.mark.parametrize("variable, value", [("AWS_ENDPOINT_URL_S3", "localhost:9000"),
                                             ("AWS_ENDPOINT_URL_S3", "http://[bad"),
                                             ("AWS_PROFILE", "no-such-profile")])
def test_an_unusable_endpoint_or_profile_setting_is_named_in_one_line(s3_env, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(QuantLensError) as caught:
        _store(s3_env)
    assert caught.value.code == "invalid_setting" and variable in caught.value.message
    assert "\n" not in caught.value.message and s3_env.secret_access_key not in caught.value.message


def test_a_host_without_credentials_is_told_what_to_set(s3_env, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance metadata service on a test machine
    with pytest.raises(QuantLensError) as caught:
        _store(s3_env).has_result("a" * 64)
    assert "AWS_ACCESS_KEY_ID" in _one_clear_line(caught, s3_env)


def test_a_worker_refuses_to_start_on_a_bucket_it_cannot_use_in_one_line(s3_env):
    done = subprocess.run([sys.executable, "-m", "core", "worker", "--queue", "redis://127.0.0.1:1/0", "--store",
                           "s3://no-such-quantlens-bucket/jobs"], cwd=PROJECT_ROOT, env=dict(os.environ),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "[store_unavailable]" in done.stderr, done.stderr
    assert "does not exist" in done.stderr and s3_env.secret_access_key not in done.stderr


@pytest.mark.parametrize("url", ["s3://bucket/../other", "s3://bucket/a/./b", "s3://bucket/a b", "s3:///prefix"])
def test_a_store_url_whose_prefix_could_leave_its_folder_is_refused(url):
    with pytest.raises(QuantLensError) as caught:
        store_from_url(url)
    assert caught.value.code == "invalid_setting" and "QUANTLENS_STORE" in caught.value.message


def test_a_second_writer_of_the_same_result_loses_and_leaves_nothing_behind(s3_env, tmp_path, monkeypatch):
    store = _store(s3_env)
    out = tmp_path / "out"
    out.mkdir()
    (out / "model_int8.onnx").write_bytes(b"first")
    store.put_result("a" * 64, {"writer": 1}, out)
    first_keys = _keys(store)
    (out / "model_int8.onnx").write_bytes(b"second")
    late = _store(s3_env, store.prefix.rstrip("/"))
    monkeypatch.setattr(late, "_exists", lambda key: False)  # it checked before the first writer finished
    late.put_result("a" * 64, {"writer": 2}, out)  # the conditional PUT of report.json is refused by the server
    assert _keys(store) == first_keys
    assert store.fetch_result("a" * 64, tmp_path / "dest") == {"writer": 1}
    assert (tmp_path / "dest" / "model_int8.onnx").read_bytes() == b"first"


def test_a_result_is_invisible_until_its_report_is_written_last(s3_env, tmp_path):
    store = _store(s3_env)
    key = "d" * 64
    # what a writer killed between its files and its report leaves behind
    store.client.put_object(Bucket=store.bucket, Key=store._key("results", key, "0" * 16, "model_int8.onnx"),
                            Body=b"half")
    assert not store.has_result(key)
    assert store.fetch_result(key, tmp_path / "dest") is None
    assert store.expire(3600) == 0  # a writer may still be at work
    assert store.expire(0, now=10**10) == 1 and _keys(store) == []  # abandoned files go once old


def test_a_result_file_swapped_in_the_bucket_is_never_handed_to_the_user(s3_env, tmp_path):
    store = _store(s3_env)
    out = tmp_path / "out"
    out.mkdir()
    (out / "model_int8.onnx").write_bytes(b"int8")
    store.put_result("a" * 64, {"results": [1]}, out)
    stored = [k for k in _keys(store) if k.endswith("model_int8.onnx")]
    store.client.put_object(Bucket=store.bucket, Key=store.prefix + stored[0], Body=b"tampered")
    assert store.fetch_result("a" * 64, tmp_path / "dest") is None
    assert not (tmp_path / "dest" / "model_int8.onnx").exists()
    assert not store.has_result("a" * 64)  # withdrawn: the job runs again and its new result is served
    store.put_result("a" * 64, {"results": [2]}, out)
    assert store.fetch_result("a" * 64, tmp_path / "dest") == {"results": [2]}
    assert (tmp_path / "dest" / "model_int8.onnx").read_bytes() == b"int8"


def test_a_result_whose_files_a_lifecycle_rule_removed_is_withdrawn_and_made_again(s3_env, tmp_path):
    store = _store(s3_env)
    out = tmp_path / "out"
    out.mkdir()
    (out / "model_int8.onnx").write_bytes(b"int8")
    store.put_result("a" * 64, {"results": [1]}, out)
    stored = [k for k in _keys(store) if k.endswith("model_int8.onnx")]
    store.client.delete_object(Bucket=store.bucket, Key=store.prefix + stored[0])
    assert store.fetch_result("a" * 64, tmp_path / "dest") is None and not store.has_result("a" * 64)


def test_expiry_reads_every_listing_page_and_touches_only_the_stores_own_keys(s3_env, tmp_path):
    store = _store(s3_env)
    store.page_size = 2  # S3 lists 1000 keys a page; cross page boundaries with a few
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.onnx").write_bytes(b"a")
    for digit in "0123456":
        store.put_result(digit * 64, {"n": digit}, out)
    (tmp_path / "blob").write_bytes(b"blob")
    store.put_blob(tmp_path / "blob")
    foreign = ["notes.txt", "blobs/not-a-hash", "results/readme.md"]
    for name in foreign:
        store.client.put_object(Bucket=store.bucket, Key=store.prefix + name, Body=b"someone else's")
    bare = S3Store(s3_env.bucket, "", client=store.client)  # an empty prefix: the whole bucket
    assert bare.expire(0, now=10**10) == 0  # other tests' entries live under their own prefixes, not bare ones
    assert store.expire(0, now=10**10) == 8  # 7 results (report + file each) and 1 blob
    assert _keys(store) == sorted(foreign)


def test_a_stored_report_is_json_naming_each_file_with_its_hash(s3_env, tmp_path):
    import hashlib
    import json

    store = _store(s3_env)
    out = tmp_path / "out"
    out.mkdir()
    (out / "model_int8.onnx").write_bytes(b"int8")
    store.put_result("a" * 64, {"results": [1]}, out)
    body = store.client.get_object(Bucket=store.bucket, Key=store._key("results", "a" * 64, REPORT))["Body"].read()
    stored = json.loads(body)
    assert stored["report"] == {"results": [1]}
    assert stored["files"] == {"model_int8.onnx": hashlib.sha256(b"int8").hexdigest()}


def test_a_model_bigger_than_one_upload_part_travels_in_parts_and_reuse_renews_it(s3_env, tmp_path):
    store = _store(s3_env)
    model = tmp_path / "model.onnx"
    model.write_bytes(os.urandom(20 * 2**20))  # boto3 switches to multipart above 8 MiB
    digest = store.put_blob(model)
    blob_key = store._key("blobs", digest)
    first = store.client.head_object(Bucket=store.bucket, Key=blob_key)
    assert first["ETag"].strip('"').endswith("-3")  # three parts of 8 MiB
    written = first["LastModified"].timestamp()
    clock_limit = time.monotonic() + 60  # LastModified has whole seconds: let one pass
    while time.time() < written + 1.5 and time.monotonic() < clock_limit:
        time.sleep(0.1)
    assert store.put_blob(model) == digest  # the same upload again: not sent again, renewed in the bucket
    assert store.client.head_object(Bucket=store.bucket, Key=blob_key)["LastModified"].timestamp() > written
    store.fetch_blob(digest, tmp_path / "back.onnx")
    assert (tmp_path / "back.onnx").read_bytes() == model.read_bytes()


def test_a_key_allowed_only_under_its_prefix_can_run_the_whole_store(s3_env, monkeypatch, tmp_path):
    """Least privilege as an operator would grant it: object actions under the prefix, listing only with that
    prefix. HeadBucket needs the unconditioned list permission, so the store never relies on it."""
    import json

    prefix = unique_prefix("narrow")
    bucket = s3_env.bucket
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
         "Resource": f"arn:aws:s3:::{bucket}/{prefix}/*"},
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}",
         "Condition": {"StringLike": {"s3:prefix": [f"{prefix}/*", f"{prefix}/"]}}}]}
    iam = s3_env.iam()
    iam.create_user(UserName=prefix)
    key = iam.create_access_key(UserName=prefix)["AccessKey"]
    iam.put_user_policy(UserName=prefix, PolicyName="store", PolicyDocument=json.dumps(policy))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    store = _store(s3_env, prefix)
    with pytest.raises(Exception, match="403"):
        store.client.head_bucket(Bucket=bucket)
    with pytest.raises(Exception, match="AccessDenied"):
        store.client.put_object(Bucket=bucket, Key="elsewhere/x", Body=b"")
    store.check()
    model = tmp_path / "model.onnx"
    model.write_bytes(b"model")
    digest = store.put_blob(model)
    assert store.put_blob(model) == digest  # renewal copies the object onto itself: Get + Put under the prefix
    store.fetch_blob(digest, tmp_path / "back.onnx")
    out = tmp_path / "out"
    out.mkdir()
    (out / "model_int8.onnx").write_bytes(b"int8")
    store.put_result("a" * 64, {"results": [1]}, out)
    assert store.fetch_result("a" * 64, tmp_path / "dest") == {"results": [1]}
    assert store.expire(0, now=10**10) == 2


@pytest.mark.parametrize("body", [b"{not json", b"[1]", b'{"report": {}, "writer": "../..", "files": {}}',
                                  b'{"report": {}, "writer": "0123456789abcdef", "files": {"../../x": "' +
                                  b"0" * 64 + b'"}}'])
def test_a_damaged_report_is_withdrawn_so_the_job_runs_again(s3_env, tmp_path, body):
    store = _store(s3_env)
    store.client.put_object(Bucket=store.bucket, Key=store._key("results", "a" * 64, REPORT), Body=body)
    assert store.has_result("a" * 64)
    assert store.fetch_result("a" * 64, tmp_path / "dest") is None
    assert not store.has_result("a" * 64) and not (tmp_path / "x").exists()
    store.put_result("a" * 64, {"again": True}, None)
    assert store.fetch_result("a" * 64, tmp_path / "dest") == {"again": True}


def test_the_region_comes_from_aws_region_when_aws_default_region_is_unset(s3_env, monkeypatch):
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    assert _store(s3_env).client.meta.region_name == "eu-west-3"
