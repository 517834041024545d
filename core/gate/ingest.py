"""Decide whether an uploaded model may be opened at all, before any ML library touches its bytes.

A model is a program (ONNX, PyTorch and Hugging Face all say so), so this module is the gate: pure Python,
no onnx / onnxruntime / torch / transformers import, and every rejection is a QuantLensError with a stable
code from docs/threats.md and one plain sentence. What passes is written under `dest_dir` with names we choose.

Accepted inputs, detected by content (never by the client's file name):
- a single `.onnx` file with every tensor inside it (copied to `dest_dir/model.onnx`);
- a `.zip` of a Hugging Face folder with safetensors weights (extracted to `dest_dir/model/`).

Zip policy: the whole archive is refused on the first bad entry, nothing is "sanitised". Entries are checked
by name and mode before a byte is written, then streamed out while the decompressed bytes are counted (the
sizes in the headers are never trusted), then each file's content is checked (pickle/zip magic, safetensors
headers, shard index, config bounds, remote-code hooks). Extraction happens in a private staging folder that
is removed on any failure, so a rejected upload leaves nothing behind.

Allowed files (case-sensitive, at the folder root unless noted) and why: the files `transformers` and
`sentence-transformers` need to rebuild a model from safetensors without running code:
config.json, generation_config.json, *.safetensors, model.safetensors.index.json, tokenizer.json,
tokenizer_config.json, special_tokens_map.json, added_tokens.json, vocab.txt, vocab.json, merges.txt,
tokenizer.model / spiece.model / sentencepiece.bpe.model (SentencePiece protobuf, parsed only in the worker),
preprocessor_config.json, modules.json, sentence_bert_config.json, config_sentence_transformers.json, data_config.json,
<n>_Pooling/config.json, <n>_Dense/config.json + model.safetensors, <n>_Normalize/ (empty), and inert
documentation (README.md, LICENSE*, .gitattributes). `__MACOSX/` and `.DS_Store` entries written by macOS
are skipped (never extracted). Everything else is refused, with a specific code for pickles, code and
nested archives.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

from core.config_bounds import KEY_BOUNDS
from core.errors import QuantLensError
from core.gate import safetensors_header
from core.gate.onnx_scan import scan_onnx_file

CHUNK_BYTES = 1 << 20
ONNX_NAME = "model.onnx"
FOLDER_NAME = "model"
SPOOL_NAME = "upload.bin"


@dataclass(frozen=True)
class UploadLimits:
    """Caps that bound disk, memory and CPU spent on one upload. Tests pass tiny values."""

    max_upload_bytes: int = 2 * 2**30  # the spooled upload itself (the page's own cap is lower)
    max_total_bytes: int = 4 * 2**30  # decompressed bytes of all entries, counted while streaming
    max_file_bytes: int = 4 * 2**30  # decompressed bytes of one entry
    max_entries: int = 256
    max_ratio: int = 200  # decompressed / compressed, checked once an entry passes ratio_floor_bytes
    ratio_floor_bytes: int = 8 * 2**20
    max_json_bytes: int = 2 * 2**20  # config-like JSON files
    max_tokenizer_bytes: int = 64 * 2**20  # tokenizer.json, vocab/merges files (largest real: Gemma 3's, 33 MB)
    max_json_total_bytes: int = 96 * 2**20  # all JSON files of one upload together
    max_json_containers: int = 50_000  # lists + objects in one config-like JSON file
    max_tokenizer_containers: int = 2_000_000  # in one tokenizer JSON (merges as pairs, added tokens)
    max_added_tokens: int = 100_000
    max_header_bytes: int = safetensors_header.DEFAULT_MAX_HEADER_BYTES


@dataclass(frozen=True)
class ValidatedUpload:
    kind: str  # "onnx" | "hf_folder"
    path: Path  # dest_dir/model.onnx, or the extracted folder dest_dir/model
    files: tuple[str, ...]  # relative POSIX paths of what is there
    total_bytes: int
    sha256: str = ""  # of the uploaded bytes: the key for any cache (never the client's file name)


# Bounds on config.json values: one table with the calculator (core/config_bounds.py), keyed by config key.
CONFIG_BOUNDS: dict[str, int] = KEY_BOUNDS
# Parameters a config implies at the very least (embedding + two hidden x hidden projections per layer);
# weights smaller than this, by more than SLACK, mean the library would invent the rest in memory.
PARAM_SLACK = 4

_SAFE_COMPONENT = re.compile(r"[A-Za-z0-9._-]{1,255}")
_ROOT_FILES = frozenset({
    "config.json", "generation_config.json", "model.safetensors.index.json", "tokenizer.json",
    "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.txt", "vocab.json",
    "merges.txt", "tokenizer.model", "spiece.model", "sentencepiece.bpe.model", "preprocessor_config.json",
    "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json", "data_config.json",
    "README.md", "LICENSE", "LICENSE.txt", "LICENSE.md", ".gitattributes",
})
_MODULE_DIR = re.compile(r"\d{1,2}_(Pooling|Dense|Normalize)")
_MODULE_FILES = {"Pooling": {"config.json"}, "Dense": {"config.json", "model.safetensors"}, "Normalize": set()}
_SKIPPED = re.compile(r"__MACOSX/.*|(.*/)?\.DS_Store", re.DOTALL)
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib", ".dill", ".mar", ".pt2", ".npy",
                    ".npz", ".h5", ".keras", ".msgpack", ".ot")
_CODE_SUFFIXES = (".py", ".pyc", ".pyo", ".pyi", ".pyd", ".pyw", ".so", ".dll", ".dylib", ".sh", ".ipynb", ".exe",
                  ".js", ".pth.py")
_ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".zst", ".lz4", ".whl", ".egg")
_TOKENIZER_TEXT = frozenset({"tokenizer.json", "vocab.txt", "vocab.json", "merges.txt", "tokenizer.model",
                             "spiece.model", "sentencepiece.bpe.model"})
_TOKENIZER_JSON = frozenset({"tokenizer.json", "tokenizer_config.json", "added_tokens.json", "special_tokens_map.json"})
_ST_MODULE_TYPES = frozenset(f"sentence_transformers.models.{n}" for n in ("Transformer", "Pooling", "Dense",
                                                                            "Normalize"))
_REMOTE_CODE_KEYS = frozenset({"auto_map", "custom_pipelines", "trust_remote_code"})

# Magic bytes at the start of a file (the first 512 bytes are enough for all of them).
_ARCHIVE_MAGIC = (
    (b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"), (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"Rar!\x1a\x07", "rar"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"\x04\x22\x4d\x18", "lz4"),
)
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")


def _error(code: str, message: str) -> QuantLensError:
    return QuantLensError(code, message)


# --------------------------------------------------------------------------------------------- sniffing
def sniff(head: bytes) -> str:
    """Name the container a file really is from its first bytes: zip, tar, pickle, gzip, ..., or "other"."""
    if head.startswith(_ZIP_MAGIC):
        return "zip"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    for magic, name in _ARCHIVE_MAGIC:
        if head.startswith(magic):
            return name
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    if head.startswith(b"\x93NUMPY"):
        return "numpy"
    return "other"


def _zip_is_torch(head: bytes) -> bool:
    """A torch.save file is a zip whose first entry is `<name>/data.pkl` (or `.../version`)."""
    if len(head) < 30 or not head.startswith(b"PK\x03\x04"):
        return False
    name_len, = struct.unpack("<H", head[26:28])
    name = head[30 : 30 + name_len]
    return name.endswith((b".pkl", b"/version", b"/byteorder", b".data/version"))


def _refuse_container(kind: str, head: bytes, label: str) -> None:
    """Refuse pickles and archives found where a model file or an upload should be."""
    if kind == "pickle" or (kind == "zip" and _zip_is_torch(head)):
        raise _error("unsafe_format_pickle",
                     f"{label} is a pickle (PyTorch .bin/.pt) file, which can run code when loaded; upload safetensors "
                     "weights instead.")
    if kind in ("zip", "tar", "gzip", "bzip2", "xz", "7z", "rar", "zstd", "lz4"):
        raise _error("unsupported_archive", f"{label} is a {kind} archive; only one .zip with plain files is accepted.")


# --------------------------------------------------------------------------------------------- spooling
def spool_upload(data: bytes | BinaryIO, job_dir: Path, *, max_bytes: int = UploadLimits.max_upload_bytes) -> Path:
    """Write an upload to `job_dir/upload.bin` in chunks and return the path.

    The client's file name is never used; the file is created exclusively (no following of a planted link) with
    mode 0600; a stream longer than `max_bytes` is refused and the partial file removed. The page should drop
    its reference to the uploaded bytes right after this returns.
    """
    target = Path(job_dir) / SPOOL_NAME
    written = 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            if isinstance(data, (bytes, bytearray, memoryview)):
                chunks: Iterable[bytes] = (bytes(data[i : i + CHUNK_BYTES]) for i in range(0, len(data), CHUNK_BYTES))
            else:
                chunks = iter(lambda: data.read(CHUNK_BYTES), b"")
            for chunk in chunks:
                written += len(chunk)
                if written > max_bytes:
                    raise _error("upload_too_large", f"The upload is larger than the {max_bytes // 2**20} MiB limit.")
                out.write(chunk)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target


# --------------------------------------------------------------------------------------------- names
def _check_entry_name(name: str) -> tuple[str, ...]:
    """Split a zip entry name into safe components or refuse it (`archive_path_forbidden`)."""
    shown = name[:80]
    if not name or len(name.encode("utf-8", "surrogateescape")) > 255:
        raise _error("archive_path_forbidden",
                     f"The archive has an entry with an empty name or one longer than 255 bytes ({shown!r}).")
    if "\\" in name or "\x00" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise _error("archive_path_forbidden",
                     f"The archive entry {shown!r} uses an absolute or Windows path; only plain relative names are "
                     "accepted.")
    parts = tuple(p for p in name.rstrip("/").split("/"))
    for part in parts:
        if part in ("", ".", ".."):
            raise _error("archive_path_forbidden", f"The archive entry {shown!r} climbs out of its folder.")
        if not _SAFE_COMPONENT.fullmatch(part):
            raise _error("archive_path_forbidden",
                         f"The archive entry {shown!r} has characters outside letters, digits, '.', '_' and '-'.")
    if len(parts) > 8:
        raise _error("archive_path_forbidden", f"The archive entry {shown!r} is nested too deeply.")
    return parts


HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_TF_SUFFIXES = (".h5", ".keras", ".hdf5")


def tf_weights_message(name: str) -> str:
    """TensorFlow/Keras HDF5 weights are not pickles: say what they are and the command that converts them."""
    return (f"{name} is TensorFlow/Keras weights (HDF5), which QuantLens does not read. Convert a Hugging Face model "
            "folder to safetensors with transformers: python -c \"from transformers import AutoModel; "
            "AutoModel.from_pretrained('FOLDER', from_tf=True).save_pretrained('OUT')\" (use the model's own "
            "Auto class, e.g. AutoModelForSequenceClassification), then zip OUT; or a Keras model to ONNX: "
            "python -m tf2onnx.convert --keras model.h5 --output model.onnx.")


def _classify(rel: str) -> tuple[str, str] | None:
    """None for an allowed file, else (code, message) saying why the file may not be in a model folder."""
    lower = rel.lower()
    base = lower.rsplit("/", 1)[-1]
    if lower.endswith(_TF_SUFFIXES):
        return ("unsupported_file", tf_weights_message(f"The file {rel}"))
    if lower.endswith(".msgpack"):
        return ("unsupported_file", f"The file {rel} is Flax (msgpack) weights, which QuantLens does not read; "
                                    "convert with transformers: from_pretrained('FOLDER', from_flax=True)"
                                    ".save_pretrained('OUT'), then zip OUT.")
    if base == "training_args.bin" or lower.endswith(_PICKLE_SUFFIXES):
        return ("unsafe_format_pickle",
                f"The file {rel} is a pickle-based format (.bin/.pt/.ckpt/...), which can run code when loaded; "
                "include safetensors weights only.")
    if lower.endswith(_CODE_SUFFIXES):
        return ("remote_code_forbidden", f"The file {rel} is code; QuantLens never runs code that comes with a model.")
    if lower.endswith(_ARCHIVE_SUFFIXES):
        return ("unsupported_archive", f"The file {rel} is an archive inside the archive; nested archives are refused.")
    parts = rel.split("/")
    if len(parts) == 1 and (rel in _ROOT_FILES or (rel.endswith(".safetensors") and len(rel) > len(".safetensors"))):
        return None
    if len(parts) == 2:
        match = _MODULE_DIR.fullmatch(parts[0])
        if match and parts[1] in _MODULE_FILES[match.group(1)]:
            return None
    if lower.endswith(".onnx"):
        return ("unsupported_file", f"The archive contains {rel}; upload an .onnx model on its own, not inside a zip.")
    return ("unsupported_file",
            f"The file {rel} is not one QuantLens accepts in a model folder (config, tokenizer and safetensors files).")


_PRIORITY = ("archive_link_forbidden", "archive_path_forbidden", "unsafe_format_pickle", "remote_code_forbidden",
             "unsupported_archive", "unsupported_file")


def _raise_first(problems: list[tuple[str, str]]) -> None:
    """Report the most serious problem first, so a torch zip says "pickle" rather than "unknown file"."""
    if problems:
        code, message = min(problems, key=lambda p: _PRIORITY.index(p[0]) if p[0] in _PRIORITY else len(_PRIORITY))
        raise _error(code, message)


# --------------------------------------------------------------------------------------------- zip plan
@dataclass(frozen=True)
class _Entry:
    info: zipfile.ZipInfo
    rel: str  # destination relative path, top folder stripped


def _entry_mode_problem(info: zipfile.ZipInfo) -> tuple[str, str] | None:
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFLNK or (info.create_system == 0 and info.external_attr & 0x400):
        return ("archive_link_forbidden",
                f"The archive entry {info.filename[:80]!r} is a link; links are refused because they can point "
                "outside the upload.")
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return ("archive_path_forbidden",
                f"The archive entry {info.filename[:80]!r} is a device, pipe or socket, not a regular file.")
    if info.flag_bits & 0x1:
        return ("unsupported_archive", f"The archive entry {info.filename[:80]!r} is encrypted.")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        return ("unsupported_archive",
                f"The archive entry {info.filename[:80]!r} uses a compression method other than deflate.")
    if not info.flag_bits & 0x800 and not info.orig_filename.isascii():
        return ("archive_path_forbidden", f"The archive entry {info.filename[:80]!r} has a name that is not UTF-8.")
    return None


def _eocd_entry_count(handle: BinaryIO, size: int) -> tuple[int, int]:
    """Entry count and central-directory size from the end record, read before zipfile loads the directory.

    zipfile reads the whole central directory into memory and parses every record in it whatever the count
    says, so both numbers are bounded before it is opened.
    """
    tail_len = min(size, 22 + 65_535)
    handle.seek(size - tail_len)
    tail = handle.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 22 > len(tail):
        raise _error("unsupported_archive", "The upload is not a readable zip archive.")
    total, cd_size = struct.unpack("<HI", tail[at + 10 : at + 16])
    locator = tail.rfind(b"PK\x06\x07", 0, at)
    if total == 0xFFFF and locator >= 0:
        (zip64_at,) = struct.unpack("<Q", tail[locator + 8 : locator + 16])
        if zip64_at + 56 > size:
            raise _error("unsupported_archive", "The upload is not a readable zip archive.")
        handle.seek(zip64_at)
        record = handle.read(56)
        if not record.startswith(b"PK\x06\x06"):
            raise _error("unsupported_archive", "The upload is not a readable zip archive.")
        total, cd_size = struct.unpack("<QQ", record[32:48])
    return total, cd_size


def _plan_zip(archive: zipfile.ZipFile, limits: UploadLimits) -> list[_Entry]:
    """Check every entry's name, mode and declared size; return what to extract. Writes nothing."""
    infos = archive.infolist()
    if len(infos) > limits.max_entries:
        raise _error("archive_too_large", f"The archive has more than {limits.max_entries} entries.")
    problems: list[tuple[str, str]] = []
    kept: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
    seen: set[str] = set()
    declared_total = 0
    for info in infos:
        if _SKIPPED.fullmatch(info.filename) and "\\" not in info.filename:
            _check_entry_name(info.filename)  # even skipped entries must be well-formed
            continue
        mode_problem = _entry_mode_problem(info)
        if mode_problem:
            problems.append(mode_problem)
            continue
        try:
            parts = _check_entry_name(info.filename)
        except QuantLensError as exc:
            problems.append((exc.code, exc.message))
            continue
        folded = "/".join(parts).casefold()
        if folded in seen:
            problems.append(("archive_path_forbidden",
                             f"The archive has two entries named {info.filename[:80]!r} (names differing only in case "
                             "count as the same)."))
            continue
        seen.add(folded)
        if info.is_dir():
            if info.file_size:
                problems.append(("archive_path_forbidden", f"The directory entry {info.filename[:80]!r} has data."))
            continue
        declared_total += info.file_size
        kept.append((info, parts))
    _raise_first(problems)

    tops = {parts[0] for _, parts in kept}
    strip = len(tops) == 1 and all(len(parts) > 1 for _, parts in kept) and not _MODULE_DIR.fullmatch(next(iter(tops)))
    entries = [_Entry(info, "/".join(parts[1:] if strip else parts)) for info, parts in kept]
    for entry in entries:
        problem = _classify(entry.rel)
        if problem:
            problems.append(problem)
    _raise_first(problems)
    if not entries:
        raise _error("unsupported_file", "The archive contains no files.")
    if declared_total > limits.max_total_bytes or any(e.info.file_size > limits.max_file_bytes for e in entries):
        raise _error("archive_too_large",
                     f"The archive expands to more than the {limits.max_total_bytes // 2**20} MiB QuantLens accepts.")
    _check_no_overlap(archive, infos)
    return entries


