"""A real S3-protocol server on 127.0.0.1 for the S3 store tests: moto's standalone server (`moto[s3]` + Flask,
requirements-dev.txt) in its own process, with request signing checked.

Why moto's server and not moto's in-process mock: the store must be exercised over HTTP exactly as against a real
bucket (boto3's endpoint from AWS_ENDPOINT_URL_S3, SigV4 signatures, multipart transfers, error bodies), and
worker processes started by the Redis tests must reach the same bucket. Authentication is switched on after the
first three requests (moto's INITIAL_NO_AUTH_ACTION_COUNT), which create an IAM user, its access key and its
policy; from then on a wrong secret or an unknown key id is refused by the server, as a real store would.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

BUCKET = "quantlens-test-store"
_POLICY = json.dumps({"Version": "2012-10-17",
                      "Statement": [{"Effect": "Allow", "Action": ["s3:*", "iam:*"], "Resource": "*"}]})
_SETUP_REQUESTS = 3  # create_user, create_access_key, put_user_policy: the only unsigned-checked requests


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key_id: str
    secret_access_key: str
    bucket: str = BUCKET

    def environ(self) -> dict[str, str]:
        """What a QuantLens host is given: endpoint and credentials, and no region (the store's default applies)."""
        return {"AWS_ENDPOINT_URL_S3": self.endpoint, "AWS_ACCESS_KEY_ID": self.access_key_id,
                "AWS_SECRET_ACCESS_KEY": self.secret_access_key, "AWS_CONFIG_FILE": "/nonexistent",
                "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}

    def iam(self):
        import boto3

        return boto3.client("iam", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.access_key_id, aws_secret_access_key=self.secret_access_key)

    def client(self, **overrides):
        import boto3

        kwargs = {"endpoint_url": self.endpoint, "region_name": "us-east-1", "aws_access_key_id": self.access_key_id,
                  "aws_secret_access_key": self.secret_access_key, **overrides}
        return boto3.client("s3", **kwargs)


AWS_VARIABLES_TO_CLEAR = ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE", "AWS_SESSION_TOKEN",
                          "AWS_ENDPOINT_URL")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_s3_server(timeout_s: float = 60) -> Iterator[S3Server]:
    """Start moto's server on a free port, make a user with an access key and one bucket; stop it at the end."""
    import boto3

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {"PATH": "/usr/bin:/bin", "INITIAL_NO_AUTH_ACTION_COUNT": str(_SETUP_REQUESTS), "MOTO_PORT": str(port)}
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(endpoint + "/moto-api/", timeout=5):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto's S3 server did not start") from None
                time.sleep(0.1)
        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="AKIA" + "0" * 16, aws_secret_access_key="setup")
        iam.create_user(UserName="quantlens")
        key = iam.create_access_key(UserName="quantlens")["AccessKey"]
        iam.put_user_policy(UserName="quantlens", PolicyName="store", PolicyDocument=_POLICY)
        server = S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
        server.client().create_bucket(Bucket=server.bucket)  # signed with the new key: authentication is on
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def unique_prefix(name: str = "t") -> str:
    return f"{name}-{secrets.token_hex(6)}"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One real S3-protocol server per test session (imported by the modules that need it)."""
    pytest.importorskip("moto.server", reason="moto's S3 server is a test dependency (requirements-dev.txt)")
    with running_s3_server() as server:
        yield server


@pytest.fixture
def s3_env(s3_server, monkeypatch) -> S3Server:
    """This process set up as an S3-store host: endpoint and credentials in the environment, no region."""
    for name in AWS_VARIABLES_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_server.environ().items():
        monkeypatch.setenv(name, value)
    return s3_server
