"""Shared storage for jobs that run on other hosts: upload bytes and finished results, keyed by content hash.

Why: with QUANTLENS_QUEUE set, a compare job may run on any worker host, so the model a user uploaded must reach
that host, and the report plus quantized files must come back to whichever web process serves the user. Both go
through one store every host can reach:
- `blobs/<sha256>`: a file of a job folder (the validated upload, an inputs file), stored once by its content;
- `results/<job key>/`: `report.json` plus the job's `out/` files. The job key is the sha256 of the target,
  the payload (paths relative to the job folder) and the content hashes of every input file, so the same upload
  with the same settings is one key and is served from the store without running again.

FolderStore (default): a folder on a shared volume or NFS mount (`QUANTLENS_STORE=/path`). A result becomes
visible by one atomic rename of a completed folder, so a reader never sees half of one. S3Store: any
S3-compatible bucket (`QUANTLENS_STORE=s3://bucket/prefix`) through boto3, imported only then (optional: `pip
install -r requirements-s3.txt`); credentials and endpoint come from boto3's usual environment (AWS_*,
AWS_ENDPOINT_URL_S3). A result becomes visible by one conditional PUT of its report.json, written last.
Both expire entries not used for `QUANTLENS_STORE_TTL_H` hours (reading a result renews it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.errors import QuantLensError

STORE_ENV = "QUANTLENS_STORE"
STORE_TTL_ENV = "QUANTLENS_STORE_TTL_H"
DEFAULT_TTL_S = 24 * 3600.0
REPORT = "report.json"
JOB_PREFIX = "@job/"  # how a path inside the job folder is written in a stored payload
_HEX64 = re.compile(r"[0-9a-f]{64}")
_SAFE_NAME = re.compile(r"[\w][\w.\-]{0,199}")
_CHUNK = 2**20
SKIPPED_DIRS = ("out",)  # what a job writes, never its inputs


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check_key(key: str) -> str:
    if not _HEX64.fullmatch(key):
        raise ValueError("a store key is a sha256 hex digest")
    return key


@dataclass(frozen=True)
class PackedJob:
    """A job made portable: payload with `@job/` paths, {relative path: blob hash}, and its content key."""

    target: str
    payload: dict
    manifest: dict[str, str]
    key: str


def _rewrite(value, old: str, new: str):
    """Every string in a JSON value that is `old` or starts with `old/`, with that prefix replaced by `new`."""
    if isinstance(value, str):
        if value == old.rstrip("/"):
            return new.rstrip("/")
        return new + value[len(old):] if value.startswith(old) else value
    if isinstance(value, list):
        return [_rewrite(v, old, new) for v in value]
    if isinstance(value, dict):
        return {k: _rewrite(v, old, new) for k, v in value.items()}
    return value


def job_key(target: str, payload: dict, manifest: dict[str, str]) -> str:
    """The content hash of a job: same target, settings and input bytes -> same key on every host."""
    blob = json.dumps([target, payload, sorted(manifest.items())], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def localize(payload: dict, job_dir: Path) -> dict:
    """A stored payload with its `@job/` paths pointing into this host's job folder."""
    return _rewrite(payload, JOB_PREFIX, str(Path(job_dir).resolve()) + "/")


class ResultStore:
    """What both stores offer; the queue and the worker use nothing else."""

    def put_blob(self, path: Path) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def fetch_blob(self, digest: str, dest: Path) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def has_result(self, key: str) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def put_result(self, key: str, report: dict, out_dir: Path | None) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def fetch_result(self, key: str, dest: Path) -> dict | None:  # pragma: no cover - interface
        raise NotImplementedError

    def expire(self, older_than_s: float, now: float | None = None) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def check(self) -> None:
        """Refuse a store this host cannot use, in one clear line (a worker calls it before taking jobs)."""

    # ---------------------------------------------------------------- shared by both stores
    def pack(self, target: str, payload: dict, job_dir: Path) -> PackedJob:
        """Store every input file of `job_dir` by content and make the payload's paths relative to it.

        Links are refused (a validated upload never holds one); the job's own `out/` folder is not an input.
        """
        root = Path(job_dir).resolve()
        manifest: dict[str, str] = {}
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(root)
            if relative.parts[0] in SKIPPED_DIRS or relative.parts[0].startswith("."):
                continue
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                raise QuantLensError("bad_payload", "A job folder may not hold links.")
            if stat.S_ISREG(info.st_mode):
                manifest[relative.as_posix()] = self.put_blob(path)
        portable = _rewrite(payload, str(root) + "/", JOB_PREFIX)
        return PackedJob(target, portable, manifest, job_key(target, portable, manifest))

    def unpack(self, manifest: dict[str, str], job_dir: Path) -> None:
        """Recreate a packed job's input files inside a fresh job folder of this host."""
        root = Path(job_dir).resolve()
        for relative, digest in manifest.items():
            dest = (root / relative).resolve()
            if not dest.is_relative_to(root) or dest == root:
                raise QuantLensError("bad_payload", "A stored job names a file outside its job folder.")
            dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.fetch_blob(_check_key(digest), dest)