def _check_no_overlap(archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo]) -> None:
    """Refuse entries whose data regions overlap (the "quoted overlap" zip bomb reuses one deflate stream)."""
    start_dir = getattr(archive, "start_dir", None)
    ordered = sorted(infos, key=lambda i: i.header_offset)
    for current, following in zip(ordered, ordered[1:] + [None], strict=True):
        limit = following.header_offset if following is not None else start_dir
        if limit is None:
            continue
        # local header is 30 bytes + name + extra; the extra field length there may differ from the central one
        minimum_end = current.header_offset + 30 + len(current.orig_filename.encode("utf-8", "surrogateescape"))
        if following is not None and following.header_offset == current.header_offset:
            raise _error("archive_too_large", "The archive reuses the same data for several entries (a zip bomb).")
        if minimum_end + current.compress_size > limit:
            raise _error("archive_too_large", "The archive's entries overlap each other (a zip bomb).")


def _open_new_file(path: Path) -> BinaryIO:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    return os.fdopen(fd, "wb")


def _extract(archive: zipfile.ZipFile, entries: list[_Entry], staging: Path, limits: UploadLimits) -> int:
    """Stream each entry to disk, counting real decompressed bytes against the limits; sniff each file's head."""
    total = 0
    for entry in entries:
        target = staging.joinpath(*entry.rel.split("/"))
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        written = 0
        head = b""
        try:
            with archive.open(entry.info) as source, _open_new_file(target) as out:
                while True:
                    chunk = source.read(CHUNK_BYTES)
                    if not chunk:
                        break
                    written += len(chunk)
                    total += len(chunk)
                    if len(head) < 512:
                        head += chunk[: 512 - len(head)]
                    if written > limits.max_file_bytes or total > limits.max_total_bytes:
                        raise _error("archive_too_large",
                                     f"The archive expands past the {limits.max_total_bytes // 2**20} MiB limit "
                                     f"(stopped while extracting {entry.rel}).")
                    if written > limits.ratio_floor_bytes and written > limits.max_ratio * max(entry.info.compress_size, 1):
                        raise _error("archive_too_large",
                                     f"The file {entry.rel} expands more than {limits.max_ratio} times (a zip bomb).")
                    out.write(chunk)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise _error("storage_full", "The server has no room for this upload right now; try again later.") from None
            raise _error("unsupported_archive", f"The archive entry {entry.rel} is damaged and could not be read.") from None
        except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, struct.error, EOFError, ValueError,
                NotImplementedError):
            raise _error("unsupported_archive", f"The archive entry {entry.rel} is damaged and could not be read.") from None
        _refuse_container(sniff(head), head, f"The file {entry.rel}")
    return total


