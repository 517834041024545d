"""A hostile stand-in for the Hugging Face Hub on 127.0.0.1, and a way to measure one lookup against it.

Why here (bench/, standard library only): bench/bench_hub_hostile.py prints what each hostile case costs, and
tests/security/test_hub_hostile.py checks each is refused; both use this one server, and the bench imports
nothing from tests/. Each case is a repo id under `hostile/` (threats round three, issue 20):

  hostile/gguf-string-arrays   a 7 MB GGUF header of 200 arrays x 4,096 one-character strings
  hostile/gguf-199k-tensors    a GGUF header declaring (and holding) 199,000 tensor infos
  hostile/safetensors-lists    two shards, each with a 16 MiB header of ~5.6 M empty JSON lists
  hostile/gzip-info            a 400 KB gzip model-info answer that inflates to 400 MB
  hostile/trickle-info         the model-info body sent 1 byte every `trickle_s` seconds
  hostile/trickle-config       config.json sent 1 byte every `trickle_s` seconds
  hostile/trickle-headers      the model-info status line and headers sent 1 byte every `trickle_s` seconds
  hostile/redirect-config      config.json redirected to another server (another 127.0.0.1 port)
  hostile/redirect-info        the model-info API redirected to another server
  hostile/passwd-gguf          a file list naming ../../../../etc/passwd.gguf
  honest/tiny                  a normal small repo (config.json + one safetensors file), the control

and, just under each limit (what an attacker can still make a lookup do; each must stay within the budget):

  at-cap/gguf-arrays           40 string arrays x 50,000 strings (18 MB header; at most 64 arrays, 2 M strings)
  at-cap/gguf-tensors          65,536 tensor infos (the most a GGUF may declare)
  at-cap/safetensors-tensors   8 valid shards of 18,000 tensors each (1.15 M JSON values, under the 1.2 M cap)
  at-cap/model-info            20,000 files with 900-character names (a ~19 MB model-info answer)

The other server answers every request it gets with a valid repo, so a client that follows a redirect there
succeeds; it records each request's path and Authorization header (`HostileHub.elsewhere_log`).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHA = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "hf_hostile_test_token_not_a_secret_42"
TINY_CONFIG = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
               "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 1000,
               "max_position_embeddings": 4096, "tie_word_embeddings": False, "torch_dtype": "float16"}
AT_CAP_CASES = ("gguf-arrays", "gguf-tensors", "safetensors-tensors", "model-info")
CASES = ("gguf-string-arrays", "gguf-199k-tensors", "safetensors-lists", "gzip-info", "trickle-info",
         "trickle-config", "trickle-headers", "redirect-config", "redirect-info", "passwd-gguf")


@dataclass
class Blob:
    head: bytes  # real bytes at the start
    size: int  # declared size; bytes past `head` read as zeros

    def read(self, start: int, stop: int) -> bytes:
        stop = min(stop, self.size)
        if start >= stop:
            return b""
        real = self.head[start:stop]
        return real + bytes(stop - start - len(real))


# ------------------------------------------------------------------------------------------- file makers

def _gs(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def _kv_str(key: str, value: str) -> bytes:
    return _gs(key) + struct.pack("<I", 8) + _gs(value)


def _kv_u32(key: str, value: int) -> bytes:
    return _gs(key) + struct.pack("<I", 4) + struct.pack("<I", value)


def _gguf(kvs: list[bytes], tensors: list[bytes]) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs) + b"".join(tensors)


def _llama_kvs() -> list[bytes]:
    return [_kv_str("general.architecture", "llama"), _kv_u32("llama.block_count", 2),
            _kv_u32("llama.embedding_length", 64), _kv_u32("llama.attention.head_count", 4),
            _kv_u32("llama.feed_forward_length", 128), _kv_u32("llama.context_length", 4096)]


def _tensor_info(name: str, dims: tuple[int, ...], ggml_type: int, offset: int) -> bytes:
    return _gs(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims) + struct.pack("<IQ", ggml_type, offset)


def gguf_string_arrays(arrays: int = 200, strings: int = 4096) -> Blob:
    """~7 MB: `arrays` metadata arrays of `strings` one-character strings each (no model has more than a few)."""
    body = b"".join(_gs(chr(97 + n % 26)) for n in range(strings))
    kvs = _llama_kvs() + [_gs(f"hostile.array.{i}") + struct.pack("<IIQ", 9, 8, strings) + body for i in range(arrays)]
    head = _gguf(kvs, [_tensor_info("output_norm.weight", (64,), 0, 0)])
    return Blob(head, len(head) + 64 * 4 + 32)


def gguf_many_tensors(count: int = 199_000) -> Blob:
    """A header whose tensor-info table really holds `count` small F32 tensors (~8 MB)."""
    infos = [_tensor_info(f"t.{i}", (8,), 0, 32 * i) for i in range(count)]
    head = _gguf(_llama_kvs(), infos)
    return Blob(head, len(head) + 32 * count + 32)


_LIST_BOMB: bytes | None = None


def safetensors_list_bomb(header_bytes: int = 16 * 2**20) -> Blob:
    """A header of exactly `header_bytes` holding ~header_bytes/3 empty lists (`[],`): 5.6 M at 16 MiB."""
    global _LIST_BOMB
    if _LIST_BOMB is None or len(_LIST_BOMB) != 8 + header_bytes:
        n = (header_bytes - 12) // 3
        text = b'{"a":[' + b"[]," * n + b'[]]}'
        text += b" " * (header_bytes - len(text))
        _LIST_BOMB = struct.pack("<Q", header_bytes) + text
    return Blob(_LIST_BOMB, len(_LIST_BOMB) + 1024)


def safetensors_many_tensors(count: int, shard: int) -> Blob:
    """A valid header of `count` one-element F32 tensors (8 JSON values each by the lookup's count)."""
    header = {f"s{shard}.t{n}": {"dtype": "F32", "shape": [1], "data_offsets": [4 * n, 4 * n + 4]} for n in range(count)}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((-len(text)) % 8)
    head = struct.pack("<Q", len(text)) + text
    return Blob(head, len(head) + 4 * count)


def tiny_safetensors() -> Blob:
    """The real header layout of TINY_CONFIG's F16 tensors; the data is zeros (never read by a lookup)."""
    c = TINY_CONFIG
    h, v, i, kv = c["hidden_size"], c["vocab_size"], c["intermediate_size"], c["num_key_value_heads"] * 16
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (v, h), "model.norm.weight": (h,),
                                          "lm_head.weight": (v, h)}
    for n in range(c["num_hidden_layers"]):
        p = f"model.layers.{n}."
        shapes |= {p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,),
                   p + "self_attn.q_proj.weight": (h, h), p + "self_attn.k_proj.weight": (kv, h),
                   p + "self_attn.v_proj.weight": (kv, h), p + "self_attn.o_proj.weight": (h, h),
                   p + "mlp.gate_proj.weight": (i, h), p + "mlp.up_proj.weight": (i, h), p + "mlp.down_proj.weight": (h, i)}
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in shapes.items():
        n = 2
        for d in shape:
            n *= d
        header[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((-len(text)) % 8)
    head = struct.pack("<Q", len(text)) + text
    return Blob(head, len(head) + offset)


def _json_blob(obj: Any) -> Blob:
    data = json.dumps(obj).encode()
    return Blob(data, len(data))


_GZIP_INFO: bytes | None = None


def gzip_info_bomb(inflated: int = 400 * 10**6) -> bytes:
    """~400 KB of gzip that inflates to `inflated` bytes of a model-info JSON (spaces inside its file list)."""
    global _GZIP_INFO
    if _GZIP_INFO is None:
        z = zlib.compressobj(9, zlib.DEFLATED, 31)
        out = [z.compress(json.dumps({"id": "hostile/gzip-info", "sha": SHA}).encode()[:-1] + b',"siblings":[')]
        chunk = b" " * (4 * 2**20)
        left = inflated
        while left > 0:
            out.append(z.compress(chunk[:left]))
            left -= len(chunk)
        out.append(z.compress(b"]}") + z.flush())
        _GZIP_INFO = b"".join(out)
    return _GZIP_INFO


def _tiny() -> dict[str, Blob]:
    return {"config.json": _json_blob(TINY_CONFIG), "model.safetensors": tiny_safetensors()}


_REPOS: dict[str, Any] = {  # repo id -> its files, built on first request (some take seconds)
    "honest/tiny": _tiny,
    "at-cap/gguf-arrays": lambda: {"model-Q8_0.gguf": gguf_string_arrays(40, 50_000)},
    "at-cap/gguf-tensors": lambda: {"model-Q8_0.gguf": gguf_many_tensors(65_536)},
    "at-cap/safetensors-tensors": lambda: {"config.json": _json_blob(TINY_CONFIG), **{
        f"model-0000{n}-of-00008.safetensors": safetensors_many_tensors(18_000, n) for n in range(1, 9)}},
    "at-cap/model-info": lambda: {**_tiny(), **{f"docs/{n:05d}-{'x' * 890}.md": Blob(b"", 1) for n in range(19_990)}},
    "hostile/gguf-string-arrays": lambda: {"model-Q8_0.gguf": gguf_string_arrays()},
    "hostile/gguf-199k-tensors": lambda: {"model-Q8_0.gguf": gguf_many_tensors()},
    "hostile/safetensors-lists": lambda: {"config.json": _json_blob(TINY_CONFIG),
                                          "model-00001-of-00002.safetensors": safetensors_list_bomb(),
                                          "model-00002-of-00002.safetensors": safetensors_list_bomb()},
    **{f"hostile/{c}": _tiny for c in ("gzip-info", "trickle-info", "trickle-config", "trickle-headers",
                                       "redirect-config", "redirect-info")},
    "hostile/passwd-gguf": lambda: {"../../../../etc/passwd.gguf": gguf_string_arrays(1, 4)},
}


def _info(repo_id: str, files: dict[str, Blob]) -> bytes:
    siblings = [{"rfilename": name, "size": blob.size} for name, blob in sorted(files.items())]
    return json.dumps({"id": repo_id, "modelId": repo_id, "sha": SHA, "private": False, "gated": False,
                       "siblings": siblings}).encode()


# ------------------------------------------------------------------------------------------------ servers

@dataclass
class Logged:
    path: str
    authorization: str | None


@dataclass
class HostileHub:
    """The hostile Hub (`url`) and the other host it redirects to (`elsewhere_url`); close() stops both."""

    trickle_s: float = 5.0
    url: str = ""
    elsewhere_url: str = ""
    log: list[Logged] = field(default_factory=list)
    elsewhere_log: list[Logged] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    _servers: list[ThreadingHTTPServer] = field(default_factory=list)
    _built: dict[str, dict[str, Blob]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def files(self, repo_id: str) -> dict[str, Blob] | None:
        """A repo's files, built once on first use; None for a repo this Hub does not have."""
        make = _REPOS.get(repo_id)
        if make is None:
            return None
        with self._lock:
            if repo_id not in self._built:
                self._built[repo_id] = make()
            return self._built[repo_id]

    def close(self) -> None:
        self.stopping.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()


def _handler(hub: HostileHub, elsewhere: bool) -> type[BaseHTTPRequestHandler]:
    import re

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None, trickle: bool = False) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not trickle:
                self.wfile.write(body)
                return
            self.wfile.flush()
            for n in range(len(body)):
                if hub.stopping.wait(hub.trickle_s):
                    return
                self.wfile.write(body[n:n + 1])
                self.wfile.flush()

        def _trickle_head(self) -> None:
            raw = b"HTTP/1.1 200 OK\r\n" + b"".join(f"X-Pad-{n}: {'x' * 40}\r\n".encode() for n in range(1000))
            for n in range(len(raw)):
                if hub.stopping.wait(hub.trickle_s):
                    return
                self.wfile.write(raw[n:n + 1])
                self.wfile.flush()

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            (hub.elsewhere_log if elsewhere else hub.log).append(Logged(self.path, self.headers.get("Authorization")))
            path = self.path.partition("?")[0]
            m = re.match(r"^/api/models/([^/]+/[^/]+)(?:/revision/[^/]+)?$", path)
            if m:
                self._model_info(m.group(1))
                return
            m = re.match(r"^/([^/]+/[^/]+)/resolve/[^/]+/(.+)$", path)
            if m:
                self._resolve(m.group(1), m.group(2))
                return
            self._send(404, b'{"error":"not found"}', {"X-Error-Code": "EntryNotFound"})

        def _model_info(self, repo_id: str) -> None:
            files = hub.files("honest/tiny" if elsewhere else repo_id)
            if files is None:
                self._send(404, b'{"error":"Repository not found"}', {"X-Error-Code": "RepoNotFound"})
                return
            if not elsewhere and repo_id == "hostile/redirect-info":
                self._send(302, b"", {"Location": hub.elsewhere_url + self.path})
                return
            if not elsewhere and repo_id == "hostile/trickle-headers":
                self._trickle_head()
                return
            if not elsewhere and repo_id == "hostile/gzip-info":
                self._send(200, gzip_info_bomb(), {"Content-Type": "application/json", "Content-Encoding": "gzip"})
                return
            trickle = not elsewhere and repo_id == "hostile/trickle-info"
            self._send(200, _info(repo_id, files), {"Content-Type": "application/json"}, trickle=trickle)

        def _resolve(self, repo_id: str, filename: str) -> None:
            from urllib.parse import unquote

            files = hub.files("honest/tiny" if elsewhere else repo_id) or {}
            filename = unquote(filename)
            if not elsewhere and repo_id == "hostile/redirect-config" and filename == "config.json":
                self._send(302, b"", {"Location": hub.elsewhere_url + self.path})
                return
            blob = files.get(filename)
            if blob is None:
                self._send(404, b'{"error":"Entry not found"}', {"X-Error-Code": "EntryNotFound"})
                return
            headers = {"X-Repo-Commit": SHA, "ETag": '"e"', "Accept-Ranges": "bytes",
                       "Content-Type": "application/octet-stream"}
            m = re.match(r"^bytes=(\d+)-(\d*)$", self.headers.get("Range") or "")
            trickle = not elsewhere and repo_id == "hostile/trickle-config" and filename == "config.json"
            if m:
                start = int(m.group(1))
                stop = min(int(m.group(2)) + 1 if m.group(2) else blob.size, blob.size)
                headers["Content-Range"] = f"bytes {start}-{stop - 1}/{blob.size}"
                self._send(206, blob.read(start, stop), headers, trickle=trickle)
                return
            self._send(200, blob.read(0, min(blob.size, 1 * 2**20)), headers, trickle=trickle)

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up (refusing a bomb, or at its deadline) is the expected ending


def start(trickle_s: float = 5.0) -> HostileHub:
    """Both servers running in daemon threads; call `.close()` when done."""
    hub = HostileHub(trickle_s=trickle_s)
    gzip_info_bomb()  # built now (~2 s), so the answer starts at once
    for elsewhere in (True, False):
        server = _QuietServer(("127.0.0.1", 0), _handler(hub, elsewhere))
        url = f"http://127.0.0.1:{server.server_address[1]}"
        if elsewhere:
            hub.elsewhere_url = url
        else:
            hub.url = url
        threading.Thread(target=server.serve_forever, daemon=True).start()
        hub._servers.append(server)
    return hub


# -------------------------------------------------------------------------------------- one measured lookup

_CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
request = json.loads(sys.stdin.read())
from core.sizing import hub, hub_http, gguf_header  # the lookup's own imports, loaded before measuring
import core.gate.safetensors_header, gguf, huggingface_hub.hf_api, requests  # noqa: F401
from core.errors import QuantLensError
def status_kib(field):
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))
    except (OSError, StopIteration):
        return None