def _atomic_copy(src: Path, dest: Path) -> None:
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.tmp")
    try:
        shutil.copyfile(src, tmp, follow_symlinks=False)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _out_files(out_dir: Path | None) -> Iterator[Path]:
    if out_dir is None or not Path(out_dir).is_dir():
        return
    for item in sorted(Path(out_dir).iterdir()):
        if item.is_file() and not item.is_symlink() and _SAFE_NAME.fullmatch(item.name) and item.name != REPORT:
            yield item


class FolderStore(ResultStore):
    """A folder every host mounts (volume, NFS). Writers build in a temp name and rename into place."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        for sub in ("blobs", "results", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)

    def _blob(self, digest: str) -> Path:
        return self.root / "blobs" / digest[:2] / digest

    def put_blob(self, path: Path) -> str:
        digest = _sha256_file(path)
        target = self._blob(digest)
        if target.exists():
            os.utime(target)  # in use again: not expired
            return digest
        target.parent.mkdir(exist_ok=True, mode=0o700)
        _atomic_copy(Path(path), target)
        return digest

    def fetch_blob(self, digest: str, dest: Path) -> None:
        source = self._blob(_check_key(digest))
        if not source.is_file():
            raise QuantLensError("job_inputs_missing", "The job's input files are no longer in the shared store; "
                                                       "run it again.")
        shutil.copyfile(source, dest)
        if _sha256_file(dest) != digest:  # a store is shared: never run bytes other than the ones hashed
            dest.unlink()
            raise QuantLensError("job_inputs_missing", "A stored input file does not match its hash.")

    def _result(self, key: str) -> Path:
        return self.root / "results" / _check_key(key)

    def has_result(self, key: str) -> bool:
        return (self._result(key) / REPORT).is_file()

    def put_result(self, key: str, report: dict, out_dir: Path | None) -> None:
        final = self._result(key)
        if (final / REPORT).is_file():
            return  # another worker finished the same job first: the same bytes
        tmp = self.root / "tmp" / f"{key}.{secrets.token_hex(6)}"
        tmp.mkdir(mode=0o700)
        try:
            for item in _out_files(out_dir):
                shutil.copyfile(item, tmp / item.name)
            (tmp / REPORT).write_text(json.dumps(report), encoding="utf-8")
            with contextlib.suppress(FileExistsError, OSError):
                os.rename(tmp, final)  # atomic; fails if another writer's folder is already there
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def fetch_result(self, key: str, dest: Path) -> dict | None:
        """Copy a stored result's files into `dest` and return its report, or None if there is none."""
        folder = self._result(key)
        try:
            report = json.loads((folder / REPORT).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            for item in _out_files(folder):
                shutil.copyfile(item, dest / item.name)
        except FileNotFoundError:  # expired while we copied
            return None
        with contextlib.suppress(OSError):
            os.utime(folder)
        return report if isinstance(report, dict) else None

    def expire(self, older_than_s: float, now: float | None = None) -> int:
        """Remove blobs and results not written or read for `older_than_s` seconds (and stale temp folders)."""
        cutoff = (time.time() if now is None else now) - older_than_s
        removed = 0
        candidates = [*(self.root / "results").iterdir(), *(self.root / "tmp").iterdir()]
        for shard in (self.root / "blobs").iterdir():
            if shard.is_dir():
                candidates += list(shard.iterdir())
        for entry in candidates:
            try:
                if entry.lstat().st_mtime >= cutoff:
                    continue
            except FileNotFoundError:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed += 1
        return removed


_S3_PREFIX = re.compile(r"[\w\-][\w.\-]*(?:/[\w\-][\w.\-]*)*")
_S3_AUTH_CODES = frozenset({"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
                            "InvalidToken", "AllAccessDisabled", "AuthorizationHeaderMalformed"})
_S3_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})