# --------------------------------------------------------------------------------------------- contents
def _count_containers(path: Path, stop_after: int) -> int:
    """Opening brackets and braces in a file, read in chunks (no copy of the whole file, C-speed counting).

    Brackets inside strings are counted too: an upper bound is all that is needed, because every JSON list or
    object costs Python about 60 bytes however small it is, which is what a file of `[]` turns into gigabytes.
    """
    count = 0
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            count += chunk.count(b"[") + chunk.count(b"{")
            if count > stop_after:
                break
    return count


def _read_json(path: Path, rel: str, max_bytes: int, max_containers: int) -> object:
    """Parse one JSON file within stated bounds: its size, its number of lists/objects and its nesting."""
    code = "invalid_tokenizer" if rel in _TOKENIZER_JSON else "invalid_config"
    if path.stat().st_size > max_bytes:
        raise _error(code, f"The file {rel} is larger than the {max_bytes // 2**20} MiB QuantLens reads.")
    if _count_containers(path, max_containers) > max_containers:
        raise _error(code, f"The file {rel} holds more than {max_containers:,} JSON lists and objects, far more than "
                           "a real model file; it is refused unread.")
    try:
        return json.loads(path.read_bytes().decode("utf-8"), parse_constant=_no_constant)
    except RecursionError:
        raise _error(code, f"The file {rel} nests JSON lists or objects too deeply to read.") from None
    except UnicodeDecodeError:
        raise _error(code, f"The file {rel} is not UTF-8 text.") from None
    except ValueError:
        raise _error(code, f"The file {rel} is not valid JSON.") from None


