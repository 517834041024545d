"""Threats 10-14: pickles, remote code, shard-index traversal, config-driven OOM and malformed safetensors."""

from __future__ import annotations

import json
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.errors import QuantLensError
from core.gate.safetensors_header import parse_header_bytes, read_header
from tests.security.fixtures import TINY_CONFIG, hf_folder_files, hf_zip, raw_safetensors, tiny_safetensors, zip_bytes


class _Payload:
    """Creates a marker file when unpickled: proof that something loaded the pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _pickle(marker: Path, protocol: int = 4) -> bytes:
    return pickle.dumps(_Payload(marker), protocol=protocol)


def _torch_style_zip(marker: Path) -> bytes:
    """What torch.save writes: a zip whose first entry is archive/data.pkl."""
    return zip_bytes([("archive/data.pkl", _pickle(marker)), ("archive/version", b"3\n"),
                      ("archive/data/0", b"\0" * 8)])


# ------------------------------------------------------------------------------------------ threat 10: pickle
@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "model.pth", "last.ckpt", "training_args.bin",
                                  "optimizer.pkl", "sub/weights.bin"])
def test_pickle_files_in_the_zip_are_refused_by_name_and_never_loaded(sandbox, tmp_path, name):
    marker = tmp_path / "marker"
    sandbox.rejects(hf_zip(**{name: _pickle(marker)}), "unsafe_format_pickle")
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_pickle_renamed_to_model_safetensors_is_refused_by_content(sandbox, tmp_path, protocol):
    marker = tmp_path / "marker"
    sandbox.rejects(hf_zip(**{"model.safetensors": _pickle(marker, protocol)}), "unsafe_format_pickle")
    assert not marker.exists()


def test_torch_zip_renamed_to_model_safetensors_is_refused_by_content(sandbox, tmp_path):
    marker = tmp_path / "marker"
    sandbox.rejects(hf_zip(**{"model.safetensors": _torch_style_zip(marker)}), "unsafe_format_pickle")
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4])
def test_a_bare_pickle_upload_is_refused_whatever_its_name(sandbox, tmp_path, protocol):
    marker = tmp_path / "marker"
    sandbox.rejects(_pickle(marker, protocol), "unsafe_format_pickle")
    assert not marker.exists()


def test_a_torch_save_zip_upload_is_refused_as_pickle(sandbox, tmp_path):
    marker = tmp_path / "marker"
    sandbox.rejects(_torch_style_zip(marker), "unsafe_format_pickle")
    assert not marker.exists()


def test_the_pickle_fixture_really_runs_code_when_loaded(tmp_path):
    """Guards the tests above: the payload is live, so `marker absent` means it was never loaded."""
    marker = tmp_path / "marker"
    pickle.loads(_pickle(marker))  # noqa: S301 - the point of the test
    assert marker.exists()


# ------------------------------------------------------------------------------------------ threat 11: remote code
@pytest.mark.parametrize("name", ["modeling_evil.py", "configuration_x.py", "sub/module.py", "custom_op.so",
                                  "__init__.pyc"])
def test_code_files_are_refused(sandbox, tmp_path, name):
    marker = tmp_path / "marker"
    sandbox.rejects(hf_zip(**{name: f"open({str(marker)!r}, 'w')\n".encode()}), "remote_code_forbidden")
    assert not marker.exists()


@pytest.mark.parametrize("auto_map", [{"AutoModel": "modeling_evil.EvilModel"},
                                      {"AutoModel": "other/repo--modeling.Evil"}])
def test_auto_map_in_config_is_refused(sandbox, auto_map):
    config = dict(TINY_CONFIG, auto_map=auto_map)
    sandbox.rejects(hf_zip(**{"config.json": json.dumps(config).encode()}), "remote_code_forbidden")


def test_auto_map_in_tokenizer_config_is_refused(sandbox):
    tokenizer_config = {"auto_map": {"AutoTokenizer": ["tok.EvilTokenizer", None]}}
    sandbox.rejects(hf_zip(**{"tokenizer_config.json": json.dumps(tokenizer_config).encode()}),
                    "remote_code_forbidden")


def test_auto_map_nested_in_a_sub_config_is_refused(sandbox):
    config = dict(TINY_CONFIG, text_config={"auto_map": {"AutoConfig": "x.Y"}})
    sandbox.rejects(hf_zip(**{"config.json": json.dumps(config).encode()}), "remote_code_forbidden")


def test_sentence_transformers_modules_json_naming_an_arbitrary_class_is_refused(sandbox):
    """modules.json "type" is imported by sentence-transformers: only its own modules are allowed."""
    modules = [{"idx": 0, "name": "0", "path": "", "type": "os.system"}]
    sandbox.rejects(hf_zip(**{"modules.json": json.dumps(modules).encode()}), "remote_code_forbidden")


def test_sentence_transformers_folder_with_its_own_modules_is_accepted(sandbox):
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    upload = sandbox.validate(hf_zip(**{"modules.json": json.dumps(modules).encode(),
                                        "1_Pooling/config.json": b'{"word_embedding_dimension": 8}',
                                        "sentence_bert_config.json": b'{"max_seq_length": 32}'}))
    assert "1_Pooling/config.json" in upload.files


# ------------------------------------------------------------------------------------------ threat 12: index
def _sharded(weight_map: dict[str, str], extra: dict[str, bytes] | None = None) -> bytes:
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    return hf_zip(**{"model.safetensors": None,
                     "model-00001-of-00001.safetensors": tiny_safetensors(),
                     "model.safetensors.index.json": json.dumps(index).encode(), **(extra or {})})


@pytest.mark.parametrize("shard", ["../x.safetensors", "/abs/x.safetensors", "sub/../../x.safetensors",
                                   "..\\x.safetensors", "missing.safetensors", "../outside/canary.safetensors"])
def test_shard_index_pointing_outside_the_folder_is_refused(sandbox, shard):
    canary = tiny_safetensors({"canary": np.full((4,), 1234.5, dtype=np.float32)})
    (sandbox.root / "outside" / "canary.safetensors").write_bytes(canary)
    sandbox.before = __import__("tests.security.fixtures", fromlist=["x"]).tree_snapshot(sandbox.root)
    error = sandbox.rejects(_sharded({"embeddings.word_embeddings.weight": shard}), "index_path_forbidden")
    assert "1234.5" not in error.message


def test_a_valid_shard_index_is_accepted(sandbox):
    weight_map = {"embeddings.word_embeddings.weight": "model-00001-of-00001.safetensors"}
    upload = sandbox.validate(_sharded(weight_map))
    assert "model.safetensors.index.json" in upload.files


def test_index_naming_a_tensor_the_shard_lacks_is_invalid(sandbox):
    sandbox.rejects(_sharded({"not.there": "model-00001-of-00001.safetensors"}), "invalid_weights")


@pytest.mark.parametrize(("key", "value"), [("vocab_file", "/etc/passwd"), ("tokenizer_file", "../outside/canary.bin"),
                                            ("merges_file", "sub/../../x"), ("fast_tokenizer_files", ["a", "/abs"]),
                                            ("vocab_file", "..\\secrets.toml")])
def test_tokenizer_config_file_keys_pointing_outside_the_folder_are_refused(sandbox, key, value):
    """Found while reviewing transformers: tokenizer_config.json `*_file` keys override the files found in the
    folder (tokenization_utils_base: `if args_name not in init_kwargs`), so they could read any path."""
    sandbox.rejects(hf_zip(**{"tokenizer_config.json": json.dumps({key: value}).encode()}), "index_path_forbidden")


def test_tokenizer_config_file_keys_naming_a_local_file_are_accepted(sandbox):
    config = {"vocab_file": "vocab.txt", "tokenizer_file": None}
    assert sandbox.validate(hf_zip(**{"tokenizer_config.json": json.dumps(config).encode()})).kind == "hf_folder"


# ------------------------------------------------------------------------------------------ threat 13: config
@pytest.mark.parametrize(("key", "value"), [("hidden_size", 10**6), ("num_hidden_layers", 10**5),
                                            ("vocab_size", 10**9), ("num_attention_heads", -1),
                                            ("intermediate_size", 10**12), ("max_position_embeddings", 2**40),
                                            ("hidden_size", "8"), ("num_hidden_layers", 1.5), ("vocab_size", True)])
def test_config_values_out_of_bounds_are_refused(sandbox, key, value):
    config = dict(TINY_CONFIG, **{key: value})
    sandbox.rejects(hf_zip(**{"config.json": json.dumps(config).encode()}), "config_out_of_bounds")


def test_config_claiming_far_more_parameters_than_the_weights_hold_is_refused(sandbox):
    """Plausible values (a 7B-like config) over 1 KB of weights: the library would allocate the rest."""
    config = dict(TINY_CONFIG, hidden_size=4096, num_hidden_layers=32, vocab_size=32000)
    error = sandbox.rejects(hf_zip(**{"config.json": json.dumps(config).encode()}), "config_out_of_bounds")
    assert "does not match the weights" in error.message


def test_config_rejection_happens_in_the_pre_validator_in_under_a_second(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    for name, data in hf_folder_files(**{"config.json": json.dumps(dict(TINY_CONFIG, hidden_size=10**6)).encode()}
                                      ).items():
        (folder / name).write_bytes(data)
    code = (
        "import sys; from pathlib import Path; from core.gate.ingest import validate_model_dir\n"
        "from core.errors import QuantLensError\n"
        f"try:\n    validate_model_dir(Path({str(folder)!r}))\nexcept QuantLensError as e:\n    print(e.code)\n"
        "print('torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    # Refused by the pre-validator before any ML library is imported (what keeps it fast; no stopwatch on a busy CI)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["config_out_of_bounds", "False", "False"]


# ------------------------------------------------------------------------------------------ threat 14: safetensors
_F32_2x2 = {"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}
MALFORMED = {
    "header_length_beyond_file": raw_safetensors(_F32_2x2, b"\0" * 16, declared_len=10**6),
    "header_over_limit": struct.pack("<Q", 200 * 2**20) + b"{}",
    "not_json": struct.pack("<Q", 4) + b"{abc" + b"\0" * 16,
    "offset_out_of_range": raw_safetensors({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 32]}},
                                           b"\0" * 16),
    "negative_offset": raw_safetensors({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [-4, 12]}},
                                       b"\0" * 16),
    "overlapping": raw_safetensors({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                    "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12),
    "gap": raw_safetensors({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8),
    "trailing_data": raw_safetensors(_F32_2x2, b"\0" * 20),
    "shape_product_overflow": raw_safetensors(
        {"w": {"dtype": "F32", "shape": [2**32, 2**32, 2**32, 4], "data_offsets": [0, 16]}}, b"\0" * 16),
    "dtype_size_mismatch": raw_safetensors({"w": {"dtype": "F64", "shape": [2, 2], "data_offsets": [0, 16]}},
                                           b"\0" * 16),
    "unknown_dtype": raw_safetensors({"w": {"dtype": "Q4", "shape": [2, 2], "data_offsets": [0, 16]}}, b"\0" * 16),
    "duplicate_keys": struct.pack("<Q", 2 * len(json.dumps(_F32_2x2)) - 1)
    + (json.dumps(_F32_2x2)[:-1] + "," + json.dumps(_F32_2x2)[1:]).encode() + b"\0" * 16,
    "metadata_not_strings": raw_safetensors({"__metadata__": {"a": 1}, **_F32_2x2}, b"\0" * 16),
    "extra_entry_key": raw_safetensors({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16], "x": 1}},
                                       b"\0" * 16),
    "short_file": b"\x10\0\0",
    "bool_dim": raw_safetensors({"w": {"dtype": "U8", "shape": [True], "data_offsets": [0, 1]}}, b"\0"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_safetensors_are_refused_by_our_parser(sandbox, name):
    sandbox.rejects(hf_zip(**{"model.safetensors": MALFORMED[name]}), "invalid_weights")


@pytest.mark.parametrize("name", sorted(set(MALFORMED) - {"duplicate_keys", "extra_entry_key", "bool_dim",
                                                          "header_over_limit"}))
def test_the_safetensors_library_also_refuses_each_malformation(tmp_path, name):
    """Keeps the table honest: each row is a real malformation, not something only our parser dislikes."""
    from safetensors import safe_open

    path = tmp_path / "w.safetensors"
    path.write_bytes(MALFORMED[name])
    with pytest.raises(Exception), safe_open(str(path), framework="numpy") as handle:  # noqa: B017
        for key in handle.keys():  # noqa: SIM118 - safe_open is not a dict
            handle.get_tensor(key)


def test_header_parse_reads_only_the_header(tmp_path, monkeypatch):
    import os

    path = tmp_path / "big.safetensors"
    data = tiny_safetensors({"w": np.zeros((256, 1024), dtype=np.float32)})
    path.write_bytes(data)
    read: list[int] = []
    original = os.fdopen

    class Counting:  # counts the bytes read (a byte count, not a stopwatch: CI machines are busy)
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def read(self, n=-1):
            chunk = self.handle.read(n)
            read.append(len(chunk))
            return chunk

        def fileno(self):
            return self.handle.fileno()

    monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: Counting(original(fd, *a, **k)))
    header = read_header(path)
    monkeypatch.undo()
    (header_len,) = struct.unpack("<Q", data[:8])
    assert sum(read) == 8 + header_len < len(data) // 100  # never the 1 MiB of tensor data
    assert header.total_elements == 256 * 1024 and header.data_bytes == 256 * 1024 * 4


def test_empty_safetensors_header_is_valid():
    header = parse_header_bytes(struct.pack("<Q", 2) + b"{}", 10)
    assert header.tensors == () and header.data_bytes == 0


def test_a_weights_folder_without_safetensors_is_refused(sandbox):
    sandbox.rejects(hf_zip(**{"model.safetensors": None}), "invalid_weights")


def test_error_for_malformed_weights_is_a_quantlens_error_not_a_crash():
    with pytest.raises(QuantLensError) as caught:
        parse_header_bytes(MALFORMED["shape_product_overflow"], len(MALFORMED["shape_product_overflow"]))
    assert caught.value.code == "invalid_weights" and "w" in caught.value.message
