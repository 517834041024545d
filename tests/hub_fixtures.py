"""Pytest fixtures around bench/_shared/hub_server.py: a local Hub on 127.0.0.1 with a few repos, HF_ENDPOINT set to it."""

from __future__ import annotations

import json

import pytest

from bench._shared import hub_server as hs

BIG_SHA = "fedcba9876543210fedcba9876543210fedcba98"


def _json(obj: dict) -> hs.HubFile:
    data = json.dumps(obj).encode()
    return hs.HubFile(data, len(data))


def big_llama_config() -> dict:
    """Llama-3.1-8B's shape: large enough that its weights could never be downloaded in a test."""
    return {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
            "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256,
            "max_position_embeddings": 131072, "tie_word_embeddings": False, "torch_dtype": "bfloat16"}


@pytest.fixture
def online_hub(monkeypatch):
    """The test suite sets HF_HUB_OFFLINE=1 for the compare worker; the lookup's tests need the library online
    (against 127.0.0.1 only), so the flag huggingface_hub read at import is turned off and its sessions rebuilt."""
    import huggingface_hub.constants
    from huggingface_hub.utils import reset_sessions

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    reset_sessions()
    yield
    monkeypatch.undo()
    reset_sessions()


@pytest.fixture
def local_hub(tmp_path, monkeypatch, online_hub):
    """A running local Hub with: a tiny single-file repo, a sharded 8B repo (virtual bodies), a GGUF repo (one
    file and one split in two), a repo without config, a gated and a private repo, and an AWQ repo."""
    from core.sizing import hub

    fake = hs.FakeHub()
    tiny_cfg = dict(hs.TINY_LLAMA)
    fake.add("tiny/llama", hs.HubRepo({"config.json": _json(tiny_cfg),
                                       "model.safetensors": hs.safetensors_file(hs.llama_tensor_shapes(tiny_cfg)),
                                       "README.md": _json({})}, branches={"v1": "1" * 40}))
    big_cfg = big_llama_config()
    shapes = list(hs.llama_tensor_shapes(big_cfg).items())
    half = len(shapes) // 2
    fake.add("big/llama-8b", hs.HubRepo({
        "config.json": _json(big_cfg),
        "model-00001-of-00002.safetensors": hs.declared_safetensors_file(dict(shapes[:half])),
        "model-00002-of-00002.safetensors": hs.declared_safetensors_file(dict(shapes[half:])),
        "model.safetensors.index.json": _json({"metadata": {}, "weight_map": {}}),
    }, sha=BIG_SHA))
    fake.add("tiny/no-config", hs.HubRepo({"model.safetensors": hs.safetensors_file(hs.llama_tensor_shapes(tiny_cfg))}))
    gguf_one = hs.gguf_file(tmp_path, tiny_cfg)
    gguf_part1 = hs.gguf_file(tmp_path, tiny_cfg, file_type="MOSTLY_Q8_0", split=(1, 2))
    fake.add("tiny/llama-GGUF", hs.HubRepo({
        "tiny-llama-Q8_0.gguf": gguf_one,
        "split/tiny-llama-Q8_0-00001-of-00002.gguf": gguf_part1,
        "split/tiny-llama-Q8_0-00002-of-00002.gguf": hs.gguf_split_tail(tmp_path),
        "README.md": _json({}),
    }))
    fake.add("gated/llama", hs.HubRepo({"config.json": _json(tiny_cfg),
                                        "model.safetensors": hs.safetensors_file(hs.llama_tensor_shapes(tiny_cfg))},
                                       gated=True))
    fake.add("secret/llama", hs.HubRepo({"config.json": _json(tiny_cfg),
                                         "model.safetensors": hs.safetensors_file(hs.llama_tensor_shapes(tiny_cfg))},
                                        private=True))
    awq_cfg = dict(big_cfg, quantization_config={"quant_method": "awq", "bits": 4, "group_size": 128})
    awq_shapes = {}
    for name, shape in hs.llama_tensor_shapes(big_cfg).items():
        if "layers" in name and name.endswith("proj.weight"):
            out_f, in_f = shape
            base = name.removesuffix(".weight")
            awq_shapes[base + ".qweight"] = (in_f, out_f // 8)
            awq_shapes[base + ".qzeros"] = (in_f // 128, out_f // 8)
            awq_shapes[base + ".scales"] = (in_f // 128, out_f)
        else:
            awq_shapes[name] = shape
    awq_file = hs.declared_safetensors_file({k: v for k, v in awq_shapes.items() if not k.endswith(("qweight", "qzeros"))},
                                            dtype="F16")
    int_file = hs.declared_safetensors_file({k: v for k, v in awq_shapes.items() if k.endswith(("qweight", "qzeros"))},
                                            dtype="I32", bytes_per=4)
    fake.add("quant/llama-8b-awq", hs.HubRepo({"config.json": _json(awq_cfg),
                                               "model-00001-of-00002.safetensors": awq_file,
                                               "model-00002-of-00002.safetensors": int_file}))
    fake.add("hostile/huge-header", hs.HubRepo({"config.json": _json(tiny_cfg), "model.safetensors": hs.HubFile(
        (100 * 2**20).to_bytes(8, "little") + b"{", 200 * 2**20)}))
    server, _thread = hs.start(fake)
    monkeypatch.setenv("HF_ENDPOINT", fake.url)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    hub.clear_cache()
    yield fake
    hub.clear_cache()
    fake.released.set()
    server.shutdown()
    server.server_close()