def _no_constant(name: str) -> object:
    raise ValueError(name)


T = TypeVar("T")


def _first_in_json(value: object, match: Callable[[str, object], T | None], depth: int = 0) -> T | None:
    """Depth-first over a parsed JSON tree: the first `match(key, child)` that is not None.

    Bounded (depth 32, 10,000 items a list) so a hostile file cannot make the walk itself the attack.
    """
    if depth > 32:
        return None
    if isinstance(value, dict):
        for key, child in value.items():
            found = match(key, child) if isinstance(key, str) else None
            if found is None:
                found = _first_in_json(child, match, depth + 1)
            if found is not None:
                return found
    elif isinstance(value, list):
        for child in value[:10_000]:
            found = _first_in_json(child, match, depth + 1)
            if found is not None:
                return found
    return None


def _remote_code_key(key: str, child: object) -> str | None:
    return key if key in _REMOTE_CODE_KEYS and child not in (None, False, {}, []) else None


def _find_remote_code_key(value: object) -> str | None:
    return _first_in_json(value, _remote_code_key)


def _file_reference(key: str, child: object) -> tuple[str, str] | None:
    """A `*_file` / `*_files` key whose value is a path, not a plain file name.

    transformers lets tokenizer_config.json keys such as vocab_file or tokenizer_file override the files it
    found in the folder, so `"vocab_file": "/srv/app/.streamlit/secrets.toml"` would be read as a vocabulary.
    """
    if not key.endswith(("_file", "_files")):
        return None
    for item in child if isinstance(child, list) else [child]:
        if item is not None and (not isinstance(item, str) or "/" in item or "\\" in item
                                 or item in ("", ".", "..") or "\x00" in item):
            return key, str(item)[:80]
    return None


