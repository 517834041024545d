"""Hostile and benign model uploads, built in the test from scratch (onnx.helper, safetensors.numpy, zipfile).

Nothing is downloaded. Each builder returns bytes or writes a file, so tests can also mutate them (fuzzing).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import struct
import warnings
import zipfile
from pathlib import Path

import numpy as np

TINY_CONFIG = {
    "model_type": "bert",
    "architectures": ["BertModel"],
    "hidden_size": 8,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 16,
    "vocab_size": 16,
    "max_position_embeddings": 32,
}


def tiny_safetensors(tensors: dict[str, np.ndarray] | None = None) -> bytes:
    from safetensors.numpy import save

    if tensors is None:
        rng = np.random.default_rng(0)
        tensors = {
            "embeddings.word_embeddings.weight": rng.standard_normal((16, 8), dtype=np.float32),
            "encoder.layer.0.attention.self.query.weight": rng.standard_normal((8, 8), dtype=np.float32),
            "encoder.layer.0.attention.output.dense.weight": rng.standard_normal((8, 8), dtype=np.float32),
        }
    return save(tensors)


def raw_safetensors(header: dict, data: bytes, *, declared_len: int | None = None) -> bytes:
    """Hand-built safetensors bytes, so a test can write any malformation the library would refuse to save."""
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text) if declared_len is None else declared_len) + text + data


def hf_folder_files(**overrides: bytes | None) -> dict[str, bytes]:
    """A valid tiny HF folder as {relative name: bytes}; pass name=None to drop a file, name=bytes to replace."""
    files: dict[str, bytes | None] = {
        "config.json": json.dumps(TINY_CONFIG).encode(),
        "model.safetensors": tiny_safetensors(),
        "tokenizer_config.json": json.dumps({"model_max_length": 32}).encode(),
        "vocab.txt": "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "world"]).encode(),
    }
    files.update(overrides)
    return {name: data for name, data in files.items() if data is not None}


def zip_bytes(entries: list[tuple[str | zipfile.ZipInfo, bytes]], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        warnings.simplefilter("ignore", UserWarning)  # duplicate names are the point of some fixtures
        for name, data in entries:
            if isinstance(name, zipfile.ZipInfo):
                archive.writestr(name, data)
            else:
                archive.writestr(name, data, compress_type=compression)
    return buffer.getvalue()


def hf_zip(top: str | None = "my-model", **overrides: bytes | None) -> bytes:
    prefix = f"{top}/" if top else ""
    return zip_bytes([(prefix + name, data) for name, data in hf_folder_files(**overrides).items()])


def zip_info(name: str, *, mode: int | None = None, create_system: int = 3) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = create_system
    if mode is not None:
        info.external_attr = (mode & 0xFFFF) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def symlink_info(name: str) -> zipfile.ZipInfo:
    return zip_info(name, mode=stat.S_IFLNK | 0o777)


# ------------------------------------------------------------------------------------------------ ONNX
def onnx_model(*, initializer_external: str | None = None, nodes=None, initializers=None, functions=None,
               opset_domains: tuple[tuple[str, int], ...] = (), sparse_initializers=None):
    """Y = X + W with a 2-element initializer W; optionally mark W as stored externally at a given location."""
    from onnx import TensorProto, helper

    weight = helper.make_tensor("W", TensorProto.FLOAT, [2], [1.0, 2.0])
    if initializer_external is not None:
        mark_external(weight, initializer_external)
    graph = helper.make_graph(
        nodes if nodes is not None else [helper.make_node("Add", ["X", "W"], ["Y"])],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2])],
        initializer=initializers if initializers is not None else [weight],
        sparse_initializer=sparse_initializers or [],
    )
    opsets = [helper.make_opsetid("", 17)] + [helper.make_opsetid(d, v) for d, v in opset_domains]
    model = helper.make_model(graph, opset_imports=opsets, functions=functions or [])
    model.ir_version = 8
    return model


def mark_external(tensor, location: str, **extra: str) -> None:
    """Point a tensor at an external file the way onnx.external_data_helper does (no file is written)."""
    from onnx import TensorProto

    tensor.ClearField("float_data")
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location
    for key, value in extra.items():
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value


def external_tensor(name: str = "W", location: str = "../outside/canary.bin"):
    from onnx import TensorProto, helper

    tensor = helper.make_tensor(name, TensorProto.FLOAT, [2], [1.0, 2.0])
    mark_external(tensor, location)
    return tensor


def model_bytes(model) -> bytes:
    return model.SerializeToString()


# ------------------------------------------------------------------------------------------------ trees
def tree_snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every path under root with size, mtime and content hash (links recorded, never followed)."""
    snapshot: dict[str, tuple[int, int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            info = path.lstat()
            digest = ""
            if stat.S_ISREG(info.st_mode):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            snapshot[str(path.relative_to(root))] = (info.st_size, info.st_mtime_ns, digest)
    return snapshot


def files_containing(root: Path, needle: bytes) -> list[Path]:
    hits = []
    for dirpath, _, filenames in os.walk(root, followlinks=False):
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink() and needle in path.read_bytes():
                hits.append(path)
    return hits
