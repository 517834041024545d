"""Threats 3, 16, 17, 18, 19: hostile archives are refused whole, and nothing is written anywhere."""

from __future__ import annotations

import gzip
import io
import stat
import struct
import tarfile
import zipfile

import pytest

from core.gate import ingest
from core.gate.ingest import UploadLimits
from tests.security.fixtures import hf_folder_files, hf_zip, symlink_info, zip_bytes, zip_info


def _with(extra: list, top: str | None = None) -> bytes:
    """The valid tiny folder plus hostile extra entries."""
    prefix = f"{top}/" if top else ""
    return zip_bytes([(prefix + n, d) for n, d in hf_folder_files().items()] + extra)


# ------------------------------------------------------------------------------------------ threat 3: links
@pytest.mark.parametrize("name", ["weights.bin", "model.safetensors", "rootlink/", "config.json"])
def test_zip_with_a_symlink_entry_is_refused_and_nothing_is_extracted(sandbox, name):
    entries = [(n, d) for n, d in hf_folder_files().items() if n != name]
    sandbox.rejects(zip_bytes(entries + [(symlink_info(name), b"../../outside/canary.bin")]), "archive_link_forbidden")


def test_windows_reparse_point_entry_is_refused_as_a_link(sandbox):
    info = zip_info("vocab.json", create_system=0)
    info.external_attr = 0x400  # FILE_ATTRIBUTE_REPARSE_POINT
    sandbox.rejects(_with([(info, b"x")]), "archive_link_forbidden")


# ------------------------------------------------------------------------------------------ threat 16: zip slip
@pytest.mark.parametrize("name", ["../evil", "/abs/evil", "C:\\evil", "C:/evil", "..\\evil", "a/../../evil",
                                  "./config.json", "a//b", "my-model/../../evil"])
def test_zip_slip_entries_reject_the_whole_archive(sandbox, name):
    sandbox.rejects(_with([(zip_info(name), b"evil")]), "archive_path_forbidden")
    assert not (sandbox.root / "evil").exists() and not (sandbox.root.parent / "evil").exists()


@pytest.mark.parametrize("second", ["config.json", "CONFIG.json", "Config.JSON"])
def test_duplicate_and_case_duplicate_entries_are_refused(sandbox, second):
    sandbox.rejects(_with([(second, b"{}")]), "archive_path_forbidden")


# ------------------------------------------------------------------------------------------ threat 17: bombs
def test_zip_bomb_stops_at_the_byte_limit_while_streaming(sandbox, monkeypatch):
    """2 GiB of zeros (about 2 MB compressed) against a 16 MiB limit: extraction stops within one chunk."""
    written = []
    original = ingest._open_new_file

    class Counting:
        def __init__(self, handle):
            self.handle = handle

        def write(self, chunk):
            written.append(len(chunk))
            return self.handle.write(chunk)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

    monkeypatch.setattr(ingest, "_open_new_file", lambda path: Counting(original(path)))
    bomb = _zero_zip("model.safetensors", 2 * 2**30)
    limits = UploadLimits(max_total_bytes=16 * 2**20, max_file_bytes=16 * 2**20, max_ratio=10**9)
    sandbox.rejects(bomb, "archive_too_large", limits)
    assert sum(written) <= limits.max_total_bytes  # stopped at the limit, not after 2 GiB (bytes, not seconds)


def _zero_zip(name: str, size: int) -> bytes:
    """A zip of `size` zeros, made from one fully-flushed deflate block repeated (instant even for GiBs)."""
    import zlib

    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = compressor.compress(b"\0" * 2**20) + compressor.flush(zlib.Z_FULL_FLUSH)
    body = segment * (size // 2**20) + zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    crc = 0
    for _ in range(size // 2**20):
        crc = zlib.crc32(b"\0" * 2**20, crc) if size <= 2**24 else 0
    raw_name = name.encode()
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(body), size, len(raw_name), 0)
    central = struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, len(body), size,
                          len(raw_name), 0, 0, 0, 0, 0, 0)
    data = local + raw_name + body
    cd = central + raw_name
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(cd), len(data), 0)
    return data + cd + end