def _s3_client():
    """boto3's S3 client from the usual AWS_* environment, with bounded timeouts and retries and a region default.

    Why the defaults: boto3 waits 60 s per connection attempt; a store that cannot be reached should be one clear
    error within a minute, not a page that hangs for minutes. S3-compatible servers (MinIO, Ceph, moto) sign with
    us-east-1 unless told otherwise, so that is the region when AWS_DEFAULT_REGION / AWS_REGION / a profile name none.
    """
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise QuantLensError("store_unavailable", f"{STORE_ENV}=s3://... needs boto3: pip install -r "
                             "requirements-s3.txt.") from None
    from botocore.exceptions import BotoCoreError

    config = Config(connect_timeout=10, read_timeout=120, retries={"max_attempts": 3, "mode": "standard"})
    try:
        session = boto3.session.Session()
        region = session.region_name or os.environ.get("AWS_REGION", "").strip() or "us-east-1"
        return session.client("s3", region_name=region, config=config)
    except (ValueError, BotoCoreError) as exc:  # e.g. an endpoint without http://, an unknown AWS_PROFILE
        raise QuantLensError("invalid_setting", f"{STORE_ENV}=s3://...: this host's AWS settings are not usable "
                             f"({type(exc).__name__}); AWS_ENDPOINT_URL_S3 must be a full URL such as "
                             "http://host:9000, and AWS_PROFILE a profile that exists.") from None


def _client_error_code(exc: BaseException) -> tuple[str, str]:
    """(error code, operation) of a botocore ClientError, also when boto3's transfer layer wrapped it."""
    seen = 0
    while exc is not None and seen < 5:
        response = getattr(exc, "response", None)
        if isinstance(response, dict) and "Error" in response:
            return str(response["Error"].get("Code", "")), str(getattr(exc, "operation_name", ""))
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return "", ""