def _find_file_reference(value: object) -> tuple[str, str] | None:
    return _first_in_json(value, _file_reference)


def _config_ints(config: dict, depth: int = 0) -> Iterable[tuple[str, object]]:
    """Every bounded key, at the top level and in nested sub-configs (text_config, vision_config, ...)."""
    for key, value in config.items():
        if key in CONFIG_BOUNDS:
            yield key, value
        elif isinstance(value, dict) and depth < 3:
            yield from _config_ints(value, depth + 1)


def check_config(config: object, weight_elements: int | None, weight_bytes: int | None) -> None:
    """Refuse config values a loader would turn into huge allocations (`config_out_of_bounds`)."""
    if not isinstance(config, dict):
        raise _error("invalid_config", "config.json is not a JSON object.")
    for key, value in _config_ints(config):
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value > CONFIG_BOUNDS[key]:
            raise _error("config_out_of_bounds",
                         f"config.json sets {key} = {str(value)[:40]}, outside the accepted range 0..{CONFIG_BOUNDS[key]}.")
    quantization = config.get("quantization_config")
    if quantization not in (None, {}):
        method = quantization.get("quant_method", "unknown") if isinstance(quantization, dict) else "unknown"
        raise _error("already_quantized",
                     f"config.json says the weights are already quantized ({str(method)[:40]}); upload the original "
                     "16- or 32-bit model so QuantLens can quantize it itself.")
    if weight_elements is None or weight_bytes is None:
        return
    implied = implied_parameters(config)
    # Packed formats (int4 in int32, ...) hold more parameters than elements; 8 per byte is the 1-bit ceiling.
    ceiling = max(weight_elements, weight_bytes * 8)
    if implied > PARAM_SLACK * ceiling:
        raise _error("config_out_of_bounds",
                     f"config.json describes a model of at least {implied:,} parameters but the weights hold at most "
                     f"{ceiling:,}; the config does not match the weights.")


