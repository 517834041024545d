"""A session's image/audio inputs on disk, like its model upload: capped by count and bytes, one copy per content.

Why: the compare page kept every image/WAV a visitor dropped in the uploader in the server's memory for the whole
session (40 x 15 MB images held +1,150 MB although only 32 are ever used), and a replayed upload was held once per
replay. Here each file is streamed to the session's folder in chunks as it arrives (so the page can release
Streamlit's copy at once), named by its SHA-256 (a replay of the same bytes is recognised and not stored again),
and refused past `max_files` or `max_bytes` with one sentence. The folder belongs to the session's SessionFiles,
so it goes when the session ends.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from core.errors import QuantLensError

CHUNK_BYTES = 1 << 20
MEDIA_SUFFIXES = (".png", ".jpg", ".jpeg", ".wav", ".zip")


@dataclass(frozen=True)
class KeptMedia:
    label: str  # the visitor's file name, shown and used as the input's name; never used for a path
    path: Path  # <folder>/<sha256><suffix>
    sha256: str
    size_bytes: int


def check_upload_size(name: str, size_bytes: int, max_bytes: int) -> None:
    """Refuse an upload larger than its limit on the server, whatever the browser's widget allowed.

    The uploader's size limit is checked by the browser only; a replayed upload request carries any size up to
    Streamlit's server-wide maxUploadSize.
    """
    if size_bytes > max_bytes:
        raise QuantLensError("upload_too_large", f"{name[:80]} is {size_bytes / 2**20:.1f} MiB; the limit for this "
                                                 f"upload is {max_bytes / 2**20:g} MiB.")


class MediaStore:
    """Image/WAV/zip inputs of one session in `folder` (created 0700 if missing)."""

    def __init__(self, folder: Path, *, max_files: int, max_bytes: int, max_file_bytes: int) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.max_files, self.max_bytes, self.max_file_bytes = max_files, max_bytes, max_file_bytes
        self._items: list[KeptMedia] = []
        self._lock = threading.Lock()

    def items(self) -> list[KeptMedia]:
        with self._lock:
            return [m for m in self._items if m.path.is_file()]

    @property
    def total_bytes(self) -> int:
        return sum(m.size_bytes for m in self.items())

    def add(self, label: str, stream: BinaryIO, size_bytes: int) -> KeptMedia:
        """Spool one uploaded file; the same bytes again return the kept copy instead of a second one."""
        check_upload_size(label, size_bytes, self.max_file_bytes)
        suffix = Path(label).suffix.lower()
        if suffix not in MEDIA_SUFFIXES:
            raise QuantLensError("bad_inputs", f"{label[:80]} is neither a PNG/JPEG image, a WAV file nor a .zip of them.")
        tmp = self.folder / f".incoming-{os.urandom(8).hex()}"
        digest, written = hashlib.sha256(), 0
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in iter(lambda: stream.read(CHUNK_BYTES), b""):
                    written += len(chunk)
                    check_upload_size(label, written, self.max_file_bytes)  # the stream, not the declared size
                    digest.update(chunk)
                    out.write(chunk)
            sha = digest.hexdigest()
            with self._lock:
                for kept in self._items:
                    if kept.sha256 == sha and kept.path.is_file():
                        tmp.unlink()
                        return kept  # a replay, or the same file dropped twice: held once
                if len(self._items) >= self.max_files:
                    raise QuantLensError("inputs_too_many", f"At most {self.max_files} images or audio files are used; "
                                                           f"{label[:80]} was not kept. Remove some first.")
                if sum(m.size_bytes for m in self._items) + written > self.max_bytes:
                    raise QuantLensError("inputs_too_large", f"The images and audio files kept for this session would "
                                                             f"pass {self.max_bytes / 2**20:g} MiB; {label[:80]} was "
                                                             "not kept. Remove some first.")
                path = self.folder / f"{sha}{suffix}"
                os.replace(tmp, path)
                kept = KeptMedia(label=Path(label).name[:200] or f"input{suffix}", path=path, sha256=sha,
                                 size_bytes=written)
                self._items.append(kept)
                return kept
        finally:
            tmp.unlink(missing_ok=True)

    def clear(self) -> None:
        with self._lock:
            items, self._items = self._items, []
        for kept in items:
            kept.path.unlink(missing_ok=True)