def test_streaming_count_stops_extraction_even_if_the_declared_sizes_were_believed(tmp_path):
    """Defence in depth: with the declared-size check out of the way, the streamed byte count still stops it."""
    bomb = _zero_zip("model.safetensors", 256 * 2**20)
    limits = UploadLimits(max_total_bytes=8 * 2**20, max_file_bytes=8 * 2**20, max_ratio=10**9)
    with zipfile.ZipFile(io.BytesIO(bomb)) as archive:
        entries = [ingest._Entry(info, info.filename) for info in archive.infolist()]
        with pytest.raises(ingest.QuantLensError) as caught:
            ingest._extract(archive, entries, tmp_path, limits)
    assert caught.value.code == "archive_too_large"
    assert (tmp_path / "model.safetensors").stat().st_size <= limits.max_total_bytes


def test_high_compression_ratio_is_refused(sandbox):
    bomb = zip_bytes(list(hf_folder_files().items()) + [("README.md", b"\0" * (32 * 2**20))])
    sandbox.rejects(bomb, "archive_too_large", UploadLimits(ratio_floor_bytes=2**20, max_ratio=100))


def test_declared_size_over_the_limit_is_refused_before_extraction(sandbox):
    sandbox.rejects(_with([("README.md", b"x" * 4096)]), "archive_too_large",
                    UploadLimits(max_total_bytes=2048, max_file_bytes=2048))


def test_too_many_entries_is_refused(sandbox):
    entries = list(hf_folder_files().items()) + [(f"{i}.safetensors", b"") for i in range(300)]
    sandbox.rejects(zip_bytes(entries), "archive_too_large")


def test_quoted_overlap_bomb_is_refused(sandbox):
    """Two central-directory entries pointing at the same local data (the 'quoted overlap' trick)."""
    data = hf_zip(top=None)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
    first = infos[0]
    # Append a second central directory record for a new name that reuses the first entry's data.
    eocd_at = data.rfind(b"PK\x05\x06")
    count, cd_size, cd_offset = struct.unpack("<HII", data[eocd_at + 10 : eocd_at + 20])
    name = b"README.md"
    record = struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, first.compress_type, 0, 0, first.CRC,
                         first.compress_size, first.file_size, len(name), 0, 0, 0, 0, 0, first.header_offset) + name
    cd = data[cd_offset : cd_offset + cd_size] + record
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count + 1, count + 1, len(cd), cd_offset, 0)
    sandbox.rejects(data[:cd_offset] + cd + end, "archive_too_large")


@pytest.mark.parametrize("name", ["inner.zip", "weights.tar.gz", "x.7z"])
def test_nested_archives_are_refused(sandbox, name):
    sandbox.rejects(_with([(name, hf_zip())]), "unsupported_archive")


def test_nested_zip_renamed_to_an_allowed_name_is_refused_by_content(sandbox):
    sandbox.rejects(hf_zip(**{"README.md": hf_zip()}), "unsupported_archive")


# ------------------------------------------------------------------------------------------ threat 18: odd entries
@pytest.mark.parametrize("mode", [stat.S_IFIFO | 0o644, stat.S_IFCHR | 0o644, stat.S_IFBLK | 0o644,
                                  stat.S_IFSOCK | 0o644])
def test_device_fifo_and_socket_entries_are_refused(sandbox, mode):
    sandbox.rejects(_with([(zip_info("vocab.json", mode=mode), b"")]), "archive_path_forbidden")


def test_names_longer_than_255_bytes_are_refused(sandbox):
    sandbox.rejects(_with([("a" * 300 + ".json", b"{}")]), "archive_path_forbidden")


def test_non_utf8_names_are_refused(sandbox):
    info = zip_info("vocab.json")
    data = _with([(info, b"{}")])
    # Rewrite the name bytes to Latin-1 "vocab\xe9.json" without the UTF-8 flag (cp437 decode in zipfile).
    data = data.replace(b"vocab.json", b"vocab\xe9json")
    sandbox.rejects(data, "archive_path_forbidden")