class S3Store(ResultStore):
    """An S3-compatible bucket through boto3 (optional dependency).

    Layout under the prefix: `blobs/<sha256>` and `results/<key>/report.json` plus `results/<key>/<writer>/<file>`.
    A result becomes visible by one conditional PUT of report.json (If-None-Match: *), written after its files, which
    sit in a folder of their own per writer: a reader sees a whole result or none, and a second writer of the same
    key loses and removes its own files. report.json names each file with its sha256, checked on arrival.
    Every failure of the store itself (missing bucket, refused credentials, unreachable endpoint) is one
    `store_unavailable` line naming the bucket, never the credentials. Expiry lists only this store's own keys
    (page by page); on a large bucket a lifecycle rule on the prefix is cheaper (DEPLOY.md).
    """

    page_size = 1000  # list_objects_v2 page (S3's maximum); tests lower it to cross page boundaries

    def __init__(self, bucket: str, prefix: str = "", client=None) -> None:
        self.client = client if client is not None else _s3_client()
        self.bucket, self.prefix = bucket, prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._bucket_checked = False

    # ---------------------------------------------------------------- errors
    def _where(self) -> str:
        from urllib.parse import urlsplit

        endpoint = urlsplit(str(getattr(self.client.meta, "endpoint_url", "") or ""))
        host = endpoint.hostname or "?"
        return f"bucket {self.bucket!r} at {host}" + (f":{endpoint.port}" if endpoint.port else "")

    def _unavailable(self, exc: BaseException) -> QuantLensError:
        from botocore import exceptions as bce

        code, operation = _client_error_code(exc)
        if code == "NoSuchBucket" or (code in _S3_NOT_FOUND and operation == "HeadBucket"):
            why = "does not exist"
        elif code in _S3_AUTH_CODES:
            why = "refused this host's credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)"
        elif code:
            why = f"answered {code}"
        elif isinstance(exc, (bce.NoCredentialsError, bce.PartialCredentialsError)):
            why = "has no credentials on this host (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
        elif isinstance(exc, (bce.ConnectionError, bce.HTTPClientError)):
            why = "cannot be reached (check AWS_ENDPOINT_URL_S3 and the network)"
        else:
            why = f"failed ({type(exc).__name__})"
        return QuantLensError("store_unavailable", f"The shared store ({STORE_ENV}), {self._where()}, {why}.")

    @contextlib.contextmanager
    def _calls(self):
        """Map boto3/botocore failures to one store_unavailable error (no traceback, no credentials)."""
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except (BotoCoreError, ClientError, Boto3Error) as exc:
            raise self._unavailable(exc) from None

    def _ready(self) -> None:
        """Check once that the bucket exists and answers these credentials (a HEAD cannot tell a missing bucket
        from a missing key, so every later 404 means a missing key). A one-key listing of the prefix, not
        HeadBucket: a least-privilege policy may allow listing only under the prefix, and a missing bucket then
        says NoSuchBucket in the body instead of a bare 404."""
        if not self._bucket_checked:
            with self._calls():
                self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1)
            self._bucket_checked = True

    # ---------------------------------------------------------------- keys
    def _key(self, *parts: str) -> str:
        return self.prefix + "/".join(parts)

    def _missing(self, exc: BaseException) -> bool:
        return _client_error_code(exc)[0] in _S3_NOT_FOUND

    def _exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        self._ready()
        with self._calls():
            try:
                self.client.head_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if self._missing(exc):
                    return False
                raise
        return True

    def _renew(self, key: str) -> None:
        """Copy an object onto itself: S3 has no utime, and expiry goes by LastModified."""
        with self._calls():
            self.client.copy({"Bucket": self.bucket, "Key": key}, self.bucket, key,
                             ExtraArgs={"MetadataDirective": "REPLACE"})

    # ---------------------------------------------------------------- blobs
    def put_blob(self, path: Path) -> str:
        digest = _sha256_file(path)
        key = self._key("blobs", digest)
        if self._exists(key):
            self._renew(key)  # in use again: not expired
        else:
            with self._calls():
                self.client.upload_file(str(path), self.bucket, key)
        return digest

    def fetch_blob(self, digest: str, dest: Path) -> None:
        from botocore.exceptions import ClientError

        key = self._key("blobs", _check_key(digest))
        self._ready()
        with self._calls():
            try:
                self.client.download_file(self.bucket, key, str(dest))
            except ClientError as exc:
                if not self._missing(exc):
                    raise
                raise QuantLensError("job_inputs_missing", "The job's input files are no longer in the shared "
                                                           "store; run it again.") from None
        if _sha256_file(dest) != digest:
            dest.unlink()
            raise QuantLensError("job_inputs_missing", "A stored input file does not match its hash.")

    # ---------------------------------------------------------------- results
    def has_result(self, key: str) -> bool:
        return self._exists(self._key("results", _check_key(key), REPORT))

    def put_result(self, key: str, report: dict, out_dir: Path | None) -> None:
        from botocore.exceptions import ClientError

        report_key = self._key("results", _check_key(key), REPORT)
        if self._exists(report_key):
            return  # another worker finished the same job first: the same bytes
        writer = secrets.token_hex(8)
        files = {item.name: _sha256_file(item) for item in _out_files(out_dir)}
        written: list[str] = []
        body = json.dumps({"report": report, "writer": writer, "files": files}).encode("utf-8")
        try:
            with self._calls():
                for name in files:
                    written.append(self._key("results", key, writer, name))
                    self.client.upload_file(str(Path(out_dir) / name), self.bucket, written[-1])
                try:  # visible in one step, and only if no other writer got there first
                    self.client.put_object(Bucket=self.bucket, Key=report_key, Body=body, IfNoneMatch="*",
                                           ContentType="application/json")
                except ClientError as exc:
                    if _client_error_code(exc)[0] not in ("PreconditionFailed", "ConditionalRequestConflict"):
                        raise
                    self._delete(written)  # the first writer's result stands
        except QuantLensError:
            with contextlib.suppress(Exception):
                self._delete(written)
            raise

    def fetch_result(self, key: str, dest: Path) -> dict | None:
        """Download a stored result's files into `dest` and return its report, or None if there is none (or it
        expired or was damaged meanwhile: the job then simply runs again)."""
        from botocore.exceptions import ClientError

        report_key = self._key("results", _check_key(key), REPORT)
        self._ready()
        with self._calls():
            try:
                data = json.loads(self.client.get_object(Bucket=self.bucket, Key=report_key)["Body"].read())
            except ClientError as exc:
                if self._missing(exc):
                    return None
                raise
            except ValueError:  # a damaged report: withdrawn, like damaged files
                return self._discard(report_key)
        if not isinstance(data, dict):
            return self._discard(report_key)
        files, writer = data.get("files"), str(data.get("writer", ""))
        if not isinstance(files, dict) or not re.fullmatch(r"[0-9a-f]{16}", writer):
            return self._discard(report_key)
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True, mode=0o700)
        for name, digest in files.items():
            if not _SAFE_NAME.fullmatch(name) or name == REPORT or not _HEX64.fullmatch(str(digest)):
                return self._discard(report_key)
            with self._calls():
                try:
                    self.client.download_file(self.bucket, self._key("results", key, writer, name), str(dest / name))
                except ClientError as exc:
                    if self._missing(exc):  # expired while we copied, or by a lifecycle rule
                        return self._discard(report_key)
                    raise
            if _sha256_file(dest / name) != digest:  # swapped in the bucket: never hand those bytes to a user
                (dest / name).unlink()
                return self._discard(report_key)
        with contextlib.suppress(QuantLensError):
            self._renew(report_key)
        report = data.get("report")
        return report if isinstance(report, dict) else None

    def _discard(self, report_key: str) -> None:
        """Withdraw a result whose files are gone or damaged, so the job runs again and writes it anew (with the
        report left in place, a worker would find the result 'done' and the user would never get it)."""
        with contextlib.suppress(QuantLensError):
            self._delete([report_key])

    # ---------------------------------------------------------------- expiry
    def _delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch = [{"Key": k} for k in keys[start:start + 1000]]
            with self._calls():
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    def _list(self, sub: str) -> Iterator[dict]:
        self._ready()
        paginator = self.client.get_paginator("list_objects_v2")
        with self._calls():
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(sub) + "/",
                                           PaginationConfig={"PageSize": self.page_size}):
                yield from page.get("Contents", [])

    def check(self) -> None:
        self._ready()

    def expire(self, older_than_s: float, now: float | None = None) -> int:
        """Remove blobs and results not written or read for `older_than_s` seconds; returns how many entries.

        Only this store's own keys are touched (`blobs/<sha256>`, `results/<key>/...`), whatever else shares the
        bucket or prefix. A result goes whole, by its report.json's time (renewed on each read); files of a writer
        that never finished go once they are older than the cutoff.
        """
        cutoff = (time.time() if now is None else now) - older_than_s
        doomed: list[str] = []
        removed = 0
        for item in self._list("blobs"):
            name = item["Key"][len(self._key("blobs")) + 1:]
            if _HEX64.fullmatch(name) and item["LastModified"].timestamp() < cutoff:
                doomed.append(item["Key"])
                removed += 1
        results: dict[str, list[dict]] = {}
        for item in self._list("results"):
            key = item["Key"][len(self._key("results")) + 1:].split("/", 1)[0]
            if _HEX64.fullmatch(key):
                results.setdefault(key, []).append(item)
        for key, items in results.items():
            reports = [i for i in items if i["Key"] == self._key("results", key, REPORT)]
            if reports and reports[0]["LastModified"].timestamp() < cutoff:
                doomed += [i["Key"] for i in items]
                removed += 1
            elif not reports:
                stale = [i["Key"] for i in items if i["LastModified"].timestamp() < cutoff]
                doomed += stale
                removed += bool(stale)
        self._delete(doomed)
        return removed


