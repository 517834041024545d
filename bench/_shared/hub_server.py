"""A local stand-in for the Hugging Face Hub, on 127.0.0.1, for the lookup's tests (no test touches the internet).

It answers exactly the HTTP calls huggingface_hub makes for a lookup: the model-info API
(`/api/models/{repo}[/revision/{rev}]`, with `?blobs=true` sizes), and `GET`/`HEAD` `/{repo}/resolve/{rev}/{file}`
with Range, `X-Repo-Commit`, `ETag`, `Content-Length` and `X-Linked-Size`; gated and private repos answer 401/403
with the Hub's `X-Error-Code` headers. Files are made by the real writers (`safetensors.numpy.save`,
`gguf.GGUFWriter`); a large model is served as its real header followed by a virtual body of zeros, so its declared
size is the real one while the test machine stores only the header. Every request and every body byte is counted.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

TOKEN = "hf_test_token_not_a_secret_0123456789"


@dataclass
class HubFile:
    head: bytes  # the real bytes at the start of the file
    size: int  # the declared (real) size; bytes past `head` are zeros

    def read(self, start: int, stop: int) -> bytes:
        stop = min(stop, self.size)
        if start >= stop:
            return b""
        real = self.head[start:stop]
        return real + bytes(stop - start - len(real))


@dataclass
class HubRepo:
    files: dict[str, HubFile]
    sha: str = "0123456789abcdef0123456789abcdef01234567"
    gated: bool = False
    private: bool = False
    branches: dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
    method: str
    path: str
    status: int
    body_bytes: int
    authorization: str | None
    range: str | None


class FakeHub:
    """The repos it serves, what it has been asked, and failures to inject (`fail_status`)."""

    def __init__(self) -> None:
        self.repos: dict[str, HubRepo] = {}
        self.log: list[Request] = []
        self.fail_status: int | None = None
        self.ignore_range = False
        self.stall = threading.Event()  # while set, every request waits (released at teardown): a hub that hangs
        self.released = threading.Event()
        self.lock = threading.Lock()
        self.url = ""

    def add(self, repo_id: str, repo: HubRepo) -> HubRepo:
        self.repos[repo_id] = repo
        return repo

    def reset_log(self) -> None:
        with self.lock:
            self.log.clear()

    @property
    def requests(self) -> int:
        return len(self.log)

    @property
    def body_bytes(self) -> int:
        return sum(r.body_bytes for r in self.log)


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            sent = len(body) if self.command != "HEAD" else 0
            with hub.lock:  # logged before answering, so a test that has its answer also sees it counted
                hub.log.append(Request(self.command, self.path, status, sent, self.headers.get("Authorization"),
                                       self.headers.get("Range")))
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            if "Content-Length" not in (headers or {}):
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if sent:
                self.wfile.write(body)

        def _error(self, status: int, code: str, message: str = "") -> None:
            body = json.dumps({"error": message or code}).encode()
            self._send(status, body, {"X-Error-Code": code, "X-Error-Message": message or code,
                                      "Content-Type": "application/json"})

        def _authorized(self, repo: HubRepo) -> bool:
            return not (repo.gated or repo.private) or self.headers.get("Authorization") == f"Bearer {TOKEN}"

        def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
            self.do_GET()

        def do_GET(self) -> None:  # noqa: N802
            if hub.stall.is_set():
                hub.released.wait(timeout=30)
            if hub.fail_status is not None:
                self._error(hub.fail_status, "Injected", "injected failure")
                return
            path, _, _query = self.path.partition("?")
            m = re.match(r"^/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?$", path)
            if m:
                self._model_info(m.group(1), m.group(2))
                return
            m = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
            if m:
                self._resolve(m.group(1), m.group(2), m.group(3))
                return
            self._error(404, "NotFound")

        def _repo(self, repo_id: str) -> HubRepo | None:
            repo = hub.repos.get(repo_id)
            if repo is None or (repo.private and not self._authorized(repo)):
                self._error(401 if repo is not None or self.headers.get("Authorization") is None else 404,
                            "RepoNotFound", "Repository not found")
                return None
            return repo

        def _commit(self, repo: HubRepo, revision: str | None) -> str | None:
            from urllib.parse import unquote

            revision = unquote(revision or "main")
            if revision in (repo.sha, "main"):
                return repo.sha
            if revision in repo.branches.values():
                return revision
            return repo.branches.get(revision)

        def _model_info(self, repo_id: str, revision: str | None) -> None:
            repo = self._repo(repo_id)
            if repo is None:
                return
            sha = self._commit(repo, revision)
            if sha is None:
                self._error(404, "RevisionNotFound", "Invalid rev id")
                return
            siblings = []
            for name, f in sorted(repo.files.items()):
                entry: dict[str, Any] = {"rfilename": name, "size": f.size, "blobId": hashlib.sha1(name.encode()).hexdigest()}
                if not name.endswith(".json"):
                    entry["lfs"] = {"size": f.size, "sha256": hashlib.sha256(name.encode()).hexdigest(), "pointerSize": 134}
                siblings.append(entry)
            body = json.dumps({"id": repo_id, "modelId": repo_id, "sha": sha, "private": repo.private,
                               "gated": "manual" if repo.gated else False, "disabled": False, "downloads": 0,
                               "likes": 0, "tags": [], "siblings": siblings}).encode()
            self._send(200, body, {"Content-Type": "application/json"})

        def _resolve(self, repo_id: str, revision: str, filename: str) -> None:
            repo = hub.repos.get(repo_id)
            if repo is None or (repo.private and not self._authorized(repo)):
                self._error(401, "RepoNotFound", "Repository not found")
                return
            if not self._authorized(repo):
                self._error(401, "GatedRepo", "Access to model is restricted")
                return
            sha = self._commit(repo, revision)
            if sha is None:
                self._error(404, "RevisionNotFound", "Invalid rev id")
                return
            from urllib.parse import unquote

            f = repo.files.get(unquote(filename))  # the client percent-encodes names ("[", " ", "<"), as the Hub reads them
            if f is None:
                self._error(404, "EntryNotFound", "Entry not found")
                return
            headers = {"X-Repo-Commit": sha, "ETag": f'"{hashlib.sha256(filename.encode()).hexdigest()}"',
                       "X-Linked-Size": str(f.size), "Accept-Ranges": "bytes",
                       "Content-Type": "application/octet-stream"}
            wanted = self.headers.get("Range")
            m = re.match(r"^bytes=(\d+)-(\d*)$", wanted or "")
            if m and not hub.ignore_range:
                start = int(m.group(1))
                stop = min(int(m.group(2)) + 1 if m.group(2) else f.size, f.size)
                body = f.read(start, stop)
                headers["Content-Range"] = f"bytes {start}-{stop - 1}/{f.size}"
                self._send(206, body, headers)
                return
            # a whole file is only ever served for small files here; a lookup must never ask for one
            self._send(200, f.read(0, min(f.size, 64 * 2**20)), headers)

    return Handler


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up after the bytes it asked for is expected, not an error


def start(hub: FakeHub) -> tuple[ThreadingHTTPServer, threading.Thread]:
    server = _QuietServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


# ------------------------------------------------------------------------------------------- file makers

TINY_LLAMA = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 1000,
              "max_position_embeddings": 4096, "tie_word_embeddings": False, "torch_dtype": "float16",
              "architectures": ["LlamaForCausalLM"]}


def llama_tensor_shapes(cfg: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Hugging Face tensor names and shapes of a Llama checkpoint (written by hand, not from the engine)."""
    h, v, i = cfg["hidden_size"], cfg["vocab_size"], cfg["intermediate_size"]
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = h // heads
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (v, h), "model.norm.weight": (h,)}
    if not cfg.get("tie_word_embeddings"):
        shapes["lm_head.weight"] = (v, h)
    for n in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{n}."
        shapes |= {p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,),
                   p + "self_attn.q_proj.weight": (heads * hd, h), p + "self_attn.k_proj.weight": (kv * hd, h),
                   p + "self_attn.v_proj.weight": (kv * hd, h), p + "self_attn.o_proj.weight": (h, heads * hd),
                   p + "mlp.gate_proj.weight": (i, h), p + "mlp.up_proj.weight": (i, h),
                   p + "mlp.down_proj.weight": (h, i)}
    return shapes