def _first_int(config: dict, keys: tuple[str, ...]) -> int:
    return next((v for k in keys if isinstance(v := config.get(k), int) and not isinstance(v, bool)), 0)


def implied_parameters(config: dict) -> int:
    """The fewest parameters a loader allocates for this config: what the weights must roughly match.

    Counts only tables every such model has: token, token-type and learned position embeddings (one row per
    value of vocab_size, type_vocab_size and, for absolute-position models, max_position_embeddings) and per
    layer two hidden x hidden attention projections plus two hidden x intermediate MLP matrices. A config
    that inflates any of these beyond its weights would make the library invent gigabytes in memory.
    """
    hidden = _first_int(config, ("hidden_size", "d_model", "n_embd", "dim"))
    layers = _first_int(config, ("num_hidden_layers", "n_layer", "num_layers", "n_layers"))
    rows = _first_int(config, ("vocab_size",)) + _first_int(config, ("type_vocab_size",))
    rotary = any(k in config for k in ("rope_theta", "rope_scaling", "rotary_dim", "rotary_pct")) or \
        config.get("position_embedding_type") not in (None, "absolute")
    if not rotary:
        rows += _first_int(config, ("max_position_embeddings", "n_positions"))
    intermediate = _first_int(config, ("intermediate_size", "ffn_dim", "n_inner", "ffn_hidden_size"))
    return rows * hidden + layers * (2 * hidden * hidden + 2 * hidden * intermediate)


def _check_tokenizer_json(data: object, limits: UploadLimits) -> None:
    if not isinstance(data, dict):
        raise _error("invalid_tokenizer", "tokenizer.json is not a JSON object.")
    added = data.get("added_tokens") or []
    if not isinstance(added, list) or len(added) > limits.max_added_tokens:
        raise _error("invalid_tokenizer",
                     f"tokenizer.json declares more than {limits.max_added_tokens:,} added tokens.")


def _check_tokenizer_config(data: object, limits: UploadLimits) -> None:
    if not isinstance(data, dict):
        raise _error("invalid_tokenizer", "tokenizer_config.json is not a JSON object.")
    added = data.get("added_tokens_decoder") or {}
    if not isinstance(added, dict) or len(added) > limits.max_added_tokens:
        raise _error("invalid_tokenizer",
                     f"tokenizer_config.json declares more than {limits.max_added_tokens:,} added tokens.")
    # chat_template is kept as data: QuantLens never renders it (see tests/security/test_tokenizer_threats.py).


def _check_modules_json(data: object) -> None:
    """sentence-transformers imports the class named in "type": only its own four modules may be named."""
    if not isinstance(data, list):
        raise _error("invalid_config", "modules.json is not a JSON list.")
    for module in data:
        if not isinstance(module, dict):
            raise _error("invalid_config", "modules.json lists something that is not an object.")
        kind, path = module.get("type"), module.get("path", "")
        if kind not in _ST_MODULE_TYPES:
            raise _error("remote_code_forbidden",
                         f"modules.json names the class {str(kind)[:80]!r}; only sentence-transformers' own "
                         "Transformer, Pooling, Dense and Normalize modules are allowed.")
        if not isinstance(path, str) or (path and not _MODULE_DIR.fullmatch(path)):
            raise _error("index_path_forbidden", f"modules.json points at the folder {str(path)[:80]!r}; only "
                                                 "the module folders inside the upload are allowed.")