try:  # Linux: "5" resets the peak (VmHWM) to the current RSS, so the peak after is the lookup's own
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    reset = True
except OSError:
    reset = False
before = status_kib("VmRSS") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.monotonic()
try:
    model = hub.lookup(request["ref"], token=request.get("token"))
    out = {"code": "ok", "message": model.ref.label}
except QuantLensError as exc:
    out = {"code": exc.code, "message": exc.one_line()}
out["seconds"] = time.monotonic() - start
after = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss if not reset else 0, status_kib("VmHWM") or 0)
out["rss_delta_mib"] = (after - before) / 1024
out["peak_rss_mib"] = after / 1024
print(json.dumps(out))
"""


def measure_lookup(endpoint: str, ref: str, *, token: str | None = None, deadline_s: float | None = None,
                   timeout_s: float = 900.0) -> dict[str, Any]:
    """One lookup in a fresh Python: {code, message, seconds, rss_delta_mib, peak_rss_mib, stderr}.

    rss_delta_mib is the process's peak RSS after the lookup minus its RSS just before it (after the lookup's own
    modules are imported): what the lookup itself added at its worst moment. On Linux the peak (VmHWM) is reset
    just before the lookup; elsewhere getrusage's lifetime maxrss is used, which can only overstate the delta."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN")}
    env.update({"HF_ENDPOINT": endpoint, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"})
    if deadline_s is not None:
        env["QUANTLENS_HUB_DEADLINE_S"] = str(deadline_s)
    process = subprocess.run([sys.executable, "-c", _CHILD, str(PROJECT_ROOT)], input=json.dumps(
        {"ref": ref, "token": token}), capture_output=True, text=True, env=env, timeout=timeout_s, check=False)
    lines = process.stdout.strip().splitlines()
    try:
        out = json.loads(lines[-1])
    except (IndexError, ValueError):
        out = {"code": f"crashed (status {process.returncode})", "message": "", "seconds": float("nan"),
               "rss_delta_mib": float("nan"), "peak_rss_mib": float("nan")}
    out["stderr"] = process.stderr[-2000:]
    return out


if __name__ == "__main__":  # serve until interrupted, for trying a case by hand
    hub = start()
    print(f"HF_ENDPOINT={hub.url}  (other host: {hub.elsewhere_url})", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        hub.close()
