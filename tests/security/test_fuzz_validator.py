"""Fuzzing the upload gate: whatever bytes arrive, validate_upload either accepts a clean folder/model or
raises QuantLensError, and never writes outside its destination directory.

Inputs: random bytes (with container magic prefixes), byte-level mutations of real fixtures (valid zips and
ONNX files, hostile ones), and zips assembled from hostile building blocks (names, modes, contents).
"""

from __future__ import annotations

import os
import stat
import tempfile
import zipfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import QuantLensError
from core.gate.ingest import FOLDER_NAME, ONNX_NAME, SPOOL_NAME, UploadLimits, spool_upload, validate_upload
from tests.security.fixtures import (
    hf_folder_files,
    hf_zip,
    model_bytes,
    onnx_model,
    raw_safetensors,
    symlink_info,
    tree_snapshot,
    zip_bytes,
    zip_info,
)

LIMITS = UploadLimits(max_total_bytes=8 * 2**20, max_file_bytes=4 * 2**20, max_entries=64, ratio_floor_bytes=2**20)
SEEDS = [
    hf_zip(),
    hf_zip(top=None),
    model_bytes(onnx_model()),
    model_bytes(onnx_model(initializer_external="../x")),
    zip_bytes([("config.json", b"{}"), (symlink_info("model.safetensors"), b"/etc/passwd")]),
    raw_safetensors({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8),
]
MAGIC = [b"", b"PK\x03\x04", b"PK\x05\x06", b"\x80\x04", b"\x1f\x8b", b"\x08\x08\x12", b"{", b"7z\xbc\xaf\x27\x1c"]
NAMES = ["config.json", "model.safetensors", "tokenizer.json", "../evil", "/abs", "C:\\x", "a/../../b", "x.py",
         "pytorch_model.bin", "CONFIG.JSON", "1_Pooling/config.json", "sub/", "__MACOSX/._x", "inner.zip",
         "model.safetensors.index.json", "modules.json", "a" * 300, "vocab.txt", "tokenizer_config.json"]
CONTENTS = [b"", b"{}", b'{"auto_map": {"a": "b"}}', hf_folder_files()["config.json"],
            hf_folder_files()["model.safetensors"], b"\x80\x04\x95", hf_zip(), b'{"weight_map": {"w": "../x"}}',
            b"[" * 5000, b"\0" * 2**16]


def _check(data: bytes) -> None:
    """The invariant: only QuantLensError, nothing outside dest_dir changes, accepted output is clean."""
    with tempfile.TemporaryDirectory() as base:
        root = Path(base)
        (root / "outside").mkdir()
        (root / "outside" / "canary.bin").write_bytes(b"canary")
        dest = root / "job"
        dest.mkdir(mode=0o700)
        before = tree_snapshot(root / "outside")
        try:
            upload = validate_upload(spool_upload(data, dest), dest, limits=LIMITS)
        except QuantLensError as exc:
            assert exc.code and "\n" not in exc.message
            assert sorted(p.name for p in dest.iterdir()) == [SPOOL_NAME]
        else:
            assert upload.path in (dest / ONNX_NAME, dest / FOLDER_NAME)
            for path in [upload.path, *upload.path.rglob("*")] if upload.path.is_dir() else [upload.path]:
                mode = path.lstat().st_mode
                assert stat.S_ISREG(mode) or stat.S_ISDIR(mode)
                assert path.resolve().is_relative_to(dest.resolve())
        assert tree_snapshot(root / "outside") == before
        assert sorted(os.listdir(root)) == ["job", "outside"]


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(prefix=st.sampled_from(MAGIC), body=st.binary(max_size=2048))
def test_random_bytes_only_ever_raise_quantlens_error(prefix, body):
    _check(prefix + body)


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        action = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if action == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif action == "truncate":
            del data[at:]
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif data:
            del data[at : at + draw(st.integers(1, 64))]
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_real_fixtures_only_ever_raise_quantlens_error(data):
    _check(data)


@st.composite
def hostile_zip(draw) -> bytes:
    entries = []
    for _ in range(draw(st.integers(0, 6))):
        name = draw(st.sampled_from(NAMES))
        mode = draw(st.sampled_from([None, stat.S_IFREG | 0o644, stat.S_IFLNK | 0o777, stat.S_IFDIR | 0o755,
                                     stat.S_IFIFO | 0o644]))
        info = zip_info(name, mode=mode)
        info.compress_type = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
        entries.append((info, draw(st.sampled_from(CONTENTS))))
    base = draw(st.booleans())
    prefix = [(f"m/{n}", d) for n, d in hf_folder_files().items()] if base else []
    return zip_bytes(prefix + entries)


@FAST
@given(hostile_zip())
def test_zips_built_from_hostile_parts_only_ever_raise_quantlens_error(data):
    _check(data)
