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
install boto3`); credentials and endpoint come from boto3's usual environment (AWS_*, AWS_ENDPOINT_URL_S3).
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

    def expire(self, older_than_s: float) -> int:  # pragma: no cover - interface
        raise NotImplementedError

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

    def expire(self, older_than_s: float) -> int:
        """Remove blobs and results not written or read for `older_than_s` seconds (and stale temp folders)."""
        cutoff = time.time() - older_than_s
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


class S3Store(ResultStore):
    """An S3-compatible bucket through boto3 (optional dependency). A result is visible once report.json is.

    Expiry by `expire` lists the prefix; on a large bucket prefer a lifecycle rule on the prefix (DEPLOY.md).
    """

    def __init__(self, bucket: str, prefix: str = "", client=None) -> None:
        if client is None:
            try:
                import boto3
            except ImportError:
                raise QuantLensError("store_unavailable", f"{STORE_ENV}=s3://... needs boto3 (pip install boto3)."
                                     ) from None
            client = boto3.client("s3")
        self.client, self.bucket, self.prefix = client, bucket, prefix.strip("/") + "/" if prefix.strip("/") else ""

    def _key(self, *parts: str) -> str:
        return self.prefix + "/".join(parts)

    def _exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:  # botocore.exceptions.ClientError; botocore is not imported at top level
            if getattr(exc, "response", {}).get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def put_blob(self, path: Path) -> str:
        digest = _sha256_file(path)
        key = self._key("blobs", digest)
        if not self._exists(key):
            self.client.upload_file(str(path), self.bucket, key)
        return digest

    def fetch_blob(self, digest: str, dest: Path) -> None:
        key = self._key("blobs", _check_key(digest))
        if not self._exists(key):
            raise QuantLensError("job_inputs_missing", "The job's input files are no longer in the shared store; "
                                                       "run it again.")
        self.client.download_file(self.bucket, key, str(dest))
        if _sha256_file(dest) != digest:
            dest.unlink()
            raise QuantLensError("job_inputs_missing", "A stored input file does not match its hash.")

    def has_result(self, key: str) -> bool:
        return self._exists(self._key("results", _check_key(key), REPORT))

    def put_result(self, key: str, report: dict, out_dir: Path | None) -> None:
        files = [item.name for item in _out_files(out_dir)]
        for name in files:
            self.client.upload_file(str(Path(out_dir) / name), self.bucket, self._key("results", key, name))
        body = json.dumps({"report": report, "files": files}).encode("utf-8")
        self.client.put_object(Bucket=self.bucket, Key=self._key("results", _check_key(key), REPORT), Body=body)

    def fetch_result(self, key: str, dest: Path) -> dict | None:
        if not self.has_result(key):
            return None
        body = self.client.get_object(Bucket=self.bucket, Key=self._key("results", key, REPORT))["Body"].read()
        data = json.loads(body)
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True, mode=0o700)
        for name in data.get("files", []):
            if _SAFE_NAME.fullmatch(name) and name != REPORT:
                self.client.download_file(self.bucket, self._key("results", key, name), str(dest / name))
        return data.get("report")

    def expire(self, older_than_s: float) -> int:
        cutoff = time.time() - older_than_s
        removed = 0
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                if item["LastModified"].timestamp() < cutoff:
                    self.client.delete_object(Bucket=self.bucket, Key=item["Key"])
                    removed += 1
        return removed


def store_from_url(url: str) -> ResultStore:
    """`/path` (or `file:///path`) -> FolderStore; `s3://bucket/prefix` -> S3Store."""
    if url.startswith("s3://"):
        bucket, _, prefix = url[5:].partition("/")
        if not bucket:
            raise QuantLensError("invalid_setting", f"{STORE_ENV}={url!r} names no bucket.")
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