def _check_index(data: object, shards: dict[str, safetensors_header.SafetensorsHeader]) -> None:
    """Every weight_map value must be a plain basename of a safetensors file in this folder holding that tensor."""
    if not isinstance(data, dict) or not isinstance(data.get("weight_map"), dict):
        raise _error("invalid_weights", "model.safetensors.index.json has no weight_map object.")
    for tensor, shard in data["weight_map"].items():
        if not isinstance(shard, str) or "/" in shard or "\\" in shard or not _SAFE_COMPONENT.fullmatch(shard):
            raise _error("index_path_forbidden",
                         f"model.safetensors.index.json points tensor {str(tensor)[:60]!r} at {str(shard)[:80]!r}; "
                         "only plain file names inside the upload are allowed.")
        if shard not in shards:
            raise _error("index_path_forbidden",
                         f"model.safetensors.index.json points at {shard[:80]!r}, which is not in the upload.")
        if tensor not in shards[shard].names:
            raise _error("invalid_weights", f"model.safetensors.index.json says {shard} holds tensor "
                                            f"{str(tensor)[:60]!r}, but it does not.")


def _check_folder_contents(root: Path, files: list[str], limits: UploadLimits) -> None:
    """Content checks shared by extracted zips and on-disk folders (files already allow-listed by name)."""
    shards: dict[str, safetensors_header.SafetensorsHeader] = {}
    for rel in files:
        path = root.joinpath(*rel.split("/"))
        with open(path, "rb") as handle:
            head = handle.read(512)
        _refuse_container(sniff(head), head, f"The file {rel}")
        if rel.endswith(".safetensors"):
            shards[rel] = safetensors_header.read_header(path, max_header_bytes=limits.max_header_bytes, label=rel)
        elif rel in _TOKENIZER_TEXT and path.stat().st_size > limits.max_tokenizer_bytes:
            raise _error("invalid_tokenizer",
                         f"The file {rel} is larger than the {limits.max_tokenizer_bytes // 2**20} MiB QuantLens reads.")

    parsed: dict[str, object] = {}
    json_total = 0
    for rel in files:
        if rel.endswith(".json") and rel != "vocab.json":
            path = root.joinpath(*rel.split("/"))
            json_total += path.stat().st_size
            if json_total > limits.max_json_total_bytes:
                raise _error("invalid_tokenizer", f"The JSON files in the upload add up to more than the "
                                                  f"{limits.max_json_total_bytes // 2**20} MiB QuantLens reads.")
            if rel in _TOKENIZER_JSON:
                parsed[rel] = _read_json(path, rel, limits.max_tokenizer_bytes, limits.max_tokenizer_containers)
            else:
                parsed[rel] = _read_json(path, rel, limits.max_json_bytes, limits.max_json_containers)
            key = _find_remote_code_key(parsed[rel])
            if key:
                raise _error("remote_code_forbidden",
                             f"{rel} asks for custom code ({key}); QuantLens only runs built-in model classes.")
            reference = _find_file_reference(parsed[rel])
            if reference:
                raise _error("index_path_forbidden",
                             f"{rel} points {reference[0]} at {reference[1]!r}; only plain file names inside the "
                             "upload are allowed (remove the key or use the file name).")
    if "tokenizer.json" in parsed:
        _check_tokenizer_json(parsed["tokenizer.json"], limits)
    if "tokenizer_config.json" in parsed:
        _check_tokenizer_config(parsed["tokenizer_config.json"], limits)
    if "modules.json" in parsed:
        _check_modules_json(parsed["modules.json"])
    if "model.safetensors.index.json" in parsed:
        _check_index(parsed["model.safetensors.index.json"], {k: v for k, v in shards.items() if "/" not in k})

    top_shards = [h for rel, h in shards.items() if "/" not in rel]
    if not top_shards:
        raise _error("invalid_weights", "The folder has no .safetensors weights at its top level.")
    if "config.json" not in parsed:
        raise _error("invalid_config", "The folder has no config.json.")
    check_config(parsed["config.json"], sum(h.total_elements for h in top_shards),
                 sum(h.data_bytes for h in top_shards))


# --------------------------------------------------------------------------------------------- entry points
def _sha256_and_head(path: Path) -> tuple[str, bytes, int]:
    digest = hashlib.sha256()
    head = b""
    size = 0
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise _error("unsupported_file", "The upload is not a regular file.")
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            if not head:
                head = chunk[:512]
            size += len(chunk)
            digest.update(chunk)
    return digest.hexdigest(), head, size


def validate_upload(src: Path, dest_dir: Path, *, limits: UploadLimits = UploadLimits()) -> ValidatedUpload:  # noqa: B008
    """Check an uploaded file and place what passes under `dest_dir` with fixed names.

    `src` is the spooled upload (see spool_upload). On any problem a QuantLensError is raised and nothing is
    left in `dest_dir` by this call.
    """
    src, dest_dir = Path(src), Path(dest_dir)
    digest, head, size = _sha256_and_head(src)
    if size == 0:
        raise _error("unsupported_file", "The upload is empty.")
    if size > limits.max_upload_bytes:
        raise _error("upload_too_large", f"The upload is larger than the {limits.max_upload_bytes // 2**20} MiB limit.")
    kind = sniff(head)
    if kind == "zip" and not _zip_is_torch(head):
        return _validate_zip(src, dest_dir, limits, digest)
    _refuse_container(kind, head, "The upload")
    if head.startswith(HDF5_MAGIC):
        raise _error("unsupported_file", tf_weights_message("The upload"))
    if kind == "numpy" or head.lstrip()[:1] in (b"{", b"["):
        raise _error("unsupported_file", "The upload is not an ONNX model or a .zip of a Hugging Face folder.")
    if kind == "other" and not _could_be_onnx(head):
        raise _error("invalid_onnx", "The upload is not a model we can read: not ONNX, not a .zip of a Hugging Face "
                                     "folder, and no known weights format.")
    if len(head) >= 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] < size:
        raise _error("unsupported_file", "The upload is a bare .safetensors file; upload a .zip of the whole model "
                                         "folder (config, tokenizer and weights).")
    return _validate_onnx(src, dest_dir, digest, size)