def test_directory_entry_named_like_a_file_is_not_a_file(sandbox):
    """`config.json/` as a directory plus a real config elsewhere: the directory is never created as a file."""
    sandbox.rejects(_with([("tokenizer.json/", b""), ("tokenizer.json/evil", b"x")]), "unsupported_file")


def test_directory_entry_with_data_is_refused(sandbox):
    info = zip_info("1_Pooling/")
    info.external_attr = (stat.S_IFDIR | 0o755) << 16
    sandbox.rejects(_with([(info, b"data")]), "archive_path_forbidden")


def test_macos_metadata_is_skipped_and_only_allow_listed_regular_files_are_extracted(sandbox):
    data = _with([("__MACOSX/my-model/._config.json", b"junk"), ("my-model/.DS_Store", b"junk")], top="my-model")
    upload = sandbox.validate(data)
    extracted = sorted(p.relative_to(upload.path).as_posix() for p in upload.path.rglob("*"))
    assert extracted == sorted(hf_folder_files())
    assert all(p.is_file() and not p.is_symlink() for p in upload.path.rglob("*"))


@pytest.mark.parametrize("name", ["LICENSE.exe", "flax_model.msgpack", "tf_model.h5", "onnx/model.onnx", "notes.txt",
                                  "a.onnx:stream", "<script>.json", "model.safetensors "])
def test_files_outside_the_allow_list_are_refused(sandbox, name):
    error = sandbox.rejects_any(_with([(name, b"x")]))
    assert error.code in {"unsupported_file", "archive_path_forbidden", "unsafe_format_pickle",
                          "remote_code_forbidden"}


# ------------------------------------------------------------------------------------------ threat 19: tar & co
def _tar_gz() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        link = tarfile.TarInfo("config.json")
        link.type = tarfile.SYMTYPE
        link.linkname = "../../outside/canary.bin"
        archive.addfile(link)
    return buffer.getvalue()


def _tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        hard = tarfile.TarInfo("model.safetensors")
        hard.type = tarfile.LNKTYPE
        hard.linkname = "/etc/passwd"
        archive.addfile(hard)
    return buffer.getvalue()


@pytest.mark.parametrize("builder", [_tar_gz, _tar, lambda: gzip.compress(b"x" * 100),
                                     lambda: b"7z\xbc\xaf\x27\x1c" + b"\0" * 100,
                                     lambda: b"Rar!\x1a\x07\x00" + b"\0" * 100, lambda: b"BZh91AY&SY" + b"\0" * 64],
                         ids=["tar.gz", "tar", "gzip", "7z", "rar", "bzip2"])
def test_tar_and_other_archives_are_refused_by_content_even_when_named_zip(sandbox, builder):
    sandbox.rejects(builder(), "unsupported_archive")


def test_truncated_zip_is_refused(sandbox):
    sandbox.rejects(hf_zip()[:-30], "unsupported_archive")


def test_corrupt_deflate_data_is_refused_as_an_archive_error(sandbox):
    """Found by fuzzing: a damaged deflate stream raised zlib.error instead of a QuantLensError."""
    data = bytearray(hf_zip(top=None, **{"README.md": b"hello " * 2000}))
    at = data.find(b"README.md") + len(b"README.md") + 20
    data[at : at + 8] = b"\xff" * 8
    sandbox.rejects(bytes(data), "unsupported_archive")


def test_a_central_directory_larger_than_its_entry_count_allows_is_refused_before_parsing(sandbox):
    """zipfile parses every record in the directory, whatever the count says: 30k entries behind a count of 1."""
    data = zip_bytes([(f"{i}", b"") for i in range(30_000)], compression=zipfile.ZIP_STORED)
    eocd = data.rfind(b"PK\x05\x06")
    forged = data[: eocd + 8] + struct.pack("<HH", 1, 1) + data[eocd + 12 :]
    sandbox.rejects(forged, "archive_too_large")