def store_from_url(url: str) -> ResultStore:
    """`/path` (or `file:///path`) -> FolderStore; `s3://bucket/prefix` -> S3Store."""
    if url.startswith("s3://"):
        bucket, _, prefix = url[5:].partition("/")
        if not bucket:
            raise QuantLensError("invalid_setting", f"{STORE_ENV}={url!r} names no bucket.")
        prefix = prefix.strip("/")
        if prefix and (not _S3_PREFIX.fullmatch(prefix) or any(p in (".", "..") for p in prefix.split("/"))):
            raise QuantLensError("invalid_setting", f"{STORE_ENV}: the prefix after the bucket may hold only "
                                 "letters, digits, '.', '-', '_' and '/' between names (no '..').")
        return S3Store(bucket, prefix)
    path = url.removeprefix("file://")
    if not path.startswith("/"):
        raise QuantLensError("invalid_setting", f"{STORE_ENV}={url!r} must be an absolute folder or s3://bucket/prefix.")
    return FolderStore(Path(path))


def store_ttl_s(environ) -> float:
    raw = environ.get(STORE_TTL_ENV, "").strip()
    if not raw:
        return DEFAULT_TTL_S
    try:
        hours = float(raw)
    except ValueError:
        raise QuantLensError("invalid_setting", f"{STORE_TTL_ENV}={raw!r} is not a number.") from None
    if not 0.01 <= hours <= 24 * 365:
        raise QuantLensError("invalid_setting", f"{STORE_TTL_ENV}={raw!r} is out of the range this setting allows.")
    return hours * 3600