def _could_be_onnx(head: bytes) -> bool:
    """An ONNX file is a protobuf ModelProto: its first byte is a field key with a low field number (ir_version = 1,
    written first) and a valid wire type. Random bytes pass this 1 time in ~20, and then fail the ONNX parser."""
    if not head:
        return False
    field, wire = head[0] >> 3, head[0] & 7
    return 1 <= field <= 20 and wire in (0, 1, 2, 5)


def _validate_onnx(src: Path, dest_dir: Path, digest: str, size: int) -> ValidatedUpload:
    target = dest_dir / ONNX_NAME
    out = _open_new_file(target)  # before the try: an existing file is the caller's, never ours to delete
    try:
        with open(src, "rb") as source, out:
            shutil.copyfileobj(source, out, CHUNK_BYTES)
        scan_onnx_file(target)  # scan the copy we hand over, not a file that could still change
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return ValidatedUpload(kind="onnx", path=target, files=(ONNX_NAME,), total_bytes=size, sha256=digest)


def _validate_zip(src: Path, dest_dir: Path, limits: UploadLimits, digest: str) -> ValidatedUpload:
    final = dest_dir / FOLDER_NAME
    if final.exists() or final.is_symlink():
        raise FileExistsError(final)
    staging = dest_dir / f".staging-{os.urandom(8).hex()}"
    staging.mkdir(mode=0o700)
    try:
        with open(src, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            entries, directory_bytes = _eocd_entry_count(handle, size)
            if entries > limits.max_entries or directory_bytes > limits.max_entries * 4096:
                raise _error("archive_too_large", f"The archive has more than {limits.max_entries} entries.")
            handle.seek(0)
            try:
                archive = zipfile.ZipFile(handle)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, struct.error, ValueError, OSError, EOFError,
                    UnicodeDecodeError, NotImplementedError):
                raise _error("unsupported_archive", "The upload is not a readable zip archive.") from None
            with archive:
                entries = _plan_zip(archive, limits)
                total = _extract(archive, entries, staging, limits)
        files = sorted(e.rel for e in entries)
        _check_folder_contents(staging, files, limits)
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ValidatedUpload(kind="hf_folder", path=final, files=tuple(files), total_bytes=total, sha256=digest)


def validate_model_dir(path: Path, *, limits: UploadLimits = UploadLimits()) -> ValidatedUpload:  # noqa: B008
    """Apply the same rules to a folder already on disk (CLI input, demo model): no links, allow-listed files."""
    root = Path(path)
    if root.is_symlink() or not root.is_dir():
        raise _error("unsupported_file", f"{root.name} is not a folder.")
    problems: list[tuple[str, str]] = []
    files: list[str] = []
    total = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in sorted(dirnames + filenames):
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            if _SKIPPED.fullmatch(rel):
                continue
            info = full.lstat()
            if stat.S_ISLNK(info.st_mode):
                problems.append(("archive_link_forbidden", f"{rel} is a link; links are refused."))
            elif stat.S_ISDIR(info.st_mode):
                continue
            elif not stat.S_ISREG(info.st_mode):
                problems.append(("archive_path_forbidden", f"{rel} is not a regular file."))
            else:
                problem = _classify(rel)
                if problem:
                    problems.append(problem)
                files.append(rel)
                total += info.st_size
    _raise_first(problems)
    if len(files) > limits.max_entries or total > limits.max_total_bytes:
        raise _error("archive_too_large", "The folder has more files or bytes than QuantLens accepts.")
    files.sort()
    _check_folder_contents(root, files, limits)
    return ValidatedUpload(kind="hf_folder", path=root, files=tuple(files), total_bytes=total)


def validate_model_path(path: Path, *, limits: UploadLimits = UploadLimits()) -> ValidatedUpload:  # noqa: B008
    """A local model for the CLI: a folder (checked in place) or a single .onnx file (scanned in place)."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        return validate_model_dir(path, limits=limits)
    digest, head, size = _sha256_and_head(path)
    _refuse_container(sniff(head), head, f"The file {path.name}")
    scan_onnx_file(path)
    return ValidatedUpload(kind="onnx", path=path, files=(path.name,), total_bytes=size, sha256=digest)
