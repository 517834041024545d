"""What one Hub lookup costs: requests, bytes and time, cold and cached, against the local Hub on 127.0.0.1.

The local server (bench/_shared/hub_server.py) serves files from the real safetensors and gguf writers, with the real
sizes of an 8B model, so the byte counts are what huggingface.co would send for the same repo layout; the times
are this machine's parsing plus loopback HTTP, not the internet's latency (add ~1 round trip per request).

Run: .venv/bin/python bench/bench_hub.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.pop("HF_HUB_OFFLINE", None)
os.environ.pop("TRANSFORMERS_OFFLINE", None)
os.environ["NO_PROXY"] = "127.0.0.1"

from bench._shared import hub_server as hs  # noqa: E402
from core.sizing import hub  # noqa: E402

CONFIG = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
          "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256, "max_position_embeddings": 131072,
          "tie_word_embeddings": False}


def _json(obj: dict) -> hs.HubFile:
    data = json.dumps(obj).encode()
    return hs.HubFile(data, len(data))


def _hub(tmp: Path) -> hs.FakeHub:
    fake = hs.FakeHub()
    cfg = CONFIG
    shapes = hs.llama_tensor_shapes(cfg)
    fake.add("bench/llama-8b-single", hs.HubRepo({"config.json": _json(cfg),
                                                  "model.safetensors": hs.declared_safetensors_file(shapes)}))
    items = list(shapes.items())
    fake.add("bench/llama-8b-4-shards", hs.HubRepo({"config.json": _json(cfg), **{
        f"model-0000{i + 1}-of-00004.safetensors": hs.declared_safetensors_file(dict(items[i::4])) for i in range(4)}}))
    fake.add("bench/tiny-GGUF", hs.HubRepo({"tiny-Q8_0.gguf": hs.gguf_file(tmp, hs.TINY_LLAMA)}))
    fake.add("bench/llama3-vocab-GGUF", hs.HubRepo({"m-Q4_K_M.gguf": _llama3_vocab_gguf(tmp)}))
    return fake


def _llama3_vocab_gguf(tmp: Path) -> hs.HubFile:
    """A header the size of a real Llama-3 GGUF's (128,256 tokens and 280,147 merges: ~9 MB), data virtual."""
    import gguf
    import numpy as np

    path = tmp / "llama3.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(32)
    w.add_embedding_length(4096)
    w.add_head_count(32)
    w.add_head_count_kv(8)
    w.add_feed_forward_length(14336)
    w.add_context_length(131072)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M)
    w.add_token_list([f"token{n}" for n in range(128256)])
    w.add_token_merges([f"tok{n} en{n}" for n in range(280147)])
    nbytes = 128256 * 4096 // 256 * 144
    w.add_tensor_info("token_embd.weight", (128256, 4096 // 256 * 144), np.dtype(np.uint8), nbytes,
                      raw_dtype=gguf.GGMLQuantizationType.Q4_K)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    head = path.read_bytes()
    return hs.HubFile(head, len(head) + 64 + nbytes)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fake = _hub(Path(tmp))
        server, _ = hs.start(fake)
        os.environ["HF_ENDPOINT"] = fake.url
        print(f"{'repo':28} {'requests':>8} {'bytes':>10} {'cold ms p50':>12} {'cached ms p50':>14} {'cold/cached':>12}")
        for repo in fake.repos:
            cold, cached = [], []
            for _ in range(args.repeat):
                hub.clear_cache()
                fake.reset_log()
                t = time.perf_counter()
                hub.lookup(repo)
                cold.append((time.perf_counter() - t) * 1000)
                requests, body = fake.requests, fake.body_bytes
                t = time.perf_counter()
                hub.lookup(repo)
                cached.append((time.perf_counter() - t) * 1000)
            c, w = statistics.median(cold), statistics.median(cached)
            print(f"{repo:28} {requests:>8} {body:>10,} {c:>12.1f} {w:>14.3f} {c / w:>11.0f}x")
        server.shutdown()


if __name__ == "__main__":
    main()