def safetensors_file(shapes: dict[str, tuple[int, ...]], dtype: Any = np.float16) -> HubFile:
    """A real file from the real writer (small models only: the whole file is in memory)."""
    from safetensors.numpy import save

    data = save({name: np.zeros(shape, dtype=dtype) for name, shape in shapes.items()}, metadata={"format": "pt"})
    return HubFile(data, len(data))


def declared_safetensors_file(shapes: dict[str, tuple[int, ...]], dtype: str = "BF16", bytes_per: float = 2.0,
                              header_pad: int = 0) -> HubFile:
    """The real header layout for tensors too large to write; the body is virtual, so the size is the real one."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in shapes.items():
        n = int(math.prod(shape) * bytes_per)
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((-len(text)) % 8 + header_pad)
    head = len(text).to_bytes(8, "little") + text
    return HubFile(head, len(head) + offset)


def gguf_file(tmp: Path, cfg: dict[str, Any], arch: str = "llama", file_type: str = "MOSTLY_Q8_0",
              split: tuple[int, int] | None = None) -> HubFile:
    """A GGUF file from the real writer: metadata + tensor infos; tensor data virtual (zeros), size real."""
    import gguf

    h, v, i = cfg["hidden_size"], cfg["vocab_size"], cfg["intermediate_size"]
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = h // heads
    path = tmp / f"model-{arch}-{file_type}-{split}.gguf"
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_embedding_length(h)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_feed_forward_length(i)
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType[file_type])
    w.add_token_list([f"tok{n}" for n in range(v)])
    q8 = gguf.GGMLQuantizationType.Q8_0
    block, type_size = gguf.GGML_QUANT_SIZES[q8]
    tensors: list[tuple[str, tuple[int, int] | tuple[int]]] = [("token_embd.weight", (v, h)), ("output_norm.weight", (h,)),
                                                             ("output.weight", (v, h))]
    for n in range(cfg["num_hidden_layers"]):
        tensors += [(f"blk.{n}.attn_norm.weight", (h,)), (f"blk.{n}.ffn_norm.weight", (h,)),
                    (f"blk.{n}.attn_q.weight", (heads * hd, h)), (f"blk.{n}.attn_k.weight", (kv * hd, h)),
                    (f"blk.{n}.attn_v.weight", (kv * hd, h)), (f"blk.{n}.attn_output.weight", (h, heads * hd)),
                    (f"blk.{n}.ffn_gate.weight", (i, h)), (f"blk.{n}.ffn_up.weight", (i, h)),
                    (f"blk.{n}.ffn_down.weight", (h, i))]
    total = 0
    for name, shape in tensors:
        if len(shape) == 1:
            nbytes = shape[0] * 4
            w.add_tensor_info(name, shape, np.dtype(np.float32), nbytes)
        else:
            rows, cols = shape
            nbytes = rows * cols // block * type_size
            w.add_tensor_info(name, (rows, cols // block * type_size), np.dtype(np.uint8), nbytes, raw_dtype=q8)
        total += nbytes + (-nbytes) % 32
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    head = path.read_bytes()
    return HubFile(head, len(head) + (-len(head)) % 32 + total)


def gguf_tensor_bytes(cfg: dict[str, Any]) -> int:
    """Exact tensor bytes of gguf_file(cfg): Q8_0 (34 bytes per 32 weights) for matrices, F32 for norms."""
    h, v, i, layers = cfg["hidden_size"], cfg["vocab_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    kv_dim = cfg["num_key_value_heads"] * (h // cfg["num_attention_heads"])
    matrices = 2 * v * h + layers * (2 * h * h + 2 * kv_dim * h + 3 * i * h)
    return matrices // 32 * 34 + (h + 2 * h * layers) * 4


def gguf_split_tail(tmp: Path) -> HubFile:
    """A later part of a split GGUF: its own header (split metadata) and, here, no tensors."""
    import gguf

    path = tmp / "tail.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_uint16("split.no", 1)
    w.add_uint16("split.count", 2)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    head = path.read_bytes()
    return HubFile(head, len(head))
