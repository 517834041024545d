"""Write a file another process may read at any moment: to a temporary name first, then rename it into place.

Why: a reader polling for a file (the parent waiting for a worker's result, a sweep reading an owner stamp, a test
waiting for a pid) can open it between its creation and the last write and read nothing or half of it (CI read
`int('')` from a pgid file this way). os.replace is atomic on one filesystem, so a reader sees either no file or
the whole content. Standard library only (the worker, the runner and core/compare's report writer use it).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

TMP_MARK = ".tmp-"  # temporary names are `.<name>.tmp-<hex>`: hidden, never a name any reader looks for


def _temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}{TMP_MARK}{secrets.token_hex(4)}")


def write_bytes_atomic(path: Path | str, data: bytes, *, mode: int = 0o666) -> Path:
    """Write `data` to `path` so that no reader ever sees a partial file; returns `path`.

    The temporary file is created exclusively (a planted link is never followed) and removed if writing fails;
    `mode` is masked by the umask, as with open().
    """
    path = Path(path)
    tmp = _temporary_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def write_text_atomic(path: Path | str, text: str, *, encoding: str = "utf-8", mode: int = 0o666) -> Path:
    return write_bytes_atomic(path, text.encode(encoding), mode=mode)


def write_json_atomic(path: Path | str, data: Any, *, mode: int = 0o666, **dumps: Any) -> Path:
    return write_text_atomic(path, json.dumps(data, **dumps), mode=mode)
